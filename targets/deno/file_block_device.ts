/**
 * The Deno target's `FileBlockDevice`: the portable device of
 * `src/io/file_block_device.ts` (bounds, flush-failure latching, sparse creation) on Deno's file API
 * (`deno_file_system.ts`: the I/O calls, the figures behind them, and how a block device's size is
 * found).
 *
 * @example
 * ```ts
 * import { FileBlockDevice } from "./file_block_device.ts";
 *
 * const device = await FileBlockDevice.open("/tmp/volume.img", {
 *   sizeBytes: 1024 * 1024 * 1024,
 *   create: true,
 * });
 * await device.write(0, new Uint8Array(4096), { fua: true });
 * await device.close();
 * ```
 *
 * @module
 */
import * as portable from "../../src/io/file_block_device.ts";
import { DenoFileSystem } from "./deno_file_system.ts";

export type { FileBlockDeviceOptions } from "../../src/io/file_block_device.ts";

/** A block device on a regular file or a block device, via Deno's file API. */
export type FileBlockDevice = portable.FileBlockDevice;

/** Opens a {@link FileBlockDevice} on Deno's file API: `open(path, options?)`. */
export const FileBlockDevice = {
  open: (path: string, options?: portable.FileBlockDeviceOptions): Promise<FileBlockDevice> =>
    portable.FileBlockDevice.open(new DenoFileSystem(), path, options),
};
