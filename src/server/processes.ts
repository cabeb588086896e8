/**
 * The three processes of SPEC.md's deployment shape, assembled from the parts, portable: the
 * runtime passes its files, sockets, clock and HTTP server in ({@link ServerRuntime}), as
 * Hono's adapters pass theirs. The CLI entries in `targets/` parse flags into the options
 * here and wire signals to {@link RunningProcess.stop}.
 *
 * - {@link startServe}: appliance + switch in one process joined by the in-process transport,
 *   one NBD listener for volumes (read-write, through the splitter) and their images, HTTP.
 * - {@link startAppliance}: the data protection server: switches connect over TCP.
 * - {@link startSwitch}: the splitter for volumes on this host; NBD exports of the volumes.
 *
 * Data layout (all under the given directory):
 * `appliance/registry.json`, `appliance/volumes/NAME/{journal,maps}/` (serve), or the same
 * without `appliance/` (appliance); `switch/NAME.drl` (serve) or `NAME.drl` (switch's
 * `--state`); `token` (HTTP bearer token) and `secret` (switch↔appliance) unless their files
 * are given.
 *
 * The initial full copy (SPEC: "protects it from now on, initial full copy of existing
 * content first"): in `serve`, a volume whose journal holds no write yet (head seq 0) and
 * whose primary file existed gets its content journaled as baseline records before any host
 * can write; an interrupted copy is simply done again at the next start (later baseline
 * records overlay earlier ones).
 *
 * @module
 */
import { Appliance } from "../appliance/appliance.ts";
import { ApplianceLink } from "../appliance/appliance_link.ts";
import type { Volume } from "../appliance/volume.ts";
import { createApp } from "../api/app.ts";
import type { MemoryUsage } from "../api/process_metrics.ts";
import { serverLimits } from "../core/limits.ts";
import { formatBytes } from "../core/units.ts";
import type { BlockDevice } from "../io/block_device.ts";
import type { Clock } from "../io/clock.ts";
import { FileBlockDevice } from "../io/file_block_device.ts";
import { FileDurableCell } from "../io/file_durable_cell.ts";
import { FileSegmentStore } from "../io/file_segment_store.ts";
import { type FileSystem, makeDirectoryDurably } from "../io/file_system.ts";
import { MemoryTransport } from "../io/memory_transport.ts";
import type { Listener, Transport } from "../io/transport.ts";
import { NbdServer } from "../nbd/nbd_server.ts";
import { VolumeExports, type VolumeExportsDeps } from "./volume_exports.ts";
import { SwitchRestores } from "../switch/remote_restore.ts";
import type { OnFull } from "../switch/splitter.ts";
import { Jobs } from "./jobs.ts";
import { ProductControlPlane } from "./product_control_plane.ts";
import { resumeLocalRestores } from "./restore_job.ts";
import { SwitchNode, type SwitchVolume } from "./switch_node.ts";
import { CLI_VERSION as ANYTIME_VERSION } from "../cli/version.ts";

/** What a runtime gives the processes. */
export interface ServerRuntime {
  readonly fileSystem: FileSystem;
  readonly clock: Clock;
  /** TCP (Node's net module, Deno's listener). */
  readonly tcp: Transport;
  /** Serves a fetch handler on `HOST:PORT`. */
  serveHttp(
    fetch: (request: Request) => Response | Promise<Response>,
    address: string,
  ): Promise<{ readonly address: string; close(): Promise<void> }>;
  /** Creates a new file readable by its owner only (mode 0600); rejects if it exists. */
  writePrivateFile(path: string, bytes: Uint8Array): Promise<void>;
  /** `node 20.20.2`, `deno 2.9.5`. */
  readonly runtimeName: string;
  memoryUsage?(): MemoryUsage;
  log(line: string): void;
}

/** A volume named on the command line: `NAME=PATH[:SIZE]`. */
export interface VolumeArgument {
  readonly name: string;
  readonly path: string;
  readonly sizeBytes?: number;
}

/** Flags the switch side takes (`serve` and `switch`). */
export interface SwitchFlags {
  readonly volumes: readonly VolumeArgument[];
  readonly bufferBytes?: number;
  readonly regionBytes?: number;
  readonly onFull?: OnFull;
}

/** `anytime serve`. */
export interface ServeOptions extends SwitchFlags {
  readonly dataDirectory: string;
  readonly nbdAddress: string;
  readonly httpAddress: string;
  readonly tokenFile?: string;
  readonly secretFile?: string;
  readonly noInitialCopy?: boolean;
  /** Scratch bytes per writable image (`VOL@POINT+rw`, in memory); default 256 MiB. */
  readonly overlayBytesMax?: number;
}

/** `anytime appliance`. */
export interface ApplianceOptions {
  readonly dataDirectory: string;
  readonly listenAddress: string;
  readonly httpAddress: string;
  readonly nbdAddress: string;
  readonly tokenFile?: string;
  readonly secretFile?: string;
  /** As {@link ServeOptions.overlayBytesMax}. */
  readonly overlayBytesMax?: number;
}

/** `anytime switch`. */
export interface SwitchOptions extends SwitchFlags {
  readonly stateDirectory: string;
  readonly applianceAddress: string;
  readonly nbdAddress: string;
  /** Absent: no HTTP API on the switch. */
  readonly httpAddress?: string;
  readonly tokenFile?: string;
  readonly secretFile?: string;
}

/** A started process: serve, appliance or switch. */
export interface RunningProcess {
  /** What to tell the operator at start: where everything listens, where the token is. */
  readonly banner: readonly string[];
  readonly controlPlane: ProductControlPlane;
  readonly nbdAddress?: string;
  readonly httpAddress?: string;
  readonly linkAddress?: string;
  /** The parts, for in-process drivers (the demo, tests). */
  readonly appliance?: Appliance;
  readonly switchNode?: SwitchNode;
  /** Clean shutdown: acknowledged data durable, listeners closed. Idempotent. */
  stop(): Promise<void>;
}

const tokenBytes = 24;
const secretBytes = 32;

/** Starts `anytime serve`. */
export async function startServe(runtime: ServerRuntime, options: ServeOptions): Promise<RunningProcess> {
  const fileSystem = runtime.fileSystem;
  requireVolumes(options.volumes, "serve");
  await makeDirectoryDurably(fileSystem, options.dataDirectory);
  const token = await readOrCreateKey(runtime, options.tokenFile ?? join(fileSystem, options.dataDirectory, "token"), tokenBytes);
  const secret = options.secretFile === undefined
    ? crypto.getRandomValues(new Uint8Array(secretBytes)) // in-process link: never leaves this process
    : new TextEncoder().encode((await readOrCreateKey(runtime, options.secretFile, secretBytes)).text);
  return await assemble(runtime, async (stops) => {
    const applianceDirectory = join(fileSystem, options.dataDirectory, "appliance");
    const appliance = await openAppliance(runtime, applianceDirectory);
    stops.add("appliance", () => appliance.close());
    const switchDirectory = join(fileSystem, options.dataDirectory, "switch");
    await makeDirectoryDurably(fileSystem, switchDirectory);
    const primaries = await openPrimaries(runtime, options.volumes);
    for (const { volume, primary, created } of primaries) {
      const registered = await appliance.register({
        name: volume.name,
        sizeBytes: primary.sizeBytes,
        regionBytes: options.regionBytes ?? 1024 * 1024,
      });
      if (!created && !options.noInitialCopy && registered.head.seq === 0) {
        await journalInitialCopy(runtime, registered, primary);
      }
    }
    const memory = new MemoryTransport();
    const linkListener = await memory.listen("appliance");
    const applianceLink = new ApplianceLink({ appliance, clock: runtime.clock, log: runtime.log }, { secret });
    const linkServing = applianceLink.serve(linkListener);
    stops.add("appliance link", async () => {
      await linkListener.close();
      await applianceLink.close();
      await linkServing;
    });
    const switchNode = await openSwitchNode(runtime, primaries, switchDirectory, options, {
      transport: memory,
      applianceAddress: "appliance",
      secret,
    });
    stops.add("switch", () => switchNode.stop());
    switchNode.start();
    const jobs = new Jobs(runtime.clock);
    stops.add("jobs", () => jobs.stopAll());
    // A restore a crash or a stop interrupted goes on before any host connects.
    await resumeLocalRestores({ clock: runtime.clock, appliance, switchNode, log: runtime.log }, jobs);
    const nbd = await startNbd(runtime, stops, options.nbdAddress, { appliance, splitters: switchNode.splitters }, options);
    const controlPlane = new ProductControlPlane({
      clock: runtime.clock,
      process: processJson(runtime, "serve", { nbd: nbd.address }),
      appliance,
      applianceLink,
      switchNode,
      jobs,
      log: runtime.log,
      nbdAddress: nbd.address,
      nbdConnections: () => nbd.server.connectionCount,
    });
    // A gap is repaired by itself once the link streams again (and shown as a resync job).
    switchNode.setAutoResync((name) => controlPlane.resync(name, { full: false }));
    const http = await startHttp(runtime, stops, options.httpAddress, controlPlane, token.text);
    return {
      banner: [
        `Anytime ${ANYTIME_VERSION} serve (${runtime.runtimeName}), data in ${options.dataDirectory}`,
        ...primaries.map(({ volume, primary }) =>
          `  volume ${volume.name}: ${volume.path} (${formatBytes(primary.sizeBytes)}) -> nbd://${nbd.address}/${volume.name}`
        ),
        `  images:   nbd://${nbd.address}/VOL@POINT (e.g. ${primaries[0].volume.name}@-5m), list with: nbdinfo --list nbd://${nbd.address}`,
        httpBannerLine(http.address, token),
      ],
      controlPlane,
      nbdAddress: nbd.address,
      httpAddress: http.address,
      appliance,
      switchNode,
    };
  });
}

/** Starts `anytime appliance`. */
export async function startAppliance(runtime: ServerRuntime, options: ApplianceOptions): Promise<RunningProcess> {
  const fileSystem = runtime.fileSystem;
  await makeDirectoryDurably(fileSystem, options.dataDirectory);
  const token = await readOrCreateKey(runtime, options.tokenFile ?? join(fileSystem, options.dataDirectory, "token"), tokenBytes);
  const secretFile = options.secretFile ?? join(fileSystem, options.dataDirectory, "secret");
  const secret = await readOrCreateKey(runtime, secretFile, secretBytes);
  return await assemble(runtime, async (stops) => {
    const appliance = await openAppliance(runtime, options.dataDirectory);
    stops.add("appliance", () => appliance.close());
    const applianceLink = new ApplianceLink(
      { appliance, clock: runtime.clock, log: runtime.log },
      { secret: new TextEncoder().encode(secret.text) },
    );
    const linkListener = await runtime.tcp.listen(options.listenAddress);
    const linkServing = applianceLink.serve(linkListener);
    stops.add("switch listener", async () => {
      await linkListener.close();
      await applianceLink.close();
      await linkServing;
    });
    const nbd = await startNbd(runtime, stops, options.nbdAddress, { appliance }, options);
    // Restores run as jobs here; the switch that streams the volume does the copy.
    const jobs = new Jobs(runtime.clock);
    stops.add("jobs", () => jobs.stopAll());
    const controlPlane = new ProductControlPlane({
      clock: runtime.clock,
      process: processJson(runtime, "appliance", { nbd: nbd.address, link: linkListener.address }),
      appliance,
      applianceLink,
      jobs,
      log: runtime.log,
      nbdAddress: nbd.address,
      nbdConnections: () => nbd.server.connectionCount,
    });
    const http = await startHttp(runtime, stops, options.httpAddress, controlPlane, token.text);
    return {
      banner: [
        `Anytime ${ANYTIME_VERSION} appliance (${runtime.runtimeName}), data in ${options.dataDirectory}`,
        `  switches connect to ${linkListener.address} (shared secret in ${secret.path}${secret.created ? ", created now: copy it to the switch" : ""})`,
        `  images:   nbd://${nbd.address}/VOL@POINT`,
        httpBannerLine(http.address, token),
        `  volumes:  ${appliance.volumes().map((v) => v.name).join(", ") || "none yet (a switch registers them)"}`,
      ],
      controlPlane,
      nbdAddress: nbd.address,
      httpAddress: http.address,
      linkAddress: linkListener.address,
      appliance,
    };
  });
}

/** Starts `anytime switch`. */
export async function startSwitch(runtime: ServerRuntime, options: SwitchOptions): Promise<RunningProcess> {
  const fileSystem = runtime.fileSystem;
  requireVolumes(options.volumes, "switch");
  await makeDirectoryDurably(fileSystem, options.stateDirectory);
  const secretFile = options.secretFile ?? join(fileSystem, options.stateDirectory, "secret");
  const secret = await readOrCreateKey(runtime, secretFile, secretBytes);
  return await assemble(runtime, async (stops) => {
    const primaries = await openPrimaries(runtime, options.volumes);
    // The first start on an existing volume journals it whole (the initial copy), through resync.
    const switchNode = await openSwitchNode(runtime, primaries, options.stateDirectory, options, {
      transport: runtime.tcp,
      applianceAddress: options.applianceAddress,
      secret: new TextEncoder().encode(secret.text),
    }, { initialCopy: true });
    stops.add("switch", () => switchNode.stop());
    // Restores the appliance asks for (stopped before the switch: they are cancelled first).
    const restores = new SwitchRestores({
      clock: runtime.clock,
      splitters: switchNode.splitters,
      primary: (name) => switchNode.primary(name),
      checkpoint: (name) => switchNode.restoreCheckpoint(name),
      log: runtime.log,
    });
    switchNode.link.setRestores(restores);
    stops.add("remote restores", () => restores.stop());
    // A restore a crash or a stop interrupted goes on before any host connects.
    await restores.resume();
    switchNode.start();
    const nbd = await startNbd(runtime, stops, options.nbdAddress, { splitters: switchNode.splitters });
    const jobs = new Jobs(runtime.clock); // resync runs here
    stops.add("jobs", () => jobs.stopAll());
    const controlPlane = new ProductControlPlane({
      clock: runtime.clock,
      process: processJson(runtime, "switch", { nbd: nbd.address, link: options.applianceAddress }),
      switchNode,
      nbdConnections: () => nbd.server.connectionCount,
      jobs,
      log: runtime.log,
    });
    // A gap is repaired by itself once the link streams again (and shown as a resync job).
    switchNode.setAutoResync((name) => controlPlane.resync(name, { full: false }));
    const banner = [
      `Anytime ${ANYTIME_VERSION} switch (${runtime.runtimeName}), state in ${options.stateDirectory}`,
      ...primaries.map(({ volume, primary }) =>
        `  volume ${volume.name}: ${volume.path} (${formatBytes(primary.sizeBytes)}) -> nbd://${nbd.address}/${volume.name}`
      ),
      `  appliance: ${options.applianceAddress} (shared secret in ${secret.path}${secret.created ? ", created now: copy it to the appliance" : ""})`,
    ];
    let httpAddress: string | undefined;
    if (options.httpAddress !== undefined) {
      const token = await readOrCreateKey(runtime, options.tokenFile ?? join(fileSystem, options.stateDirectory, "token"), tokenBytes);
      const http = await startHttp(runtime, stops, options.httpAddress, controlPlane, token.text);
      httpAddress = http.address;
      banner.push(httpBannerLine(http.address, token));
    }
    return {
      banner,
      controlPlane,
      nbdAddress: nbd.address,
      httpAddress,
      linkAddress: options.applianceAddress,
      switchNode,
    };
  });
}

// ---- Parts ------------------------------------------------------------------------------

/** Builds a process; whatever was started before a failure is stopped again. */
async function assemble(
  runtime: ServerRuntime,
  build: (stops: StopList) => Promise<Omit<RunningProcess, "stop">>,
): Promise<RunningProcess> {
  const stops = new StopList(runtime);
  try {
    const parts = await build(stops);
    return { ...parts, stop: () => stops.stopAll() };
  } catch (error) {
    await stops.stopAll();
    throw error;
  }
}

function requireVolumes(volumes: readonly VolumeArgument[], command: string): void {
  if (volumes.length === 0) throw new TypeError(`Cannot start ${command} without a volume: give --volume NAME=PATH[:SIZE]`);
  const names = volumes.map((v) => v.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw new TypeError(`Cannot protect volume "${repeated}" twice`);
}

function join(fileSystem: FileSystem, directory: string, name: string): string {
  return fileSystem.joinPath(directory, name);
}

/**
 * The banner's API line. A token created at this start is printed once, here (SPEC: "generated
 * at first start ... and printed once"); later starts name only its file.
 */
function httpBannerLine(address: string, token: { path: string; text: string; created: boolean }): string {
  const where = token.created ? `token created now in ${token.path}: ${token.text} (printed this once)` : `token in ${token.path}`;
  return `  HTTP API: http://${address}/v1 (${where})`;
}

/**
 * Reads a key file (token or secret), or creates it with a fresh random key, mode 0600.
 *
 * @throws {TypeError} when the file holds fewer than 16 characters.
 */
async function readOrCreateKey(
  runtime: ServerRuntime,
  path: string,
  randomBytes: number,
): Promise<{ path: string; text: string; created: boolean }> {
  const existing = await runtime.fileSystem.readFileOrNull(path);
  if (existing !== null) {
    const text = new TextDecoder().decode(existing).trim();
    if (text.length < 16) throw new TypeError(`Cannot use the key in "${path}": it has ${text.length} characters, fewer than 16`);
    return { path, text, created: false };
  }
  const text = [...crypto.getRandomValues(new Uint8Array(randomBytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
  await runtime.writePrivateFile(path, new TextEncoder().encode(`${text}\n`));
  return { path, text, created: true };
}

async function openAppliance(runtime: ServerRuntime, directory: string): Promise<Appliance> {
  const fileSystem = runtime.fileSystem;
  await makeDirectoryDurably(fileSystem, directory);
  const volumesDirectory = join(fileSystem, directory, "volumes");
  return Appliance.open({
    clock: runtime.clock,
    registry: await FileDurableCell.open(fileSystem, join(fileSystem, directory, "registry.json")),
    storesFor: async (name) => {
      const volumeDirectory = join(fileSystem, volumesDirectory, name);
      return {
        journalStore: await FileSegmentStore.open(fileSystem, join(fileSystem, volumeDirectory, "journal"), { log: runtime.log }),
        mapStore: await FileSegmentStore.open(fileSystem, join(fileSystem, volumeDirectory, "maps"), { log: runtime.log }),
      };
    },
    log: runtime.log,
  });
}

interface OpenPrimary {
  readonly volume: VolumeArgument;
  readonly primary: BlockDevice;
  /** The file did not exist: it was created (sparse, all zeros) now. */
  readonly created: boolean;
}

async function openPrimaries(runtime: ServerRuntime, volumes: readonly VolumeArgument[]): Promise<OpenPrimary[]> {
  const opened: OpenPrimary[] = [];
  try {
    for (const volume of volumes) {
      const existed = (await fileExists(runtime.fileSystem, volume.path));
      if (!existed && volume.sizeBytes === undefined) {
        throw new TypeError(`Cannot create volume "${volume.name}" at "${volume.path}": give its size, as in ${volume.name}=${volume.path}:1GiB`);
      }
      const primary = await FileBlockDevice.open(runtime.fileSystem, volume.path, { sizeBytes: volume.sizeBytes, create: true });
      opened.push({ volume, primary, created: !existed });
    }
  } catch (error) {
    for (const { primary } of opened) await primary.close();
    throw error;
  }
  return opened;
}

async function fileExists(fileSystem: FileSystem, path: string): Promise<boolean> {
  try {
    await fileSystem.fileSizeBytes(path);
    return true;
  } catch (error) {
    if (fileSystem.isNotFoundError(error)) return false;
    // A block device or something stat calls by another name: it exists.
    return true;
  }
}

async function openSwitchNode(
  runtime: ServerRuntime,
  primaries: readonly OpenPrimary[],
  stateDirectory: string,
  flags: SwitchFlags,
  link: { transport: Transport; applianceAddress: string; secret: Uint8Array },
  options: { initialCopy?: boolean } = {},
): Promise<SwitchNode> {
  const fileSystem = runtime.fileSystem;
  const volumes: SwitchVolume[] = [];
  for (const { volume, primary, created } of primaries) {
    const drlCell = await FileDurableCell.open(fileSystem, join(fileSystem, stateDirectory, `${volume.name}.drl`));
    const firstStart = options.initialCopy !== true || (await drlCell.read()) !== null
      ? undefined
      : created
      ? "empty" as const
      : "initial copy" as const;
    if (firstStart === "initial copy") {
      runtime.log(`Volume ${volume.name}: protected by this switch for the first time: its whole content is journaled by the resync that follows`);
    }
    volumes.push({
      name: volume.name,
      primary,
      firstStart,
      drlCell,
      restoreCell: await FileDurableCell.open(fileSystem, join(fileSystem, stateDirectory, `${volume.name}.restore`)),
    });
  }
  return SwitchNode.open({ clock: runtime.clock, transport: link.transport, log: runtime.log }, volumes, {
    applianceAddress: link.applianceAddress,
    secret: link.secret,
    switchId: `switch-${stateDirectory}`.slice(0, 128),
    bufferBytes: flags.bufferBytes,
    touchBuffers: true,
    regionBytes: flags.regionBytes,
    onFull: flags.onFull,
  });
}

/** Journals the primary's content as baseline records (seq 0), skipping nothing but zeros. */
async function journalInitialCopy(runtime: ServerRuntime, volume: Volume, primary: BlockDevice): Promise<void> {
  runtime.log(`Volume ${volume.name}: journaling the initial full copy of ${formatBytes(primary.sizeBytes)}`);
  const chunk = new Uint8Array(serverLimits.baselineChunkBytes);
  for (let offsetBytes = 0; offsetBytes < primary.sizeBytes; offsetBytes += chunk.length) {
    const piece = chunk.subarray(0, Math.min(chunk.length, primary.sizeBytes - offsetBytes));
    await primary.read(offsetBytes, piece);
    await volume.appendBaseline(offsetBytes, piece);
  }
  await volume.flush();
}

async function startNbd(
  runtime: ServerRuntime,
  stops: StopList,
  address: string,
  parts: Pick<VolumeExportsDeps, "appliance" | "splitters">,
  options: { readonly overlayBytesMax?: number } = {},
): Promise<{ address: string; server: NbdServer }> {
  const exports = new VolumeExports({
    ...parts,
    log: runtime.log,
  }, options.overlayBytesMax === undefined ? {} : { overlayBytesMax: options.overlayBytesMax });
  const server = new NbdServer({
    resolveExport: (name) => exports.resolveExport(name),
    listExports: () => exports.listExports(),
    log: (event) => runtime.log(`NBD ${event.remoteAddress}: ${event.message}${event.error instanceof Error ? `: ${event.error.message}` : ""}`),
  });
  const listener: Listener = await runtime.tcp.listen(address);
  const serving = server.serve(listener);
  stops.add("NBD listener", async () => {
    await listener.close();
    await server.close();
    await serving;
  });
  return { address: listener.address, server };
}

async function startHttp(
  runtime: ServerRuntime,
  stops: StopList,
  address: string,
  controlPlane: ProductControlPlane,
  token: string,
): Promise<{ address: string }> {
  const app = createApp({
    controlPlane,
    token,
    log: (entry) => runtime.log(`HTTP ${entry.method} ${entry.path} ${entry.status}: ${entry.message}`),
    memoryUsage: runtime.memoryUsage?.bind(runtime),
  });
  const http = await runtime.serveHttp((request) => app.fetch(request), address);
  stops.add("HTTP listener", () => http.close());
  return http;
}

function processJson(runtime: ServerRuntime, role: "serve" | "appliance" | "switch", where: { nbd?: string; link?: string }) {
  return {
    role,
    version: ANYTIME_VERSION,
    runtime: runtime.runtimeName,
    startedAt: new Date(runtime.clock.nowUs() / 1000).toISOString(),
    ...(where.nbd !== undefined ? { nbd: `nbd://${where.nbd}` } : {}),
    ...(where.link !== undefined ? { link: where.link } : {}),
  };
}

/** Things to stop, in reverse order of starting; a failing stop is logged, the rest go on. */
class StopList {
  readonly #runtime: ServerRuntime;
  readonly #stops: { what: string; stop: () => Promise<void> }[] = [];
  #stopping: Promise<void> | null = null;

  constructor(runtime: ServerRuntime) {
    this.#runtime = runtime;
  }

  add(what: string, stop: () => Promise<void>): void {
    this.#stops.push({ what, stop });
  }

  stopAll(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const { what, stop } of this.#stops.reverse()) {
        try {
          await stop();
        } catch (error) {
          this.#runtime.log(`Cannot stop the ${what} cleanly: ${(error as Error).message}`);
        }
      }
    })();
    return this.#stopping;
  }
}
