/**
 * A {@link BlockDevice} on a regular file or a block device of a {@link FileSystem}. Written
 * once for every runtime; each target binds its file system
 * (`targets/node/file_block_device.ts`, `targets/deno/file_block_device.ts`).
 *
 * Reads, and writes under `asyncWriteBytesMin` (256 KiB), are the file system's synchronous
 * calls through the page cache; larger writes go through its `write`, which a runtime that can
 * runs off the event loop (Node: the thread pool), so the loop keeps decoding requests and
 * forwarding copies while the kernel copies megabytes into the page cache (Node, 1 MiB NBD
 * writes through the switch: the blocking call was ~14% of the process's time, and the copy
 * ran at 97-109 MiB/s beside 61-78 synchronous on the loaded 2-core VM, 2026-12-01). Smaller
 * writes stay synchronous, because there the pool hop costs more than the copy. For example, fio
 * 4 KiB random writes, 16 in flight, into the bare NBD server reached 32k-58k writes/s
 * synchronous and 25k-28k through the thread pool; for 64 and 128 KiB, see
 * {@link asyncWriteBytesMin}. `flush` and
 * `fua` use its asynchronous `datasync`, so the event loop keeps serving while the disk
 * syncs. The figures behind these choices, per runtime, are in
 * `targets/node/node_file_system.ts` and `targets/deno/deno_file_system.ts`. A block
 * device's size is probed by the file system (`stat` reports 0 for one).
 *
 * Writes in flight at once are not ordered against each other (as on a disk); a caller that
 * needs two overlapping writes in order waits for the first (the splitter does). A resolved
 * write is visible to every later read and made durable by every later flush.
 *
 * Once a flush fails, every later flush (and fua write) rejects too: the kernel may have
 * dropped the dirty pages, so a retry that succeeded would lie (PostgreSQL's "fsyncgate").
 *
 * @example
 * ```ts
 * import { FileBlockDevice } from "./file_block_device.ts";
 * import { NodeFileSystem } from "../../targets/node/node_file_system.ts";
 *
 * const device = await FileBlockDevice.open(new NodeFileSystem(), "/tmp/volume.img", {
 *   sizeBytes: 1024 * 1024 * 1024,
 *   create: true,
 * });
 * await device.write(0, new Uint8Array(4096), { fua: true });
 * await device.close();
 * ```
 *
 * @module
 */
import {
  assertBlockRange,
  type BlockDevice,
  type BlockDeviceCapabilities,
  ReadOnlyDeviceError,
  SECTOR_BYTES,
  type WriteOptions,
} from "./block_device.ts";
import { type FileHandle, type FileSystem, readFullySync, writeFullyInPieces, writeFullySync } from "./file_system.ts";
import { WRITE_CALL_BYTES_MAX } from "./file_segment_store.ts";

/**
 * Writes of at least this many bytes go through the file system's (asynchronous) `write`.
 * Measured on the Node target (2026-12-02, 512 MiB of random writes into a fresh sparse file,
 * 32 in flight), synchronous vs thread pool: 64 KiB 2,603-2,755 vs 1,694-1,846 MiB/s (CPU per
 * write 24 vs 56 µs); 128 KiB 3,028 vs 2,089; 256 KiB 1,796-2,744 vs 2,874-2,879; 512 KiB
 * 678 vs 2,437; 1 MiB 438-816 vs 2,522-3,116. Through the real switch with 64 KiB host writes
 * (`BENCH_WIRE_PARTS=switch64k npm run bench -- wire`, two pairs of runs), synchronous 64 KiB
 * writes cut the switch's CPU per write from 136-221 to 95-108 µs, and the end-to-end rate
 * went from 283-418 to 440-450 MiB/s journaled.
 */
export const asyncWriteBytesMin = 256 * 1024;

/** Options of {@link FileBlockDevice.open}. */
export interface FileBlockDeviceOptions {
  /**
   * The device size. Required to create a file; for an existing file or block device it must
   * match (omit it to take the size found).
   */
  readonly sizeBytes?: number;
  /** Create a sparse file of `sizeBytes` if `path` does not exist. */
  readonly create?: boolean;
  /** Open for reading only; writes reject with {@link ReadOnlyDeviceError}. */
  readonly readOnly?: boolean;
}

/** The file block device; see the module doc. */
export class FileBlockDevice implements BlockDevice {
  /** The file or device node this device reads and writes. */
  readonly path: string;
  readonly sizeBytes: number;
  readonly capabilities: BlockDeviceCapabilities;
  readonly #handle: FileHandle;
  /** Syncs and writes in flight; `close` waits for them so the descriptor is not reused under them. */
  readonly #syncing = new Set<Promise<void>>();
  #syncFailure: { cause: unknown } | null = null;
  #closed = false;

  private constructor(
    handle: FileHandle,
    path: string,
    options: { sizeBytes: number; readOnly: boolean },
  ) {
    this.#handle = handle;
    this.path = path;
    this.sizeBytes = options.sizeBytes;
    const writable = !options.readOnly;
    this.capabilities = { writable, flush: writable, fua: writable };
  }

  /**
   * Opens `path`, or creates it as a sparse file of `sizeBytes` when `create` is set and it
   * does not exist (the new file and its directory entry are synced).
   *
   * @throws {TypeError} when creating without `sizeBytes`, creating read-only, or `path` is
   *   neither a regular file nor a block device.
   * @throws {RangeError} when a size is not a positive multiple of 512 or `sizeBytes`
   *   differs from the size found.
   */
  static async open(
    fileSystem: FileSystem,
    path: string,
    options: FileBlockDeviceOptions = {},
  ): Promise<FileBlockDevice> {
    const readOnly = options.readOnly ?? false;
    if (options.create && readOnly) {
      throw new TypeError(`Cannot create "${path}" read-only`);
    }
    if (options.sizeBytes !== undefined) assertDeviceSize(path, options.sizeBytes);
    let handle: FileHandle;
    try {
      handle = fileSystem.openFile(path, { read: true, write: !readOnly });
    } catch (error) {
      if (!(options.create && fileSystem.isNotFoundError(error))) throw error;
      if (options.sizeBytes === undefined) {
        throw new TypeError(`Cannot create "${path}": no sizeBytes given`);
      }
      handle = await createSparseFile(fileSystem, path, options.sizeBytes);
    }
    try {
      const sizeBytes = handle.sizeBytes();
      if (sizeBytes === null) {
        throw new TypeError(`Cannot use "${path}" as a device: not a regular file or block device`);
      }
      assertDeviceSize(path, sizeBytes);
      if (options.sizeBytes !== undefined && options.sizeBytes !== sizeBytes) {
        throw new RangeError(
          `Cannot open "${path}" as ${options.sizeBytes} bytes: it holds ${sizeBytes}`,
        );
      }
      return new FileBlockDevice(handle, path, { sizeBytes, readOnly });
    } catch (error) {
      handle.close();
      throw error;
    }
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertBlockRange(this.sizeBytes, offsetBytes, target.length);
    readFullySync(this.#handle, target, offsetBytes);
  }

  async write(offsetBytes: number, source: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.#checkOpen();
    if (!this.capabilities.writable) throw new ReadOnlyDeviceError(`file "${this.path}"`);
    assertBlockRange(this.sizeBytes, offsetBytes, source.length);
    if (source.length < asyncWriteBytesMin) {
      writeFullySync(this.#handle, source, offsetBytes);
      if (options.fua) await this.#sync();
      return;
    }
    // Tracked with its fua sync, so `close` cannot close the file between the two.
    const writing = this.#writeOffLoop(offsetBytes, source, options.fua === true);
    this.#syncing.add(writing);
    try {
      await writing;
    } finally {
      this.#syncing.delete(writing);
    }
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    if (!this.capabilities.flush) return;
    await this.#sync();
  }

  /** Waits for syncs in flight, then closes the file. Unflushed writes are not synced. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#syncing);
    this.#handle.close();
  }

  async #writeOffLoop(offsetBytes: number, source: Uint8Array, fua: boolean): Promise<void> {
    // In 1 MiB calls issued together, as the journal writes (a restore writes 4 MiB at a time).
    await writeFullyInPieces(this.#handle, source, offsetBytes, WRITE_CALL_BYTES_MAX);
    if (fua) await this.#sync();
  }

  async #sync(): Promise<void> {
    if (this.#syncFailure !== null) {
      throw new Error(`Cannot flush "${this.path}": an earlier flush failed`, {
        cause: this.#syncFailure.cause,
      });
    }
    const syncing = this.#handle.datasync();
    this.#syncing.add(syncing);
    try {
      await syncing;
    } catch (error) {
      this.#syncFailure = { cause: error };
      throw new Error(`Cannot flush "${this.path}"`, { cause: error });
    } finally {
      this.#syncing.delete(syncing);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`Cannot use "${this.path}": the device is closed`);
  }
}

function assertDeviceSize(path: string, sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR_BYTES !== 0) {
    throw new RangeError(
      `Cannot use "${path}" as a device of ${sizeBytes} bytes: not a positive multiple of ${SECTOR_BYTES}`,
    );
  }
}

/** Creates `path` exclusively as a sparse file and makes it and its name durable. */
async function createSparseFile(
  fileSystem: FileSystem,
  path: string,
  sizeBytes: number,
): Promise<FileHandle> {
  const handle = fileSystem.openFile(path, { read: true, write: true, create: true, exclusive: true });
  try {
    await handle.truncate(sizeBytes);
    await handle.datasync();
    await fileSystem.syncDirectory(fileSystem.parentPath(path));
    return handle;
  } catch (error) {
    handle.close();
    throw error;
  }
}
