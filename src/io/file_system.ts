/**
 * The `FileSystem` seam: the few file operations that the portable file classes
 * (`FileSegmentStore`, `FileBlockDevice`, `FileDurableCell` in this folder) need, so their
 * logic (caches, sync-failure latching, atomic creation and replacement, bounds) is written
 * once and each target passes its runtime's file API in (`targets/node/node_file_system.ts`,
 * `targets/deno/deno_file_system.ts`), as Hono's adapters do.
 *
 * A call does all it says or throws (rejects) with the runtime's own error;
 * {@link FileSystem.isNotFoundError} tells a missing path apart in any runtime. Data calls
 * are synchronous where the runtime's synchronous call is the fast one (a page-cache copy)
 * and asynchronous where the wait is the disk's (`datasync`), so the event loop keeps working
 * meanwhile. Paths are the runtime's strings: only the adapter joins or splits them.
 *
 * Below the interfaces are the durable operations built on them once: whole reads and
 * writes over short transfers, a directory made with its parents, an atomic replacement.
 *
 * @example
 * ```ts
 * import { replaceFileAtomically } from "./file_system.ts";
 * import { NodeFileSystem } from "../../targets/node/node_file_system.ts";
 *
 * const fileSystem = new NodeFileSystem();
 * await replaceFileAtomically(fileSystem, "/tmp/state.bin", new Uint8Array([1, 2, 3]));
 * await fileSystem.readFileOrNull("/tmp/state.bin"); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";

/** How {@link FileSystem.openFile} opens a file. */
export interface OpenFileOptions {
  readonly read?: boolean;
  readonly write?: boolean;
  /** Create the file if it is missing (needs `write`). */
  readonly create?: boolean;
  /** With `create`: fail if the file exists (the runtime's "already exists" error). */
  readonly exclusive?: boolean;
  /** Cut an existing file to 0 bytes (needs `write`). */
  readonly truncate?: boolean;
  /**
   * Bypass the page cache (Linux `O_DIRECT`): only for a file system with
   * {@link FileSystem.directIo}, and every write through the handle must then be aligned to
   * its `alignmentBytes` in offset, length and memory address.
   */
  readonly direct?: boolean;
}

/** What a {@link FileSystem} that can write around the page cache says of it. */
export interface DirectIo {
  /** Offset, length and memory address of every direct write are multiples of this. */
  readonly alignmentBytes: number;
  /**
   * Whether `error` (from opening a file with `direct` or writing through it) means this
   * file, or this memory, cannot be written directly: the caller writes through the page
   * cache instead. Any other error is an I/O error.
   */
  isUnsupported(error: unknown): boolean;
}

/**
 * An open file, positioned by each call (no cursor is shared between calls). Calls may run
 * while an asynchronous `write` or `datasync` on the same handle is in flight.
 */
export interface FileHandle {
  /**
   * Reads up to `target.length` bytes at `positionBytes` into `target`.
   *
   * @returns the bytes read: fewer at the end of the file, 0 past it.
   */
  readSync(target: Uint8Array, positionBytes: number): number;
  /**
   * The same as `readSync`, for large buffers: a runtime that can read positionally off the
   * event loop does (Node: the thread pool), so several large reads and writes run at once;
   * one that cannot reads synchronously.
   */
  read(target: Uint8Array, positionBytes: number): Promise<number>;
  /** Writes up to `source.length` bytes at `positionBytes`; returns the bytes written. */
  writeSync(source: Uint8Array, positionBytes: number): number;
  /**
   * The same as `writeSync`, for large buffers: a runtime that can write positionally off
   * the event loop does (Node: the thread pool); one that cannot writes synchronously.
   */
  write(source: Uint8Array, positionBytes: number): Promise<number>;
  /** `fdatasync(2)`, off the event loop: the file's written data is durable when it resolves. */
  datasync(): Promise<void>;
  /** `fdatasync(2)`, blocking: for the rare paths that cannot wait (closing a dirty file). */
  datasyncSync(): void;
  /** Sets the file's size; growing it leaves a sparse, zero-reading tail. */
  truncate(sizeBytes: number): Promise<void>;
  /**
   * The size of a regular file or a block device (each runtime probes a device its own
   * way, since `stat` reports 0 for one), or `null` for anything else.
   */
  sizeBytes(): number | null;
  /** Closes the handle; no call may follow, and calls in flight must have settled. */
  close(): void;
}

/** The file operations of one runtime; see the module doc. */
export interface FileSystem {
  /** Present where files can be written around the page cache (`OpenFileOptions.direct`). */
  readonly directIo?: DirectIo;
  /** Opens the file at `path`. */
  openFile(path: string, options: OpenFileOptions): FileHandle;
  /** The size of the regular file at `path`. */
  fileSizeBytes(path: string): Promise<number>;
  /** The whole file at `path` as a plain `Uint8Array`, or `null` if nothing is there. */
  readFileOrNull(path: string): Promise<Uint8Array | null>;
  /** Renames `fromPath` to `toPath`, atomically replacing a file there. */
  rename(fromPath: string, toPath: string): Promise<void>;
  /** Removes the file at `path`; rejects if it is missing. */
  remove(path: string): Promise<void>;
  /** The names in the directory at `path`, in no set order. */
  readDirectory(path: string): Promise<string[]>;
  /**
   * Creates the one directory `path`; resolves `false` if something exists there already,
   * and rejects (see {@link FileSystem.isNotFoundError}) if its parent is missing.
   */
  makeDirectory(path: string): Promise<boolean>;
  /**
   * `fsync(2)` on the directory at `path`, off the event loop: on Linux a created, renamed
   * or removed name survives power loss only once its directory is synced.
   */
  syncDirectory(path: string): Promise<void>;
  /** `name` inside `directory`. */
  joinPath(directory: string, name: string): string;
  /** The directory holding `path`, made absolute (itself for the root). */
  parentPath(path: string): string;
  /** Whether `error` is this runtime's error for a missing path. */
  isNotFoundError(error: unknown): boolean;
}

/**
 * Largest length one `readSync`/`writeSync`/`write` call is given: Node refuses lengths
 * above 2 GiB - 1, and a bounded call keeps a huge request from looking like a stall.
 */
const ioCallBytesMax = 1024 * 1024 * 1024;

/**
 * Fills all of `target` from `positionBytes`, looping over short reads.
 *
 * @throws {Error} when the file ends first (it was truncated behind our back).
 */
export function readFullySync(handle: FileHandle, target: Uint8Array, positionBytes: number): void {
  let doneBytes = 0;
  while (doneBytes < target.length) {
    doneBytes += checkRead(handle.readSync(nextPart(target, doneBytes), positionBytes + doneBytes), target, positionBytes, doneBytes);
  }
}

/** {@link readFullySync} through the handle's `read` (off the event loop where the runtime can). */
export async function readFully(handle: FileHandle, target: Uint8Array, positionBytes: number): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < target.length) {
    doneBytes += checkRead(await handle.read(nextPart(target, doneBytes), positionBytes + doneBytes), target, positionBytes, doneBytes);
  }
}

function checkRead(readBytes: number, target: Uint8Array, positionBytes: number, doneBytes: number): number {
  if (readBytes === 0) {
    throw new Error(`Cannot read ${target.length} bytes at offset ${positionBytes}: the file ends after ${doneBytes}`);
  }
  return readBytes;
}

/** Writes all of `source` at `positionBytes`, looping over short writes. */
export function writeFullySync(handle: FileHandle, source: Uint8Array, positionBytes: number): void {
  let doneBytes = 0;
  while (doneBytes < source.length) {
    doneBytes += handle.writeSync(nextPart(source, doneBytes), positionBytes + doneBytes);
  }
}

/** Writes all of `source` at `positionBytes` through the handle's `write`, looping over short writes. */
export async function writeFully(
  handle: FileHandle,
  source: Uint8Array,
  positionBytes: number,
): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < source.length) {
    doneBytes += await handle.write(nextPart(source, doneBytes), positionBytes + doneBytes);
  }
}

/**
 * {@link writeFully} in calls of at most `pieceBytes`, all issued at once (positional writes to
 * distinct ranges): a huge single call can cost the kernel several times more to copy into the
 * page cache (measured: `WRITE_CALL_BYTES_MAX` in `file_segment_store.ts`), and awaiting
 * each piece before the next would need the event loop, which a busy producer holds.
 * Resolves once every piece has; rejects with the first failure after all settled.
 */
export async function writeFullyInPieces(
  handle: FileHandle,
  source: Uint8Array,
  positionBytes: number,
  pieceBytes: number,
): Promise<void> {
  if (source.length <= pieceBytes) return await writeFully(handle, source, positionBytes);
  const pieces: Promise<void>[] = [];
  for (let doneBytes = 0; doneBytes < source.length; doneBytes += pieceBytes) {
    const endBytes = Math.min(source.length, doneBytes + pieceBytes);
    pieces.push(writeFully(handle, source.subarray(doneBytes, endBytes), positionBytes + doneBytes));
  }
  const outcomes = await Promise.allSettled(pieces);
  for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
}

/** The next call's part of `bytes` after `doneBytes`: the whole array when it fits in one call. */
function nextPart(bytes: Uint8Array, doneBytes: number): Uint8Array {
  if (doneBytes === 0 && bytes.length <= ioCallBytesMax) return bytes;
  return bytes.subarray(doneBytes, Math.min(bytes.length, doneBytes + ioCallBytesMax));
}

/**
 * Creates `directory` and its missing parents, syncing each new entry's parent so the
 * directory itself survives power loss.
 */
export async function makeDirectoryDurably(fileSystem: FileSystem, directory: string): Promise<void> {
  const parent = fileSystem.parentPath(directory);
  let syncParent: boolean;
  try {
    syncParent = await fileSystem.makeDirectory(directory);
  } catch (error) {
    if (!fileSystem.isNotFoundError(error)) throw error;
    assert(parent !== directory, `Cannot make "${directory}": the root is missing`);
    await makeDirectoryDurably(fileSystem, parent);
    // If a concurrent open made it meanwhile, that open may not have synced it yet.
    await fileSystem.makeDirectory(directory);
    syncParent = true;
  }
  if (syncParent) await fileSystem.syncDirectory(parent);
}

/**
 * Replaces the file at `path` atomically and durably: write `path.tmp`, datasync it, rename
 * it over `path`, sync the directory. A crash leaves the old or the new bytes (and perhaps a
 * stale `.tmp`, which the owner removes at open), never a mix. Callers serialize calls for
 * the same path.
 */
export async function replaceFileAtomically(
  fileSystem: FileSystem,
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const temporaryPath = `${path}.tmp`;
  const handle = fileSystem.openFile(temporaryPath, { write: true, create: true, truncate: true });
  try {
    writeFullySync(handle, bytes, 0);
    await handle.datasync();
  } finally {
    handle.close();
  }
  await fileSystem.rename(temporaryPath, path);
  await fileSystem.syncDirectory(fileSystem.parentPath(path));
}

/** Removes the file at `path` if there is one; resolves whether there was. */
export async function removeIfExists(fileSystem: FileSystem, path: string): Promise<boolean> {
  try {
    await fileSystem.remove(path);
    return true;
  } catch (error) {
    if (fileSystem.isNotFoundError(error)) return false;
    throw error;
  }
}
