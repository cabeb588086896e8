/**
 * Small Deno file helpers shared by the Deno target's file classes. `Deno.FsFile` has no
 * positional read or write, so a whole I/O is `seekSync` then `readSync`/`writeSync` loops:
 * synchronous, so nothing interleaves between the seek and the transfer (and page-cache
 * speed, see `file_segment_store.ts` for the figures). Data syncs use the asynchronous
 * `syncData()`, which runs off the main thread. Paths are POSIX paths (the fsync-a-directory
 * rules these helpers follow are Linux's).
 */

/**
 * Largest length one `readSync`/`writeSync` call is given, so a huge request is split into
 * bounded calls.
 */
const ioCallBytesMax = 1024 * 1024 * 1024;

/** Writes all of `source` at `positionBytes`, looping over short writes. */
export function writeFullSync(file: Deno.FsFile, source: Uint8Array, positionBytes: number): void {
  file.seekSync(positionBytes, Deno.SeekMode.Start);
  let doneBytes = 0;
  while (doneBytes < source.length) {
    const end = Math.min(source.length, doneBytes + ioCallBytesMax);
    doneBytes += file.writeSync(source.subarray(doneBytes, end));
  }
}

/**
 * Fills all of `target` from `positionBytes`, looping over short reads.
 *
 * @throws {Error} when the file ends first (it was truncated behind our back).
 */
export function readFullSync(file: Deno.FsFile, target: Uint8Array, positionBytes: number): void {
  file.seekSync(positionBytes, Deno.SeekMode.Start);
  let doneBytes = 0;
  while (doneBytes < target.length) {
    const end = Math.min(target.length, doneBytes + ioCallBytesMax);
    const readBytes = file.readSync(target.subarray(doneBytes, end));
    if (readBytes === null || readBytes === 0) {
      throw new Error(
        `Cannot read ${target.length} bytes at offset ${positionBytes}: the file ends after ${doneBytes}`,
      );
    }
    doneBytes += readBytes;
  }
}

/**
 * Makes the directory's entries (created, renamed, removed names) durable: on Linux a new or
 * renamed file survives power loss only once its directory is synced too. Deno opens a
 * directory for reading and `sync()` runs fsync(2) on it (checked with strace).
 */
export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await Deno.open(directory, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/** `path` made absolute against the working directory. */
export function absolutePath(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

/** The directory holding `path` (`/` for a top-level name). */
export function parentDirectory(path: string): string {
  const trimmed = absolutePath(path).replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash <= 0 ? "/" : trimmed.slice(0, slash);
}

/** `name` inside `directory`. */
export function joinPath(directory: string, name: string): string {
  return directory.endsWith("/") ? `${directory}${name}` : `${directory}/${name}`;
}

/**
 * Creates `directory` and its missing parents, syncing each new entry's parent so the
 * directory itself survives power loss.
 */
export async function makeDirectoryDurably(directory: string): Promise<void> {
  const missing: string[] = [];
  for (let path = absolutePath(directory).replace(/\/+$/, ""); path !== ""; path = parentDirectory(path)) {
    if (await exists(path)) break;
    missing.push(path);
    if (path === "/") break;
  }
  for (const path of missing.reverse()) {
    try {
      await Deno.mkdir(path);
    } catch (error) {
      // Another process (or a concurrent open) made it between the check and here.
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    await fsyncDirectory(parentDirectory(path));
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
  const file = Deno.openSync(temporaryPath, { write: true, create: true, truncate: true });
  try {
    writeFullSync(file, bytes, 0);
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(temporaryPath, path);
  await fsyncDirectory(parentDirectory(path));
}

/** Reads a whole small file, or `null` if it is missing. */
export async function readFileOrNull(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Whether anything exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
