/**
 * The Deno target's I/O: files through `Deno.open` behind the seams of `src/io/`.
 *
 * @example
 * ```ts
 * import { FileSegmentStore, SystemClock } from "./mod.ts";
 *
 * const store = await FileSegmentStore.open("/var/lib/anytime/journal");
 * const clock = new SystemClock();
 * ```
 *
 * @module
 */

/** Which runtime this target serves (tests check they run the one they think). */
export const TARGET_NAME = "deno" as const;

export { FileBlockDevice, type FileBlockDeviceOptions } from "./file_block_device.ts";
export { FileDurableCell } from "./file_durable_cell.ts";
export {
  FileSegmentStore,
  type FileSegmentStoreOptions,
  OPEN_FILES_MAX_DEFAULT,
} from "./file_segment_store.ts";
/** The runtime's file system behind the portable file classes' seam. */
export { DenoFileSystem as RuntimeFileSystem } from "./deno_file_system.ts";
export { SystemClock, WALL_CLOCK_DRIFT_US_MAX } from "./system_clock.ts";
export { TcpConnection, TcpListener, TcpTransport, type TcpTransportOptions } from "./tcp_transport.ts";
export { HTTP_CLOSE_LINGER_MS_DEFAULT, HttpServer, type HttpHandler, type HttpServerOptions } from "./http_server.ts";
export { denoServerRuntime as createServerRuntime } from "./server_runtime.ts";
