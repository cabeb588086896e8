/**
 * Putting the primary back to a point, on the switch (seed 003 [0074]-[0076]; SPEC.md
 * `anytime restore`; DESIGN.md "Restore"): the extents that differ between the primary's state
 * and the target are copied from a {@link RestoreSource} (the appliance's image at the target)
 * onto the primary, chunk by chunk, in the background — and, in instant mode, on demand in
 * front of the host's reads and writes.
 *
 * Why it is safe:
 * - **The DRL covers every region that may differ** (guarantee 2): every piece to restore
 *   holds its DRL regions from the start (made durable before the first byte moves) until it is
 *   on the primary. A switch that dies mid-restore restarts with those bits set, so resync
 *   knows exactly where primary and journal may part.
 * - **A host write is never overwritten by the copy**: each chunk is `pending`, `copying` or
 *   `done`; the host's I/O to a pending chunk restores it first (and waits for one being copied),
 *   then goes on. The copy never touches a chunk once it is done.
 * - **Only what differs moves**: within a chunk only the pieces inside the extents are read and
 *   written (an incremental restore after changing 1% of a volume moves about 1% of it).
 *
 * States: `running` → `done`, or `failed` (a read or write error; the error is kept), or
 * `cancelled` (`cancel()`: the copy stops between chunks). A failed or cancelled session ends
 * its DRL holds with the DRL out of sync: the bits stay set until resync, and the caller
 * records the partial state (a gap marker) so it is never silent.
 *
 * Memory is fixed at creation: a chunk-state byte per chunk (at most
 * `switchLimits.restoreChunksMax`), `switchLimits.restoreCopiesInFlight` copy buffers
 * (`switchLimits.restoreCopyBytesMax` each, or one chunk if larger: that many copies run at
 * once, the reads of one overlapping the writes of the others), and the extent pieces. The background copy takes runs of pending chunks
 * at once; restored chunks settle their DRL holds after one primary flush per
 * `switchLimits.restoreFlushBytes`.
 *
 * @example
 * ```ts
 * // const session = await RestoreSession.start({ primary, drl, source: image }, { extents, chunkBytes: 262144 });
 * // await session.finished; // session.state === "done"
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import { switchLimits } from "../core/limits.ts";
import type { BlockDevice } from "../io/block_device.ts";
import type { DirtyRegionLog } from "./dirty_region_log.ts";

/** Where restored data comes from: the appliance's image at the target point. */
export interface RestoreSource {
  /** Fills `target` with the target point's bytes at `offsetBytes`. */
  read(offsetBytes: number, target: Uint8Array): Promise<void>;
}

/** An extent of the volume, bytes. */
export interface RestoreExtent {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** The session's states. */
export type RestoreState = "running" | "done" | "failed" | "cancelled";

const chunkPending = 1;
const chunkCopying = 2;
const chunkDone = 0;

/** Dependencies of {@link RestoreSession.start}. */
export interface RestoreSessionDeps {
  /** The primary, written directly (restored data is not a host write: it is not copied). */
  readonly primary: BlockDevice;
  readonly drl: DirtyRegionLog;
  readonly source: RestoreSource;
}

/** Options of {@link RestoreSession.start}. */
export interface RestoreSessionOptions {
  /** What differs, ascending and not overlapping (the appliance's diff, or the whole volume). */
  readonly extents: readonly RestoreExtent[];
  /** Copy granularity; default `switchLimits.restoreChunkBytesDefault`, grown to fit `restoreChunksMax`. */
  readonly chunkBytes?: number;
  /** Bytes the background copy moves per read and write; default `switchLimits.restoreCopyBytesMax`. */
  readonly copyBytesMax?: number;
}

/** See the module doc. */
export class RestoreSession {
  readonly sizeBytes: number;
  readonly chunkBytes: number;
  /** Bytes the session moves in all (the extents' total). */
  readonly bytesTotal: number;
  /** Settles when the session ends (never rejects; see {@link state} and {@link error}). */
  readonly finished: Promise<void>;
  readonly #deps: RestoreSessionDeps;
  readonly #chunkStates: Uint8Array;
  /** Per chunk, the first index in #pieces (pieces are sorted; chunk c's are [#first[c], #first[c+1])). */
  readonly #firstPiece: Uint32Array;
  readonly #pieceOffsetsBytes: Float64Array;
  readonly #pieceLengthsBytes: Float64Array;
  /** Copy buffers, one per copy in flight (`switchLimits.restoreCopiesInFlight`), allocated at start. */
  readonly #freeBuffers: Uint8Array[];
  /** Copies waiting for a buffer (host I/O in flight and the background workers: bounded). */
  readonly #bufferWaiters: (() => void)[] = [];
  /** Pending chunks the background copy takes at once. */
  readonly #chunksPerCopy: number;
  /** Chunks being copied now → their completion (at most the host's in-flight writes + 1). */
  readonly #copying = new Map<number, Promise<void>>();
  #state: RestoreState = "running";
  #error: unknown = undefined;
  #bytesDone = 0;
  #cancelRequested = false;
  /** Chunks on the primary whose DRL holds end at the next flush (durable first, then settle). */
  readonly #unflushedChunks: number[] = [];
  #unflushedBytes = 0;
  /** The background flush under way, and the first error one met. */
  #flushing: Promise<void> | null = null;
  #flushError: unknown = undefined;

  private constructor(deps: RestoreSessionDeps, extents: readonly RestoreExtent[], chunkBytes: number, copyBytesMax: number) {
    this.#deps = deps;
    this.sizeBytes = deps.primary.sizeBytes;
    this.chunkBytes = chunkBytes;
    const chunkCount = Math.ceil(this.sizeBytes / chunkBytes);
    this.#chunkStates = new Uint8Array(chunkCount);
    this.#firstPiece = new Uint32Array(chunkCount + 1);
    // Split the extents at chunk boundaries: a piece lies inside one chunk.
    const offsets: number[] = [];
    const lengths: number[] = [];
    let previousEnd = 0;
    for (const extent of extents) {
      const { offsetBytes, lengthBytes } = extent;
      if (!(Number.isSafeInteger(offsetBytes) && Number.isSafeInteger(lengthBytes) && lengthBytes > 0 &&
        offsetBytes >= previousEnd && offsetBytes + lengthBytes <= this.sizeBytes &&
        offsetBytes % 512 === 0 && lengthBytes % 512 === 0)) {
        throw new RangeError(
          `Cannot restore extent ${offsetBytes}+${lengthBytes}: extents must be ascending, apart, in 512-byte units and inside the ${this.sizeBytes}-byte volume`,
        );
      }
      previousEnd = offsetBytes + lengthBytes;
      for (let at = offsetBytes; at < previousEnd;) {
        const chunkEnd = (Math.floor(at / chunkBytes) + 1) * chunkBytes;
        const end = Math.min(previousEnd, chunkEnd);
        offsets.push(at);
        lengths.push(end - at);
        at = end;
      }
    }
    this.#pieceOffsetsBytes = Float64Array.from(offsets);
    this.#pieceLengthsBytes = Float64Array.from(lengths);
    let total = 0;
    let piece = 0;
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      this.#firstPiece[chunk] = piece;
      while (piece < offsets.length && Math.floor(offsets[piece] / chunkBytes) === chunk) {
        total += lengths[piece];
        piece++;
      }
      if (this.#firstPiece[chunk] < piece) this.#chunkStates[chunk] = chunkPending;
    }
    this.#firstPiece[chunkCount] = piece;
    this.bytesTotal = total;
    this.#chunksPerCopy = Math.max(1, Math.floor(copyBytesMax / chunkBytes));
    this.#freeBuffers = Array.from({ length: switchLimits.restoreCopiesInFlight }, () => new Uint8Array(this.#chunksPerCopy * chunkBytes));
    this.finished = Promise.resolve();
  }

  /**
   * Holds the DRL over every piece (durably), then starts the background copy.
   *
   * @throws {RangeError} for extents that are not ascending, apart and inside the volume, or a bad chunk size.
   * @throws {DirtyRegionLogError} when the DRL cannot be made durable (nothing was changed).
   */
  static async start(deps: RestoreSessionDeps, options: RestoreSessionOptions): Promise<RestoreSession> {
    const sizeBytes = deps.primary.sizeBytes;
    let chunkBytes = options.chunkBytes ?? switchLimits.restoreChunkBytesDefault;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 512 || chunkBytes % 512 !== 0 || chunkBytes > switchLimits.restoreChunkBytesMax) {
      throw new RangeError(`Cannot restore in chunks of ${chunkBytes} bytes: use a multiple of 512 up to ${switchLimits.restoreChunkBytesMax}`);
    }
    while (Math.ceil(sizeBytes / chunkBytes) > switchLimits.restoreChunksMax) chunkBytes *= 2;
    const copyBytesMax = options.copyBytesMax ?? switchLimits.restoreCopyBytesMax;
    if (!Number.isSafeInteger(copyBytesMax) || copyBytesMax < 512 || copyBytesMax > switchLimits.restoreCopyBytesMax) {
      throw new RangeError(`Cannot copy ${copyBytesMax} bytes at a time: use 512 to ${switchLimits.restoreCopyBytesMax}`);
    }
    const session = new RestoreSession(deps, options.extents, chunkBytes, copyBytesMax);
    let mustPersist = false;
    for (let piece = 0; piece < session.#pieceOffsetsBytes.length; piece++) {
      if (deps.drl.beginWrite(session.#pieceOffsetsBytes[piece], session.#pieceLengthsBytes[piece])) mustPersist = true;
    }
    try {
      if (mustPersist) await deps.drl.persist();
    } catch (error) {
      for (let piece = 0; piece < session.#pieceOffsetsBytes.length; piece++) {
        deps.drl.endWrite(session.#pieceOffsetsBytes[piece], session.#pieceLengthsBytes[piece]);
      }
      throw error;
    }
    (session as { finished: Promise<void> }).finished = session.#copyAll();
    return session;
  }

  get state(): RestoreState {
    return this.#state;
  }

  /** Why the session failed. */
  get error(): unknown {
    return this.#error;
  }

  /** Bytes on the primary so far. */
  get bytesDone(): number {
    return this.#bytesDone;
  }

  /** 0 to 1. */
  get progress(): number {
    return this.bytesTotal === 0 ? 1 : this.#bytesDone / this.bytesTotal;
  }

  /** Stops the copy between chunks; `finished` then settles with state `cancelled`. */
  cancel(): void {
    if (this.#state === "running") this.#cancelRequested = true;
  }

  /**
   * Makes sure the range holds the target's bytes before host I/O touches it (instant
   * restore): restores the pending chunks it overlaps and waits for those being copied.
   *
   * @throws the source's or primary's error when a chunk cannot be restored (the host I/O must fail).
   */
  async prepare(offsetBytes: number, lengthBytes: number): Promise<void> {
    if (this.#state !== "running" && this.#state !== "done") return;
    const first = Math.floor(offsetBytes / this.chunkBytes);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.chunkBytes);
    for (let chunk = first; chunk <= last; chunk++) {
      if (this.#chunkStates[chunk] === chunkDone) continue;
      await this.#restoreChunk(chunk);
    }
  }

  async #copyAll(): Promise<void> {
    try {
      // A few copies in flight (each reads its span, then writes it): the reads of one overlap
      // the writes of the others, as a copier with several requests in flight does.
      let cursor = 0;
      const worker = async () => {
        while (cursor < this.#chunkStates.length && !this.#cancelRequested) {
          const chunk = cursor;
          if (this.#chunkStates[chunk] === chunkDone) {
            cursor++;
            continue;
          }
          // Copy a run of pending chunks at once (one read and one write per contiguous span).
          let count = 1;
          if (this.#chunkStates[chunk] === chunkPending) {
            while (
              chunk + count < this.#chunkStates.length && count < this.#chunksPerCopy &&
              this.#chunkStates[chunk + count] === chunkPending
            ) count++;
          }
          cursor = chunk + count;
          await this.#restoreChunks(chunk, this.#chunkStates[chunk] === chunkPending ? count : 1);
          if (this.#flushError !== undefined) throw this.#flushError;
          // Flush in the background: the copy goes on while the disk syncs what came before.
          if (this.#unflushedBytes >= switchLimits.restoreFlushBytes && this.#flushing === null) {
            this.#flushing = this.#flushAndSettle()
              .catch((error) => void (this.#flushError ??= error))
              .finally(() => (this.#flushing = null));
          }
        }
      };
      const workers = Array.from({ length: switchLimits.restoreCopiesInFlight }, worker);
      const outcomes = await Promise.allSettled(workers);
      const failed = outcomes.find((outcome) => outcome.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      await this.#drainCopies();
      await this.#flushing;
      if (this.#flushError !== undefined) throw this.#flushError;
      await this.#flushAndSettle();
      this.#state = this.#cancelRequested && this.#bytesDone < this.bytesTotal ? "cancelled" : "done";
    } catch (error) {
      await this.#drainCopies();
      await this.#flushing;
      this.#state = "failed";
      this.#error = error;
      await this.#flushAndSettle().catch(() => {}); // what did land may settle; the rest stays held
    }
    if (this.#state !== "done") this.#abandonHolds();
  }

  /** Waits for the chunks host I/O is restoring (their failures are the host's to report). */
  async #drainCopies(): Promise<void> {
    while (this.#copying.size > 0) {
      await Promise.allSettled([...this.#copying.values()]);
    }
  }

  /** Restores one chunk (or waits for the copy of it under way). */
  #restoreChunk(chunk: number): Promise<void> {
    return this.#restoreChunks(chunk, 1);
  }

  /**
   * Restores `count` chunks from `first` (all pending when `count > 1`), or waits for the copy
   * of `first` under way.
   */
  #restoreChunks(first: number, count: number): Promise<void> {
    const under = this.#copying.get(first);
    if (under !== undefined) return under;
    if (this.#chunkStates[first] === chunkDone) return Promise.resolve();
    for (let chunk = first; chunk < first + count; chunk++) {
      assert(this.#chunkStates[chunk] === chunkPending, `Chunk ${chunk} is pending`);
      this.#chunkStates[chunk] = chunkCopying;
    }
    const settle = (state: number) => {
      for (let chunk = first; chunk < first + count; chunk++) {
        this.#chunkStates[chunk] = state;
        this.#copying.delete(chunk);
      }
    };
    const copy = this.#copyChunks(first, count).then(
      () => settle(chunkDone),
      (error) => {
        settle(chunkPending);
        throw error;
      },
    );
    for (let chunk = first; chunk < first + count; chunk++) this.#copying.set(chunk, copy);
    assert(
      this.#copying.size <= (switchLimits.splitterInFlightMax + 1) * this.#chunksPerCopy,
      "Chunks copied at once are bounded by host writes in flight",
    );
    return copy;
  }

  async #copyChunks(first: number, count: number): Promise<void> {
    const buffer = await this.#takeBuffer();
    try {
      const endPiece = this.#firstPiece[first + count];
      let piece = this.#firstPiece[first];
      while (piece < endPiece) {
        // A span of contiguous pieces that fits the buffer.
        const offsetBytes = this.#pieceOffsetsBytes[piece];
        let lengthBytes = this.#pieceLengthsBytes[piece];
        piece++;
        while (
          piece < endPiece && this.#pieceOffsetsBytes[piece] === offsetBytes + lengthBytes &&
          lengthBytes + this.#pieceLengthsBytes[piece] <= buffer.length
        ) {
          lengthBytes += this.#pieceLengthsBytes[piece];
          piece++;
        }
        const data = buffer.subarray(0, lengthBytes);
        await this.#deps.source.read(offsetBytes, data);
        await this.#deps.primary.write(offsetBytes, data);
        this.#bytesDone += lengthBytes;
        this.#unflushedBytes += lengthBytes;
      }
      for (let chunk = first; chunk < first + count; chunk++) this.#unflushedChunks.push(chunk);
    } finally {
      this.#giveBuffer(buffer);
    }
  }

  /** A copy buffer from the pool, waiting for one when all are in use. */
  async #takeBuffer(): Promise<Uint8Array> {
    for (;;) {
      const buffer = this.#freeBuffers.pop();
      if (buffer !== undefined) return buffer;
      await new Promise<void>((resolve) => this.#bufferWaiters.push(resolve));
    }
  }

  #giveBuffer(buffer: Uint8Array): void {
    this.#freeBuffers.push(buffer);
    this.#bufferWaiters.shift()?.();
  }

  /**
   * Makes the restored chunks durable on the primary (one flush for many chunks), then ends
   * their DRL holds: a region may settle only once its restored bytes cannot be lost.
   */
  async #flushAndSettle(): Promise<void> {
    if (this.#unflushedChunks.length === 0) return;
    const chunks = this.#unflushedChunks.splice(0);
    const bytes = this.#unflushedBytes;
    this.#unflushedBytes = 0;
    try {
      if (this.#deps.primary.capabilities.flush) await this.#deps.primary.flush();
    } catch (error) {
      this.#unflushedChunks.unshift(...chunks); // still held: abandoning ends them
      this.#unflushedBytes += bytes;
      throw error;
    }
    for (const chunk of chunks) {
      for (let piece = this.#firstPiece[chunk]; piece < this.#firstPiece[chunk + 1]; piece++) {
        this.#deps.drl.endWrite(this.#pieceOffsetsBytes[piece], this.#pieceLengthsBytes[piece]);
      }
    }
  }

  /** A session that did not finish: its regions stay dirty, resets off, until resync. */
  #abandonHolds(): void {
    this.#deps.drl.setInSync(false);
    for (const chunk of this.#unflushedChunks.splice(0)) {
      for (let piece = this.#firstPiece[chunk]; piece < this.#firstPiece[chunk + 1]; piece++) {
        this.#deps.drl.endWrite(this.#pieceOffsetsBytes[piece], this.#pieceLengthsBytes[piece]);
      }
    }
    for (let chunk = 0; chunk < this.#chunkStates.length; chunk++) {
      if (this.#chunkStates[chunk] === chunkDone) continue;
      for (let piece = this.#firstPiece[chunk]; piece < this.#firstPiece[chunk + 1]; piece++) {
        this.#deps.drl.endWrite(this.#pieceOffsetsBytes[piece], this.#pieceLengthsBytes[piece]);
      }
      this.#chunkStates[chunk] = chunkDone; // nothing more will copy it
    }
  }
}
