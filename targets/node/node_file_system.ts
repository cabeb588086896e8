/**
 * The Node target's {@link FileSystem}: `node:fs` behind the seam that the portable file
 * classes (`src/io/file_segment_store.ts`, `file_block_device.ts`, `file_durable_cell.ts`)
 * are written against.
 *
 * I/O calls, chosen by measuring on this machine (Node 20, 2 cores, 256 MiB file, medians):
 *
 * | call | figure |
 * | --- | --- |
 * | random 4 KiB read, page cache warm: `readSync` | ~680k ops/s |
 * | same, `FileHandle.read` / `fs.read` callback, 1 in flight | ~46k / ~56k ops/s |
 * | same, `FileHandle.read`, 16 in flight | ~97k ops/s |
 * | 1 MiB positional overwrite: `writeSync` / `FileHandle.write` | ~100 / ~120 µs |
 * | fdatasync after a 4 KiB write: sync / callback / `FileHandle.datasync` | p50 ~0.09 / ~0.14 / ~0.14 ms |
 *
 * So data moves with positional `readSync`/`writeSync` (page-cache speed, ~7x the best async
 * rate; they block the event loop only for a memory copy); `write`, which the segment store
 * uses for writes of 256 KiB and more and for zero-filling a new segment, is the callback
 * `fs.write` on the thread pool (the ~40 µs hop is nothing next to copying megabytes, and 64
 * blocking 1 MiB writes would stall the loop ~6 ms); `datasync` is the callback
 * `fs.fdatasync` on the thread pool: ~40 µs more than the blocking call, but the event loop
 * keeps ingesting while the disk syncs, which group commit needs. The callback API skips the
 * `FileHandle` wrapper.
 *
 * Through `FileSegmentStore` (same machine): `read` of a random cached 4 KiB
 * ~450k-490k ops/s (the promise wrapper and bounds check cost ~0.5 µs over a bare
 * `readSync`); 64 KiB writes with a sync per MiB ~0.7 GiB/s, the same as bare `writeSync` +
 * `fdatasyncSync` (the disk bounds it); a 4 KiB write + sync p50 ~0.17 ms; `create` of a
 * 64 MiB segment ~100 ms, almost all of it the fdatasync of 64 MiB, so the journal should
 * create its next segment ahead of need.
 *
 * A block device's size comes from sysfs: `fstat` reports 0 for one and Node has no
 * `lseek(SEEK_END)`.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "./node_file_system.ts";
 * import { FileSegmentStore } from "../../src/io/file_segment_store.ts";
 *
 * const store = await FileSegmentStore.open(new NodeFileSystem(), "/var/lib/anytime/journal");
 * ```
 *
 * @module
 */
import fs from "node:fs";
import nodePath from "node:path";
import type { DirectIo, FileHandle, FileSystem, OpenFileOptions } from "../../src/io/file_system.ts";

/** `node:fs` as a {@link FileSystem}; see the module doc. Holds no state. */
export class NodeFileSystem implements FileSystem {
  /**
   * `O_DIRECT` on Linux, 4 KiB aligned (the largest logical block size in use). A file system
   * without it (tmpfs before Linux 6.6) rejects the open with EINVAL; a misaligned write fails
   * with EINVAL too.
   */
  readonly directIo: DirectIo | undefined = fs.constants.O_DIRECT === undefined ? undefined : {
    alignmentBytes: 4096,
    isUnsupported: (error: unknown) => isErrorCode(error, "EINVAL"),
  };

  openFile(path: string, options: OpenFileOptions): FileHandle {
    return new NodeFileHandle(fs.openSync(path, openFlags(options)));
  }

  async fileSizeBytes(path: string): Promise<number> {
    return (await fs.promises.stat(path)).size;
  }

  /** Copies into a plain `Uint8Array`, not a `Buffer`. */
  async readFileOrNull(path: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await fs.promises.readFile(path));
    } catch (error) {
      if (this.isNotFoundError(error)) return null;
      throw error;
    }
  }

  rename(fromPath: string, toPath: string): Promise<void> {
    return fs.promises.rename(fromPath, toPath);
  }

  remove(path: string): Promise<void> {
    return fs.promises.unlink(path);
  }

  readDirectory(path: string): Promise<string[]> {
    return fs.promises.readdir(path);
  }

  async makeDirectory(path: string): Promise<boolean> {
    try {
      await fs.promises.mkdir(path);
      return true;
    } catch (error) {
      if (isErrorCode(error, "EEXIST")) return false;
      throw error;
    }
  }

  async syncDirectory(path: string): Promise<void> {
    const fd = fs.openSync(path, "r");
    try {
      await new Promise<void>((resolve, reject) => {
        fs.fsync(fd, (error) => (error === null ? resolve() : reject(error)));
      });
    } finally {
      fs.closeSync(fd);
    }
  }

  joinPath(directory: string, name: string): string {
    return nodePath.join(directory, name);
  }

  parentPath(path: string): string {
    return nodePath.dirname(nodePath.resolve(path));
  }

  isNotFoundError(error: unknown): boolean {
    return isErrorCode(error, "ENOENT");
  }
}

/** A `node:fs` descriptor as a {@link FileHandle}. */
class NodeFileHandle implements FileHandle {
  readonly #fd: number;

  constructor(fd: number) {
    this.#fd = fd;
  }

  readSync(target: Uint8Array, positionBytes: number): number {
    return fs.readSync(this.#fd, target, 0, target.length, positionBytes);
  }

  writeSync(source: Uint8Array, positionBytes: number): number {
    return fs.writeSync(this.#fd, source, 0, source.length, positionBytes);
  }

  /** `fs.read` on the thread pool. */
  read(target: Uint8Array, positionBytes: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.read(this.#fd, target, 0, target.length, positionBytes, (error, readBytes) =>
        error === null ? resolve(readBytes) : reject(error));
    });
  }

  /** `fs.write` on the thread pool. */
  write(source: Uint8Array, positionBytes: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.write(this.#fd, source, 0, source.length, positionBytes, (error, writtenBytes) =>
        error === null ? resolve(writtenBytes) : reject(error));
    });
  }

  /** `fs.fdatasync` on the thread pool. */
  datasync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(this.#fd, (error) => (error === null ? resolve() : reject(error)));
    });
  }

  datasyncSync(): void {
    fs.fdatasyncSync(this.#fd);
  }

  truncate(sizeBytes: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.ftruncate(this.#fd, sizeBytes, (error) => (error === null ? resolve() : reject(error)));
    });
  }

  sizeBytes(): number | null {
    const stat = fs.fstatSync(this.#fd);
    if (stat.isFile()) return stat.size;
    if (!stat.isBlockDevice()) return null;
    // Linux dev_t: major in bits 8-19, minor in bits 0-7 and 20-31.
    const major = (stat.rdev >>> 8) & 0xfff;
    const minor = (stat.rdev & 0xff) | ((stat.rdev >>> 12) & 0xfff00);
    const sectors = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, "utf8");
    return Number(sectors.trim()) * 512;
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}

/** The `open(2)` flags for `options` (the numeric form of `"r"`, `"r+"`, `"w"`, `"wx+"`...). */
function openFlags(options: OpenFileOptions): number {
  const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
  let flags = options.write ? (options.read ? O_RDWR : O_WRONLY) : O_RDONLY;
  if (options.create) flags |= O_CREAT;
  if (options.exclusive) flags |= O_EXCL;
  if (options.truncate) flags |= O_TRUNC;
  if (options.direct) {
    if (fs.constants.O_DIRECT === undefined) throw new Error("Cannot open a file for direct I/O on this platform");
    flags |= fs.constants.O_DIRECT;
  }
  return flags;
}

/** Whether `error` is a `node:fs` error with the given `code`. */
function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
