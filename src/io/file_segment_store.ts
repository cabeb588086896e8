/**
 * A {@link SegmentStore} on a directory of a {@link FileSystem}: one file per segment named
 * `%08d.seg`, and the manifest in `MANIFEST`. Written once for every runtime; each target
 * binds its file system (`targets/node/file_segment_store.ts`,
 * `targets/deno/file_segment_store.ts`), and either runtime opens the other's directory.
 *
 * Durability (the contract in `segment_store.ts`):
 * - `create` makes `%08d.seg.tmp` of its full size (sparse by default, or zero-filled in 1 MiB
 *   chunks; see {@link FileSegmentStoreOptions.allocation}), datasyncs it,
 *   renames it to `%08d.seg` and syncs the directory. A crash mid-create leaves only a
 *   `.tmp`, which `open` removes, so every `.seg` file has its full size.
 * - `write`/`read` are positional; `sync` is fdatasync. Once a sync of a segment fails, every
 *   later sync of it rejects too: the kernel may have dropped the dirty pages, so a retry
 *   that succeeded would lie (PostgreSQL's "fsyncgate").
 * - `remove` removes the file and syncs the directory.
 * - `writeManifest` writes `MANIFEST.tmp`, datasyncs it, renames it to `MANIFEST` and syncs
 *   the directory; calls are serialized.
 *
 * I/O calls: reads and writes below {@link ASYNC_WRITE_BYTES_MIN} are the file system's
 * synchronous calls (page-cache speed, several times any asynchronous rate; they block the
 * event loop only for a memory copy); larger writes go through its `write`, which a runtime
 * runs off the event loop where it can, in calls of at most {@link WRITE_CALL_BYTES_MAX};
 * `sync` is the asynchronous `datasync`, so the event
 * loop keeps ingesting while the disk syncs, which group commit needs. The figures behind
 * these choices, per runtime, are in `targets/node/node_file_system.ts` and
 * `targets/deno/deno_file_system.ts`.
 *
 * Direct writes: where the file system can write around the page cache
 * ({@link FileSystem.directIo}, Linux `O_DIRECT` on Node), a write of at least
 * {@link DIRECT_WRITE_BYTES_MIN} sends its aligned middle straight to the disk: from the
 * source itself when that is aligned memory (`aligned_memory.ts`; the journal's group
 * buffers are), else copied first into one aligned staging buffer that the store allocates
 * at its first such write; the
 * unaligned head and tail (at most one block each, shared with the neighbouring writes) go
 * through the page cache as before, so no block is ever written both ways. A journal writes
 * every byte once and syncs it at once, so caching it only costs: the kernel's copy into new
 * page-cache pages was half of the CPU of a 1 MiB `nbdcopy` through the switch (perf), and
 * the sync then wrote the same bytes out anyway. A file system or memory that refuses a
 * direct write (EINVAL) turns them off for the store, and the write goes through the page
 * cache; `directWrites` says which is in use, and the `log` option hears of the switch once
 * (`serve` and `appliance` pass their log). Reads always use the page cache.
 *
 * A direct write's middle goes in one call per staging turn (8 MiB at most, a whole journal
 * group), not in {@link WRITE_CALL_BYTES_MAX} pieces: there is no page-cache copy to split,
 * and each piece costs the runtime a hand-off to a pool thread and back, which waits for a
 * core when the machine is busy. Measured on Node (2026-12-02), 1 GiB of 1 MiB records into
 * a journal with a CPU hog on the other core: 741-786 MiB/s in one call against 608-694 in
 * 1 MiB pieces (two alternating pairs); a 1 MiB `nbdcopy` through the switch (steady rounds
 * of five alternating pairs of `npm run bench -- nbd`): 462-660 against 370-529 MiB/s, the
 * one call ahead in four pairs of five (mean +8 to +16%); the `--flush` variant 397-546
 * against 337-486, level in the last two pairs.
 *
 * Open files: the journal keeps a few segments hot, but images read from many. Segment files
 * stay open in a cache of at most `openFilesMax` (default {@link OPEN_FILES_MAX_DEFAULT})
 * handles (and the direct descriptors of the segments being written), least recently used
 * closed first. A handle with a sync or a large write in flight
 * is never closed (the kernel could reuse its descriptor under the call); one with unsynced
 * writes is synced before it is closed, so no write-back error goes unreported.
 *
 * @example
 * ```ts
 * import { FileSegmentStore } from "./file_segment_store.ts";
 * import { NodeFileSystem } from "../../targets/node/node_file_system.ts";
 *
 * const store = await FileSegmentStore.open(new NodeFileSystem(), "/var/lib/anytime/journal");
 * await store.create(1, 64 * 1024 * 1024);
 * await store.write(1, 0, new Uint8Array(4096));
 * await store.sync(1);
 * await store.close();
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import { allocateAligned, isAligned } from "./aligned_memory.ts";
import {
  type DirectIo,
  type FileHandle,
  type FileSystem,
  makeDirectoryDurably,
  readFully,
  readFullySync,
  removeIfExists,
  replaceFileAtomically,
  writeFully,
  writeFullyInPieces,
  writeFullySync,
} from "./file_system.ts";
import { assertSegmentRange, SegmentNotFoundError, type SegmentStore } from "./segment_store.ts";

/** Default cap on segment files open at once. */
export const OPEN_FILES_MAX_DEFAULT = 256;

/**
 * Writes of at least this size go through the file system's `write` (Node: the thread pool):
 * the ~40 µs hop is nothing next to copying a group commit's megabytes, and the event loop
 * keeps appending meanwhile. Measured on Node with the journal (300k 4 KiB records, 8 MiB
 * groups): a blocking `writeSync` of each group held the loop ~12 ms per group.
 */
export const ASYNC_WRITE_BYTES_MIN = 256 * 1024;

/**
 * Reads of at least this size go through the file system's `read` (Node: the thread pool):
 * a restore's copies in flight then read the journal while others write the primary, on both
 * cores (measured: a full restore read each journal record with a blocking `readSync`, ~40%
 * of its time on the one thread). Small reads (an image's random 4 KiB) stay synchronous:
 * the hop would cost more than the copy.
 */
export const ASYNC_READ_BYTES_MIN = 256 * 1024;

/**
 * Largest single `write` call through the page cache: a larger write goes as calls of this
 * size, issued together (direct writes go whole: see the module doc).
 * Measured on this VM with the journal's pattern (300k records of 4 KiB in 8 MiB
 * groups, pipelined fdatasync; three rounds in one run): one call per 8 MiB group
 * 50k-121k records/s with 1.4-2.3 s of kernel time, calls of 1 MiB 243k-393k with
 * 0.4-0.5 s (256 KiB and 1 MiB synchronous calls 210k-285k): the kernel spends several times
 * longer copying one huge write into the page cache than the same bytes in 1 MiB pieces.
 * The pieces are issued together (positional writes to distinct ranges), so they proceed
 * while the event loop is busy.
 */
export const WRITE_CALL_BYTES_MAX = 1024 * 1024;

/**
 * Writes of at least this size go around the page cache where the file system can (see the
 * module doc): smaller ones are mostly the head and tail blocks a direct write cannot take.
 */
export const DIRECT_WRITE_BYTES_MIN = 1024 * 1024;

/** The staging buffer of direct writes (a journal group at most); a larger write goes in turns. */
const directStagingBytes = 8 * 1024 * 1024;

/** Size of each zero-filling write in `create`. */
const zeroChunkBytes = 1024 * 1024;
/** Shared, never written to: only ever a write source. */
const zeroChunk = new Uint8Array(zeroChunkBytes);
const segmentNamePattern = /^(\d{8,})\.seg$/;
const manifestName = "MANIFEST";

/** Options of {@link FileSegmentStore.open}. */
export interface FileSegmentStoreOptions {
  /** Segment files kept open at once (least recently used closed first); at least 1. */
  readonly openFilesMax?: number;
  /**
   * How `create` allocates a segment: `"sparse"` (default) sets the file's size without
   * writing it; `"zero"` writes zeros through it first. Measured here (Node, ext4, 1 GiB of
   * 64 KiB writes with an fdatasync per 8 MiB): writes into zero-filled files run
   * ~1,085 MiB/s but the zero-fill costs as much I/O again (~330 MiB/s overall), while sparse
   * files run ~690 MiB/s with nothing up front. Zero-filling pays only where segments are
   * reused.
   */
  readonly allocation?: "sparse" | "zero";
  /**
   * Whether writes of at least {@link DIRECT_WRITE_BYTES_MIN} go around the page cache where
   * the file system can (default true; see the module doc).
   */
  readonly directWrites?: boolean;
  /**
   * Where the store reports that it turned direct writes off because the file system refused
   * one (they go through the page cache from then on, slower, nothing lost); default: nowhere.
   */
  readonly log?: (line: string) => void;
}

interface OpenSegment {
  readonly handle: FileHandle;
  /** The same file opened for direct writes, once one is made. */
  direct: FileHandle | null;
  /** Syncs and large writes in flight on `handle`; a pinned handle is never closed. */
  pins: number;
  /** Written since its last sync started. */
  dirty: boolean;
  /** The latest sync in flight, which a sync that finds nothing new to sync waits for. */
  syncing: Promise<void> | null;
  /** Removed or closed: close `handle` when the last pin goes. */
  retired: boolean;
}

/** The file segment store; see the module doc. */
export class FileSegmentStore implements SegmentStore {
  /** The directory holding the segments and the manifest. */
  readonly directory: string;
  readonly #fileSystem: FileSystem;
  readonly #openFilesMax: number;
  readonly #allocation: "sparse" | "zero";
  /** Size of every existing segment, by id; the directory listing read at open. */
  readonly #sizesBytes: Map<number, number>;
  /** Ids whose `create` is in flight. */
  readonly #creating = new Set<number>();
  /** Open handles in least recently used order (oldest first). */
  readonly #open = new Map<number, OpenSegment>();
  /** Segments whose sync failed: every later sync rejects with this cause. */
  readonly #syncFailures = new Map<number, unknown>();
  #manifestQueue: Promise<void> = Promise.resolve();
  #closed = false;
  /** How direct writes are made; null when they are off (option, file system, or refused). */
  #directIo: DirectIo | null;
  /** Aligned source of direct writes: allocated at the first, then reused. */
  #staging: Uint8Array | null = null;
  #stagingBusy = false;
  readonly #log: (line: string) => void;

  private constructor(
    fileSystem: FileSystem,
    directory: string,
    sizesBytes: Map<number, number>,
    options: Required<FileSegmentStoreOptions>,
  ) {
    this.#fileSystem = fileSystem;
    this.directory = directory;
    this.#sizesBytes = sizesBytes;
    this.#openFilesMax = options.openFilesMax;
    this.#allocation = options.allocation;
    this.#directIo = options.directWrites ? fileSystem.directIo ?? null : null;
    this.#log = options.log;
  }

  /**
   * Opens the store in `directory`, creating the directory if missing, and removes leftovers
   * of creates and manifest writes that a crash interrupted (`*.tmp`).
   *
   * @throws {RangeError} when `openFilesMax` is not a positive integer.
   */
  static async open(
    fileSystem: FileSystem,
    directory: string,
    options: FileSegmentStoreOptions = {},
  ): Promise<FileSegmentStore> {
    const openFilesMax = options.openFilesMax ?? OPEN_FILES_MAX_DEFAULT;
    if (!Number.isSafeInteger(openFilesMax) || openFilesMax < 1) {
      throw new RangeError(`Cannot keep ${openFilesMax} files open: not a positive integer`);
    }
    await makeDirectoryDurably(fileSystem, directory);
    const sizesBytes = new Map<number, number>();
    let removedLeftovers = false;
    for (const name of await fileSystem.readDirectory(directory)) {
      const path = fileSystem.joinPath(directory, name);
      if (name.endsWith(".tmp")) {
        await fileSystem.remove(path);
        removedLeftovers = true;
        continue;
      }
      const match = segmentNamePattern.exec(name);
      if (match === null) continue;
      sizesBytes.set(Number(match[1]), await fileSystem.fileSizeBytes(path));
    }
    if (removedLeftovers) await fileSystem.syncDirectory(directory);
    return new FileSegmentStore(fileSystem, directory, sizesBytes, {
      openFilesMax,
      allocation: options.allocation ?? "sparse",
      directWrites: options.directWrites ?? true,
      log: options.log ?? (() => {}),
    });
  }

  /** Whether large writes go around the page cache now (see the module doc). */
  get directWrites(): boolean {
    return this.#directIo !== null;
  }

  /** Segment files open now (at most `openFilesMax` plus pinned ones). */
  get openFiles(): number {
    return this.#open.size;
  }

  async list(): Promise<number[]> {
    this.#checkOpen();
    return [...this.#sizesBytes.keys()].sort((a, b) => a - b);
  }

  async create(segmentId: number, sizeBytes: number): Promise<void> {
    this.#checkOpen();
    assert(Number.isSafeInteger(segmentId) && segmentId >= 0, `Bad segment id ${segmentId}`);
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes > 0, `Bad segment size ${sizeBytes}`);
    if (this.#sizesBytes.has(segmentId) || this.#creating.has(segmentId)) {
      throw new SegmentNotFoundError(`Cannot create segment ${segmentId}: it exists`);
    }
    this.#creating.add(segmentId);
    try {
      await this.#createFile(segmentId, sizeBytes);
    } finally {
      this.#creating.delete(segmentId);
    }
    this.#sizesBytes.set(segmentId, sizeBytes);
  }

  async sizeOf(segmentId: number): Promise<number> {
    this.#checkOpen();
    return this.#sizeOf(segmentId);
  }

  async write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertSegmentRange(segmentId, this.#sizeOf(segmentId), offsetBytes, source.length);
    const segment = this.#acquire(segmentId);
    segment.dirty = true;
    if (source.length < ASYNC_WRITE_BYTES_MIN) {
      writeFullySync(segment.handle, source, offsetBytes);
      return;
    }
    segment.pins++;
    try {
      if (!(await this.#tryWriteDirect(segment, segmentId, source, offsetBytes))) {
        await writeFullyInPieces(segment.handle, source, offsetBytes, WRITE_CALL_BYTES_MAX);
      }
    } finally {
      // A sync that started while this write was in flight did not cover it.
      segment.dirty = true;
      this.#unpin(segment);
    }
  }

  /**
   * Writes `source` with its aligned middle around the page cache, if direct writes are on,
   * `source` is large enough, and it is aligned memory or the staging buffer is free; returns
   * false, having written nothing, otherwise. A refusal by the file system turns direct writes off and finishes the
   * write through the page cache.
   */
  async #tryWriteDirect(segment: OpenSegment, segmentId: number, source: Uint8Array, offsetBytes: number): Promise<boolean> {
    const directIo = this.#directIo;
    if (directIo === null || source.length < DIRECT_WRITE_BYTES_MIN) return false;
    const alignmentBytes = directIo.alignmentBytes;
    const headBytes = (alignmentBytes - (offsetBytes % alignmentBytes)) % alignmentBytes;
    const middleBytes = Math.floor((source.length - headBytes) / alignmentBytes) * alignmentBytes;
    // A source in aligned memory at the right place (the journal's group buffers) is written
    // as it is; any other is copied into the staging buffer first, if that is free.
    const inPlace = isAligned(source.subarray(headBytes), alignmentBytes);
    if (middleBytes <= 0 || (!inPlace && this.#stagingBusy)) return false;
    try {
      if (segment.direct === null) {
        this.#closeIdleDirectHandles();
        segment.direct = this.#fileSystem.openFile(this.#segmentPath(segmentId), { write: true, direct: true });
      }
    } catch (error) {
      if (!directIo.isUnsupported(error)) throw error;
      this.#turnDirectWritesOff("an open for direct I/O", error);
      return false;
    }
    if (!inPlace) {
      this.#staging ??= allocateAligned(directStagingBytes);
      this.#stagingBusy = true;
    }
    try {
      const tailAtBytes = headBytes + middleBytes;
      if (headBytes > 0) writeFullySync(segment.handle, source.subarray(0, headBytes), offsetBytes);
      if (tailAtBytes < source.length) writeFullySync(segment.handle, source.subarray(tailAtBytes), offsetBytes + tailAtBytes);
      for (let doneBytes = 0; doneBytes < middleBytes; doneBytes += directStagingBytes) {
        const turnBytes = Math.min(directStagingBytes, middleBytes - doneBytes);
        const fromBytes = headBytes + doneBytes;
        const turn = source.subarray(fromBytes, fromBytes + turnBytes);
        if (this.#directIo !== null) {
          const staged = inPlace ? turn : this.#staging!.subarray(0, turnBytes);
          if (!inPlace) staged.set(turn);
          try {
            await writeFully(segment.direct, staged, offsetBytes + fromBytes); // one call (module doc)
            continue;
          } catch (error) {
            if (!directIo.isUnsupported(error)) throw error;
            this.#turnDirectWritesOff("a direct write", error);
          }
        }
        await writeFullyInPieces(segment.handle, turn, offsetBytes + fromBytes, WRITE_CALL_BYTES_MAX);
      }
      return true;
    } finally {
      if (!inPlace) this.#stagingBusy = false;
    }
  }

  /** Direct writes off for good (the file system refused `what`); says so once. */
  #turnDirectWritesOff(what: string, error: unknown): void {
    if (this.#directIo === null) return;
    this.#directIo = null;
    const reason = error instanceof Error ? error.message : String(error);
    this.#log(
      `Segment store "${this.directory}": the file system refused ${what} (${reason}); ` +
        "large writes go through the page cache from now on (slower, nothing lost)",
    );
  }

  async read(segmentId: number, offsetBytes: number, target: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertSegmentRange(segmentId, this.#sizeOf(segmentId), offsetBytes, target.length);
    const segment = this.#acquire(segmentId);
    if (target.length < ASYNC_READ_BYTES_MIN) {
      readFullySync(segment.handle, target, offsetBytes);
      return;
    }
    segment.pins++;
    try {
      await readFully(segment.handle, target, offsetBytes);
    } finally {
      this.#unpin(segment);
    }
  }

  async sync(segmentId: number): Promise<void> {
    this.#checkOpen();
    this.#sizeOf(segmentId);
    this.#throwIfSyncFailed(segmentId);
    const segment = this.#open.get(segmentId);
    // Not open: never written, or synced when its handle was closed.
    if (segment === undefined) return;
    if (!segment.dirty) {
      if (segment.syncing !== null) await segment.syncing;
      return;
    }
    segment.dirty = false;
    segment.pins++;
    const syncing = segment.handle.datasync().catch((error: unknown) => {
      this.#syncFailures.set(segmentId, error);
      throw new Error(`Cannot sync segment ${segmentId}`, { cause: error });
    });
    segment.syncing = syncing;
    try {
      await syncing;
    } finally {
      if (segment.syncing === syncing) segment.syncing = null;
      this.#unpin(segment);
    }
  }

  async remove(segmentId: number): Promise<void> {
    this.#checkOpen();
    const sizeBytes = this.#sizeOf(segmentId);
    this.#sizesBytes.delete(segmentId);
    const segment = this.#open.get(segmentId);
    if (segment !== undefined) {
      this.#open.delete(segmentId);
      this.#retire(segment);
    }
    try {
      await this.#fileSystem.remove(this.#segmentPath(segmentId));
    } catch (error) {
      this.#sizesBytes.set(segmentId, sizeBytes);
      throw error;
    }
    this.#syncFailures.delete(segmentId);
    await this.#fileSystem.syncDirectory(this.directory);
  }

  async readManifest(): Promise<Uint8Array | null> {
    this.#checkOpen();
    return await this.#fileSystem.readFileOrNull(this.#manifestPath());
  }

  writeManifest(bytes: Uint8Array): Promise<void> {
    try {
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const copy = bytes.slice();
    const path = this.#manifestPath();
    const replaced = this.#manifestQueue.then(() =>
      replaceFileAtomically(this.#fileSystem, path, copy)
    );
    // The queue only orders replacements; each caller gets its own outcome from `replaced`.
    this.#manifestQueue = replaced.then(ignore, ignore);
    return replaced;
  }

  /**
   * Closes every handle (those with a call in flight when it settles). Unsynced writes stay
   * in the page cache and are not made durable: only `sync` promises that.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#manifestQueue;
    for (const segment of this.#open.values()) this.#retire(segment);
    this.#open.clear();
  }

  async #createFile(segmentId: number, sizeBytes: number): Promise<void> {
    const path = this.#segmentPath(segmentId);
    const temporaryPath = `${path}.tmp`;
    // Opened before the `try`: a `.tmp` that is already there is not this call's to remove.
    const handle = this.#fileSystem.openFile(temporaryPath, {
      write: true,
      create: true,
      exclusive: true,
    });
    try {
      try {
        await this.#allocate(handle, sizeBytes);
        await handle.datasync();
      } finally {
        handle.close();
      }
      await this.#fileSystem.rename(temporaryPath, path);
    } catch (error) {
      // Best effort: `open` removes a `.tmp` left here, and the create's own error is the
      // one to report.
      await removeIfExists(this.#fileSystem, temporaryPath).catch(ignore);
      throw error;
    }
    await this.#fileSystem.syncDirectory(this.directory);
  }

  /** Gives a new file its size, as the `allocation` option says. */
  async #allocate(handle: FileHandle, sizeBytes: number): Promise<void> {
    if (this.#allocation === "sparse") {
      await handle.truncate(sizeBytes);
      return;
    }
    for (let offsetBytes = 0; offsetBytes < sizeBytes; offsetBytes += zeroChunkBytes) {
      const lengthBytes = Math.min(zeroChunkBytes, sizeBytes - offsetBytes);
      await writeFully(handle, zeroChunk.subarray(0, lengthBytes), offsetBytes);
    }
  }

  #sizeOf(segmentId: number): number {
    const sizeBytes = this.#sizesBytes.get(segmentId);
    if (sizeBytes === undefined) {
      throw new SegmentNotFoundError(`Segment ${segmentId} does not exist`);
    }
    return sizeBytes;
  }

  #throwIfSyncFailed(segmentId: number): void {
    if (this.#syncFailures.has(segmentId)) {
      throw new Error(`Cannot sync segment ${segmentId}: an earlier sync failed`, {
        cause: this.#syncFailures.get(segmentId),
      });
    }
  }

  /** The open handle of a segment, opening it (and closing the oldest) if needed. */
  #acquire(segmentId: number): OpenSegment {
    const cached = this.#open.get(segmentId);
    if (cached !== undefined) {
      this.#open.delete(segmentId);
      this.#open.set(segmentId, cached);
      return cached;
    }
    this.#evictForOneMore();
    const segment: OpenSegment = {
      handle: this.#fileSystem.openFile(this.#segmentPath(segmentId), { read: true, write: true }),
      direct: null,
      pins: 0,
      dirty: false,
      syncing: null,
      retired: false,
    };
    this.#open.set(segmentId, segment);
    return segment;
  }

  /**
   * Closes least recently used handles until one more fits. Pinned ones are skipped, so the
   * cache can exceed its cap by the number of calls in flight, and only while they are.
   */
  #evictForOneMore(): void {
    for (const [segmentId, segment] of this.#open) {
      if (this.#open.size < this.#openFilesMax) return;
      if (segment.pins > 0) continue;
      this.#open.delete(segmentId);
      if (segment.dirty) {
        try {
          segment.handle.datasyncSync();
        } catch (error) {
          this.#syncFailures.set(segmentId, error);
        }
      }
      this.#retire(segment);
    }
  }

  /**
   * Closes the direct descriptors of segments with no call in flight: appends move on from
   * one segment to the next, so only those being written need one, and the descriptor cache
   * keeps to about `openFilesMax` descriptors rather than twice that.
   */
  #closeIdleDirectHandles(): void {
    for (const other of this.#open.values()) {
      if (other.direct !== null && other.pins === 0) {
        other.direct.close();
        other.direct = null;
      }
    }
  }

  #retire(segment: OpenSegment): void {
    segment.retired = true;
    if (segment.pins === 0) closeSegment(segment);
  }

  #unpin(segment: OpenSegment): void {
    segment.pins--;
    assert(segment.pins >= 0, "Unbalanced pin of a segment handle");
    if (segment.retired && segment.pins === 0) closeSegment(segment);
  }

  #segmentPath(segmentId: number): string {
    return this.#fileSystem.joinPath(this.directory, `${String(segmentId).padStart(8, "0")}.seg`);
  }

  #manifestPath(): string {
    return this.#fileSystem.joinPath(this.directory, manifestName);
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use the segment store: it is closed");
  }
}

function ignore(): void {}

function closeSegment(segment: OpenSegment): void {
  segment.handle.close();
  segment.direct?.close();
}
