/**
 * The Deno target's {@link FileSystem}: Deno's file API behind the seam that the portable
 * file classes (`src/io/file_segment_store.ts`, `file_block_device.ts`,
 * `file_durable_cell.ts`) are written against. Paths are POSIX paths (the fsync-a-directory
 * rules the classes follow are Linux's).
 *
 * `Deno.FsFile` has no positional read or write, so a positional call is `seekSync` then
 * `readSync`/`writeSync`: synchronous, so nothing interleaves between the seek and the
 * transfer. For the same reason `write` is the synchronous one too: an asynchronous seek and
 * write could be split by another call on the file. Chosen by measuring on this machine
 * (Deno 2.9, 2 cores, 256 MiB file, medians):
 *
 * | call | figure |
 * | --- | --- |
 * | random 4 KiB read, page cache warm: `seekSync` + `readSync` | ~540k ops/s |
 * | same, `await seek` + `await read`, 1 in flight | ~27k ops/s |
 * | 1 MiB positional overwrite: `seekSync` + `writeSync` / `await seek` + `await write` | ~100 / ~140 µs |
 * | fdatasync after a 4 KiB write: `syncDataSync` / `syncData` | p50 ~0.11 / ~0.14 ms |
 *
 * So data moves synchronously (~20x the asynchronous rate), and `datasync` is the
 * asynchronous `syncData()`, which runs off the main thread: ~30 µs more than the blocking
 * call, but the event loop keeps ingesting while the disk syncs.
 *
 * Through `FileSegmentStore` (same machine): `read` of a random cached 4 KiB ~440k ops/s;
 * 64 KiB writes with a sync per MiB ~0.7-0.9 GiB/s (disk-bound: bare synchronous calls do no
 * better); a 4 KiB write + sync p50 ~0.17 ms; `create` of a 64 MiB segment ~100 ms, almost all
 * of it the fdatasync of 64 MiB, so the journal should create its next segment ahead of need.
 *
 * A block device's size is found by seeking to its end (`stat` reports 0 for one).
 *
 * @example
 * ```ts
 * import { DenoFileSystem } from "./deno_file_system.ts";
 * import { FileSegmentStore } from "../../src/io/file_segment_store.ts";
 *
 * const store = await FileSegmentStore.open(new DenoFileSystem(), "/var/lib/anytime/journal");
 * ```
 *
 * @module
 */
import type { FileHandle, FileSystem, OpenFileOptions } from "../../src/io/file_system.ts";

/** Deno's file API as a {@link FileSystem}; see the module doc. Holds no state. */
export class DenoFileSystem implements FileSystem {
  // No `directIo`: Deno's open options have no O_DIRECT, so every write goes through the
  // page cache (the segment store then never asks for `direct`).
  openFile(path: string, options: OpenFileOptions): FileHandle {
    if (options.direct) throw new Error("Cannot open a file for direct I/O: Deno's file API has no O_DIRECT");
    return new DenoFileHandle(Deno.openSync(path, {
      read: options.read ?? false,
      write: options.write ?? false,
      create: options.create ?? false,
      createNew: options.exclusive ?? false,
      truncate: options.truncate ?? false,
    }));
  }

  async fileSizeBytes(path: string): Promise<number> {
    return (await Deno.stat(path)).size;
  }

  async readFileOrNull(path: string): Promise<Uint8Array | null> {
    try {
      return await Deno.readFile(path);
    } catch (error) {
      if (this.isNotFoundError(error)) return null;
      throw error;
    }
  }

  rename(fromPath: string, toPath: string): Promise<void> {
    return Deno.rename(fromPath, toPath);
  }

  remove(path: string): Promise<void> {
    return Deno.remove(path);
  }

  async readDirectory(path: string): Promise<string[]> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  }

  async makeDirectory(path: string): Promise<boolean> {
    try {
      await Deno.mkdir(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      throw error;
    }
  }

  /** Deno opens a directory for reading and `sync()` runs fsync(2) on it (checked with strace). */
  async syncDirectory(path: string): Promise<void> {
    const directory = await Deno.open(path, { read: true });
    try {
      await directory.sync();
    } finally {
      directory.close();
    }
  }

  joinPath(directory: string, name: string): string {
    return directory.endsWith("/") ? `${directory}${name}` : `${directory}/${name}`;
  }

  /** `/` for a top-level name; a relative `path` is taken against the working directory. */
  parentPath(path: string): string {
    const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
    const trimmed = absolute.replace(/\/+$/, "");
    const slash = trimmed.lastIndexOf("/");
    return slash <= 0 ? "/" : trimmed.slice(0, slash);
  }

  isNotFoundError(error: unknown): boolean {
    return error instanceof Deno.errors.NotFound;
  }
}

/** A `Deno.FsFile` as a {@link FileHandle}. */
class DenoFileHandle implements FileHandle {
  readonly #file: Deno.FsFile;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  readSync(target: Uint8Array, positionBytes: number): number {
    this.#file.seekSync(positionBytes, Deno.SeekMode.Start);
    return this.#file.readSync(target) ?? 0;
  }

  writeSync(source: Uint8Array, positionBytes: number): number {
    this.#file.seekSync(positionBytes, Deno.SeekMode.Start);
    return this.#file.writeSync(source);
  }

  /** The synchronous read: see the module doc. */
  async read(target: Uint8Array, positionBytes: number): Promise<number> {
    return this.readSync(target, positionBytes);
  }

  /** The synchronous write: see the module doc. */
  async write(source: Uint8Array, positionBytes: number): Promise<number> {
    return this.writeSync(source, positionBytes);
  }

  datasync(): Promise<void> {
    return this.#file.syncData();
  }

  datasyncSync(): void {
    this.#file.syncDataSync();
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.#file.truncate(sizeBytes);
  }

  sizeBytes(): number | null {
    const info = this.#file.statSync();
    if (info.isFile) return info.size;
    if (info.isBlockDevice) return this.#file.seekSync(0, Deno.SeekMode.End);
    return null;
  }

  close(): void {
    this.#file.close();
  }
}
