/**
 * The switch as a running thing (`anytime switch`, and the switch half of `anytime serve`):
 * one {@link Splitter} per protected volume, one {@link SwitchLink} to the appliance, and the
 * periodic DRL upkeep (seed 003 [0051]). Memory is fixed when it opens: each splitter's copy
 * buffer and tables, the link's gather buffer.
 *
 * Stopping is orderly: new host writes are refused, the records held are given a bounded
 * time to reach the appliance (so a clean stop leaves the DRL clean), then the link says BYE.
 * What did not drain stays covered by the DRL on disk (guarantee 2).
 *
 * @example
 * ```ts
 * import { ManualClock } from "../io/clock.ts";
 * import { MemoryBlockDevice } from "../io/memory_block_device.ts";
 * import { MemoryDurableCell } from "../io/memory_durable_cell.ts";
 * import { MemoryTransport } from "../io/memory_transport.ts";
 * import { SwitchNode } from "./switch_node.ts";
 *
 * const node = await SwitchNode.open(
 *   { clock: new ManualClock(), transport: new MemoryTransport() },
 *   [{ name: "db", primary: new MemoryBlockDevice(1 << 20), drlCell: new MemoryDurableCell() }],
 *   { applianceAddress: "appliance", secret: new Uint8Array(32), switchId: "sw1", bufferBytes: 1 << 20 },
 * );
 * node.start();
 * await node.stop();
 * ```
 *
 * @module
 */
import { type Checksum, createChecksum } from "../core/checksum.ts";
import { serverLimits } from "../core/limits.ts";
import type { BlockDevice } from "../io/block_device.ts";
import type { Clock } from "../io/clock.ts";
import type { DurableCell } from "../io/durable_cell.ts";
import type { Transport } from "../io/transport.ts";
import { type OnFull, Splitter } from "../switch/splitter.ts";
import { SwitchLink } from "../switch/switch_link.ts";
import { RestoreCheckpoint } from "../switch/restore_checkpoint.ts";
import { NotFoundError, UnavailableError } from "../api/control_plane.ts";

/** One volume the switch protects. */
export interface SwitchVolume {
  readonly name: string;
  readonly primary: BlockDevice;
  /** Where its dirty region log lives (the `--state` directory). */
  readonly drlCell: DurableCell;
  /**
   * Where a restore in progress keeps what it has left (`--state/VOL.restore`), so a restore
   * resumes after a crash of the switch; without one a crash mid-restore leaves the partial
   * state to resync.
   */
  readonly restoreCell?: DurableCell;
  /** The switch protects the volume for the first time (see `SplitterOptions.firstStart`). */
  readonly firstStart?: "initial copy" | "empty";
}

/** What a switch node needs from outside. */
export interface SwitchNodeDeps {
  readonly clock: Clock;
  /** Reaches the appliance (TCP, or in-process for `serve`). */
  readonly transport: Transport;
  readonly log?: (line: string) => void;
  readonly checksum?: Checksum;
}

/** How a switch node runs. */
export interface SwitchNodeOptions {
  readonly applianceAddress: string;
  readonly secret: Uint8Array;
  readonly switchId: string;
  /** Copy buffer per volume (`--buffer`). */
  readonly bufferBytes?: number;
  /** Make each copy buffer resident at start (the processes do: memory fixed at start). */
  readonly touchBuffers?: boolean;
  /** DRL region size (`--region`). */
  readonly regionBytes?: number;
  readonly onFull?: OnFull;
}

/** See the module doc. */
export class SwitchNode {
  readonly splitters: ReadonlyMap<string, Splitter>;
  readonly link: SwitchLink;
  readonly #deps: SwitchNodeDeps;
  readonly #volumes: readonly SwitchVolume[];
  readonly #checkpoints: ReadonlyMap<string, RestoreCheckpoint>;
  #maintaining: Promise<void> | null = null;
  /** Starts a resync of a volume that needs one (the process runs it as a job). */
  #autoResync: ((volumeName: string) => Promise<unknown>) | null = null;
  /** Per volume: when the next automatic resync may be tried (µs), backing off after failures. */
  readonly #autoResyncNext = new Map<string, { atUs: number; backoffMs: number }>();
  #stopped = false;
  /** Ends the upkeep loop's sleep early on stop. */
  #wakeMaintain: (() => void) | null = null;

  private constructor(
    deps: SwitchNodeDeps,
    volumes: readonly SwitchVolume[],
    splitters: Splitter[],
    link: SwitchLink,
    checkpoints: ReadonlyMap<string, RestoreCheckpoint>,
  ) {
    this.#deps = deps;
    this.#volumes = volumes;
    this.#checkpoints = checkpoints;
    this.splitters = new Map(splitters.map((splitter) => [splitter.name, splitter]));
    this.link = link;
  }

  /**
   * Opens every volume's splitter (loading its DRL and its restore checkpoint) and the link
   * (not yet started). A checkpoint that holds a restore is to be resumed before hosts connect
   * ({@link restoreCheckpoint}).
   *
   * @throws {RangeError} for bad options or duplicate volume names.
   * @throws {RestoreCheckpointError} for a damaged restore checkpoint (nothing is changed).
   */
  static async open(deps: SwitchNodeDeps, volumes: readonly SwitchVolume[], options: SwitchNodeOptions): Promise<SwitchNode> {
    const checksum = deps.checksum ?? await createChecksum();
    const splitters: Splitter[] = [];
    const checkpoints = new Map<string, RestoreCheckpoint>();
    for (const volume of volumes) {
      if (volume.restoreCell !== undefined) {
        const checkpoint = await RestoreCheckpoint.open(volume.restoreCell, { sizeBytes: volume.primary.sizeBytes, checksum });
        checkpoints.set(volume.name, checkpoint);
        const active = checkpoint.active;
        if (active !== null) {
          deps.log?.(
            `Volume ${volume.name}: a restore to seq:${active.toSeq} was under way when the switch stopped; ` +
              `${checkpoint.pendingCount()} of ${checkpoint.chunkCount} chunks are left: it resumes`,
          );
        }
      }
      splitters.push(
        await Splitter.open(
          { primary: volume.primary, drlCell: volume.drlCell, clock: deps.clock, checksum },
          {
            name: volume.name,
            regionBytes: options.regionBytes,
            bufferBytes: options.bufferBytes,
            touchBuffer: options.touchBuffers,
            onFull: options.onFull,
            firstStart: volume.firstStart,
          },
        ),
      );
    }
    const link = new SwitchLink(
      { transport: deps.transport, clock: deps.clock, splitters, log: deps.log },
      { address: options.applianceAddress, secret: options.secret, switchId: options.switchId },
    );
    return new SwitchNode({ ...deps, checksum }, volumes, splitters, link, checkpoints);
  }

  /** Starts streaming to the appliance and the DRL upkeep. */
  start(): void {
    this.link.start();
    this.#maintaining ??= this.#maintainLoop();
  }

  /**
   * Resyncs volumes by themselves: whenever a volume needs resync (after a gap) and the link
   * streams, `start(volumeName)` is called (the process starts its resync job), backing off
   * from `serverLimits.autoResyncBackoffMsMin` to `...Max` while it keeps failing.
   */
  setAutoResync(start: ((volumeName: string) => Promise<unknown>) | null): void {
    this.#autoResync = start;
  }

  /**
   * A splitter by volume name.
   *
   * @throws {NotFoundError} naming the volumes this switch protects.
   */
  splitter(name: string): Splitter {
    const splitter = this.splitters.get(name);
    if (splitter === undefined) {
      throw new NotFoundError(`Volume "${name}" is not protected by this switch; volumes: ${[...this.splitters.keys()].join(", ")}`);
    }
    return splitter;
  }

  /**
   * The primary device of a volume (restore writes it directly: restored data is not a host write).
   *
   * @throws {NotFoundError} naming the volumes this switch protects.
   */
  primary(name: string): BlockDevice {
    this.splitter(name);
    const volume = this.#volumes.find((v) => v.name === name);
    return volume!.primary;
  }

  /**
   * The restore checkpoint of a volume, `null` when it has no restore cell.
   *
   * @throws {NotFoundError} naming the volumes this switch protects.
   */
  restoreCheckpoint(name: string): RestoreCheckpoint | null {
    this.splitter(name);
    return this.#checkpoints.get(name) ?? null;
  }

  /**
   * Takes a snapshot in the write stream (after every write copied so far) and waits until
   * the appliance holds it durably.
   *
   * @throws {UnavailableError} when the appliance does not acknowledge it in time.
   */
  async snapshot(volumeName: string, snapshotName: string): Promise<{ seq: number; timeUs: number }> {
    const splitter = this.splitter(volumeName);
    const seq = splitter.snapshot(snapshotName);
    const timeUs = splitter.markerAt(seq)?.timeUs ?? this.#deps.clock.nowUs();
    await this.waitAcknowledged(volumeName, seq);
    return { seq, timeUs };
  }

  /**
   * Waits until the appliance acknowledged `seq` of a volume.
   *
   * @throws {UnavailableError} after `serverLimits.acknowledgeWaitMs`.
   */
  async waitAcknowledged(volumeName: string, seq: number): Promise<void> {
    const splitter = this.splitter(volumeName);
    const deadlineUs = this.#deps.clock.nowUs() + serverLimits.acknowledgeWaitMs * 1000;
    while (splitter.acknowledgedSeq < seq) {
      if (this.#deps.clock.nowUs() > deadlineUs) {
        throw new UnavailableError(
          `The appliance has not acknowledged seq ${seq} of volume "${volumeName}" within ${serverLimits.acknowledgeWaitMs} ms ` +
            `(link ${this.link.state}${this.link.lastError === null ? "" : `: ${this.link.lastError}`}); the marker is kept and will be sent`,
        );
      }
      await this.#deps.clock.sleep(serverLimits.acknowledgePollMs);
    }
  }

  /**
   * Refuses new writes, gives held records `drainMs` to reach the appliance, says BYE and
   * flushes the primaries. Idempotent.
   */
  async stop(drainMs: number = serverLimits.stopDrainMs): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const splitter of this.splitters.values()) splitter.close();
    const deadlineUs = this.#deps.clock.nowUs() + drainMs * 1000;
    while (this.link.state === "streaming" && this.#deps.clock.nowUs() < deadlineUs) {
      const held = [...this.splitters.values()].some((s) => s.unacknowledgedCount > 0 || s.inFlightWriteCount > 0);
      if (!held) break;
      await this.#deps.clock.sleep(serverLimits.acknowledgePollMs);
    }
    await this.link.stop();
    this.#wakeMaintain?.();
    await this.#maintaining;
    for (const splitter of this.splitters.values()) {
      const held = splitter.unacknowledgedCount;
      if (held > 0) {
        this.#deps.log?.(`Volume ${splitter.name}: ${held} records not acknowledged at stop; the DRL covers them`);
        continue;
      }
      // Everything reached the appliance: settle the DRL, so the next start is in sync
      // (a reset clears only regions with nothing in flight, and never while out of sync).
      try {
        await splitter.dirtyRegionLog.reset();
      } catch (error) {
        this.#deps.log?.(`Volume ${splitter.name}: cannot settle the DRL at stop: ${(error as Error).message}`);
      }
    }
    for (const volume of this.#volumes) {
      await volume.primary.flush();
      await volume.primary.close();
    }
  }

  #maybeResync(): void {
    const start = this.#autoResync;
    if (start === null || this.link.state !== "streaming") return;
    const nowUs = this.#deps.clock.nowUs();
    for (const splitter of this.splitters.values()) {
      if (!splitter.needsResync || splitter.state !== "protecting" || splitter.resyncing || splitter.restoring) continue;
      const next = this.#autoResyncNext.get(splitter.name) ?? { atUs: 0, backoffMs: serverLimits.autoResyncBackoffMsMin };
      if (nowUs < next.atUs) continue;
      this.#autoResyncNext.set(splitter.name, {
        atUs: nowUs + next.backoffMs * 1000,
        backoffMs: Math.min(next.backoffMs * 2, serverLimits.autoResyncBackoffMsMax),
      });
      this.#deps.log?.(`Volume ${splitter.name}: needs resync after a gap; starting it`);
      start(splitter.name).catch((error) => {
        this.#deps.log?.(`Volume ${splitter.name}: cannot start the automatic resync: ${(error as Error).message}`);
      });
    }
  }

  async #maintainLoop(): Promise<void> {
    while (!this.#stopped) {
      await Promise.race([
        this.#deps.clock.sleep(serverLimits.maintainIntervalMs),
        new Promise<void>((resolve) => (this.#wakeMaintain = resolve)),
      ]);
      this.#wakeMaintain = null;
      if (this.#stopped) break;
      this.#maybeResync();
      for (const splitter of this.splitters.values()) {
        try {
          await splitter.maintain();
        } catch (error) {
          this.#deps.log?.(`Volume ${splitter.name}: DRL upkeep failed: ${(error as Error).message}`);
        }
      }
    }
  }
}
