/**
 * Small `node:fs` helpers shared by the Node target's file classes: whole positional reads
 * and writes (synchronous: page-cache speed, see `file_segment_store.ts` for the figures),
 * data syncs on the thread pool (so the event loop keeps ingesting while the disk syncs),
 * directory syncs, and atomic file replacement.
 */
import fs from "node:fs";
import nodePath from "node:path";

/**
 * Largest length one `readSync`/`writeSync` call is given: Node refuses lengths above
 * 2 GiB - 1, and a bounded call keeps a huge request from looking like a stall.
 */
const ioCallBytesMax = 1024 * 1024 * 1024;

/**
 * Writes all of `source` at `positionBytes`, looping over short writes.
 *
 * @throws the `node:fs` error of the first failing call.
 */
export function writeFullSync(fd: number, source: Uint8Array, positionBytes: number): void {
  let doneBytes = 0;
  while (doneBytes < source.length) {
    const lengthBytes = Math.min(source.length - doneBytes, ioCallBytesMax);
    doneBytes += fs.writeSync(fd, source, doneBytes, lengthBytes, positionBytes + doneBytes);
  }
}

/**
 * Writes all of `source` at `positionBytes` on the thread pool, looping over short writes: for
 * large writes, so the event loop keeps working while the kernel copies into its cache.
 */
export async function writeFull(fd: number, source: Uint8Array, positionBytes: number): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < source.length) {
    const lengthBytes = Math.min(source.length - doneBytes, ioCallBytesMax);
    doneBytes += await new Promise<number>((resolve, reject) => {
      fs.write(fd, source, doneBytes, lengthBytes, positionBytes + doneBytes, (error, written) =>
        error === null ? resolve(written) : reject(error));
    });
  }
}

/**
 * Fills all of `target` from `positionBytes`, looping over short reads.
 *
 * @throws {Error} when the file ends first (it was truncated behind our back).
 */
export function readFullSync(fd: number, target: Uint8Array, positionBytes: number): void {
  let doneBytes = 0;
  while (doneBytes < target.length) {
    const lengthBytes = Math.min(target.length - doneBytes, ioCallBytesMax);
    const readBytes = fs.readSync(fd, target, doneBytes, lengthBytes, positionBytes + doneBytes);
    if (readBytes === 0) {
      throw new Error(
        `Cannot read ${target.length} bytes at offset ${positionBytes}: the file ends after ${doneBytes}`,
      );
    }
    doneBytes += readBytes;
  }
}

/** `fdatasync(2)` on the thread pool; the callback API skips the FileHandle wrapper. */
export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (error) => (error === null ? resolve() : reject(error)));
  });
}

/** `fsync(2)` on the thread pool. */
export function fsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (error) => (error === null ? resolve() : reject(error)));
  });
}

/**
 * Makes the directory's entries (created, renamed, removed names) durable: on Linux a new or
 * renamed file survives power loss only once its directory is synced too.
 */
export async function fsyncDirectory(directory: string): Promise<void> {
  const fd = fs.openSync(directory, "r");
  try {
    await fsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates `directory` and its missing parents, syncing each new entry's parent so the
 * directory itself survives power loss.
 */
export async function makeDirectoryDurably(directory: string): Promise<void> {
  const absolute = nodePath.resolve(directory);
  const firstCreated = await fs.promises.mkdir(absolute, { recursive: true });
  if (firstCreated === undefined) return;
  for (let created = absolute;; created = nodePath.dirname(created)) {
    await fsyncDirectory(nodePath.dirname(created));
    if (created === firstCreated) return;
  }
}

/**
 * Replaces the file at `path` atomically and durably: write `path.tmp`, fdatasync it,
 * rename it over `path`, fsync the directory. A crash leaves the old or the new bytes (and
 * perhaps a stale `.tmp`, which the owner removes at open), never a mix. Callers serialize
 * calls for the same path.
 */
export async function replaceFileAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const temporaryPath = `${path}.tmp`;
  const fd = fs.openSync(temporaryPath, "w");
  try {
    writeFullSync(fd, bytes, 0);
    await fdatasync(fd);
  } finally {
    fs.closeSync(fd);
  }
  await fs.promises.rename(temporaryPath, path);
  await fsyncDirectory(nodePath.dirname(path));
}

/** Reads a whole small file into a plain `Uint8Array` (not a Buffer), or `null` if missing. */
export async function readFileOrNull(path: string): Promise<Uint8Array | null> {
  try {
    const buffer = await fs.promises.readFile(path);
    return new Uint8Array(buffer);
  } catch (error) {
    if (isErrorCode(error, "ENOENT")) return null;
    throw error;
  }
}

/** Whether `error` is a `node:fs` error with the given `code`. */
export function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
