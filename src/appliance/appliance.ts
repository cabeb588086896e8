/**
 * The data protection server's set of volumes: a registry of protected volumes (name, size,
 * region size) kept in a {@link DurableCell}, each volume's stores supplied by the runtime
 * (directories on the Node and Deno targets, memory in tests). The link to switches, the NBD
 * exports and the API all find volumes here.
 */
import { assert } from "../core/assert.ts";
import type { Clock } from "../io/clock.ts";
import type { DurableCell } from "../io/durable_cell.ts";
import type { SegmentStore } from "../io/segment_store.ts";
import { ConflictError, NotFoundError } from "./errors.ts";
import { Volume, type VolumeOptions } from "./volume.ts";

/** A valid volume name: it is an NBD export name too, so no `@` (the POINT separator). */
export const VOLUME_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Checks a volume name.
 *
 * @throws {SyntaxError} naming the rule when the name does not follow it.
 */
export function checkVolumeName(name: string): string {
  if (!VOLUME_NAME_PATTERN.test(name)) {
    throw new SyntaxError(
      `Cannot use volume name "${name}": use 1 to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-'`,
    );
  }
  return name;
}

/** What an appliance needs from outside. */
export interface ApplianceDeps {
  readonly clock: Clock;
  /** The registry of volumes (small JSON, replaced atomically). */
  readonly registry: DurableCell;
  /** The journal and map stores of a volume, created empty if new. */
  readonly storesFor: (volumeName: string) => Promise<{ journalStore: SegmentStore; mapStore: SegmentStore }>;
  readonly log?: (line: string) => void;
}

/** A registered volume as the registry keeps it. */
export interface VolumeRecord {
  readonly name: string;
  readonly sizeBytes: number;
  readonly regionBytes: number;
}

interface Registry {
  readonly version: 1;
  readonly volumes: readonly VolumeRecord[];
}

/** The appliance's volumes. */
export class Appliance {
  readonly #deps: ApplianceDeps;
  readonly #volumeOptions: Partial<VolumeOptions>;
  readonly #records = new Map<string, VolumeRecord>();
  readonly #volumes = new Map<string, Volume>();
  /** Registrations run one at a time (each may create stores and rewrite the registry). */
  #registering: Promise<unknown> = Promise.resolve();

  private constructor(deps: ApplianceDeps, volumeOptions: Partial<VolumeOptions>) {
    this.#deps = deps;
    this.#volumeOptions = volumeOptions;
  }

  /**
   * Opens every registered volume (each loads its maps and scans only its journal tail).
   *
   * @param volumeOptions engine tuning applied to every volume (tests use small segments).
   */
  static async open(deps: ApplianceDeps, volumeOptions: Partial<VolumeOptions> = {}): Promise<Appliance> {
    const appliance = new Appliance(deps, volumeOptions);
    const bytes = await deps.registry.read();
    if (bytes !== null) {
      let registry: Registry;
      try {
        registry = JSON.parse(new TextDecoder().decode(bytes));
      } catch (error) {
        throw new SyntaxError(`Cannot read the volume registry: ${(error as Error).message}`);
      }
      if (registry.version !== 1 || !Array.isArray(registry.volumes)) {
        throw new SyntaxError(`Cannot read the volume registry: unknown version ${registry.version}`);
      }
      for (const record of registry.volumes) {
        appliance.#records.set(record.name, record);
        appliance.#volumes.set(record.name, await appliance.#openVolume(record));
      }
    }
    return appliance;
  }

  /** Registered volumes, by name. */
  volumes(): Volume[] {
    return [...this.#volumes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The registration of a volume (size, region size). */
  record(name: string): VolumeRecord {
    const record = this.#records.get(name);
    if (record === undefined) throw new NotFoundError(this.#unknown(name));
    return record;
  }

  /**
   * A registered volume.
   *
   * @throws {NotFoundError} naming the volumes that exist.
   */
  volume(name: string): Volume {
    const volume = this.#volumes.get(name);
    if (volume === undefined) throw new NotFoundError(this.#unknown(name));
    return volume;
  }

  /**
   * Registers a volume a switch protects: creates it when new, checks size and region size
   * when known.
   *
   * @throws {SyntaxError} for a bad name, {@link RangeError} for a bad size,
   *   {@link ConflictError} when the volume exists with another geometry.
   */
  register(record: VolumeRecord): Promise<Volume> {
    const next = this.#registering.then(() => this.#register(record));
    this.#registering = next.catch(() => undefined);
    return next;
  }

  async #register(record: VolumeRecord): Promise<Volume> {
    checkVolumeName(record.name);
    if (!Number.isSafeInteger(record.sizeBytes) || record.sizeBytes <= 0 || record.sizeBytes % 512 !== 0) {
      throw new RangeError(`Cannot protect volume "${record.name}": size ${record.sizeBytes} is not a positive multiple of 512 bytes`);
    }
    if (!Number.isSafeInteger(record.regionBytes) || record.regionBytes < 512 || record.regionBytes % 512 !== 0) {
      throw new RangeError(`Cannot protect volume "${record.name}": region size ${record.regionBytes} is not a multiple of 512 bytes`);
    }
    const known = this.#records.get(record.name);
    if (known !== undefined) {
      if (known.sizeBytes !== record.sizeBytes || known.regionBytes !== record.regionBytes) {
        throw new ConflictError(
          `Volume "${record.name}" is protected with ${known.sizeBytes} bytes in ${known.regionBytes}-byte regions; ` +
            `the switch offers ${record.sizeBytes} bytes in ${record.regionBytes}-byte regions`,
        );
      }
      return this.volume(record.name);
    }
    const volume = await this.#openVolume(record);
    this.#records.set(record.name, { name: record.name, sizeBytes: record.sizeBytes, regionBytes: record.regionBytes });
    this.#volumes.set(record.name, volume);
    await this.#writeRegistry();
    this.#deps.log?.(`Protecting volume ${record.name} (${record.sizeBytes} bytes)`);
    return volume;
  }

  /** Flushes and closes every volume. */
  async close(): Promise<void> {
    await this.#registering;
    for (const volume of this.#volumes.values()) await volume.close();
  }

  async #openVolume(record: VolumeRecord): Promise<Volume> {
    const stores = await this.#deps.storesFor(record.name);
    return Volume.open(
      { ...stores, clock: this.#deps.clock, log: this.#deps.log },
      { ...this.#volumeOptions, name: record.name, sizeBytes: record.sizeBytes },
    );
  }

  async #writeRegistry(): Promise<void> {
    const registry: Registry = { version: 1, volumes: [...this.#records.values()] };
    await this.#deps.registry.write(new TextEncoder().encode(JSON.stringify(registry)));
  }

  #unknown(name: string): string {
    const names = [...this.#records.keys()].sort();
    assert(!this.#records.has(name), "Only unknown names are reported");
    return `Volume "${name}" is not protected here` + (names.length > 0 ? `; volumes: ${names.join(", ")}` : "; no volumes yet");
  }
}
