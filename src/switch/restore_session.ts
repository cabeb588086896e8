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
import type { RestoreCheckpoint, RestoreCheckpointRecord } from "./restore_checkpoint.ts";

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
export type RestoreState = "running" | "done" | "failed" | "cancelled" | "suspended";

const chunkPending = 1;
const chunkCopying = 2;
/** On the primary, not yet durable there (its checkpoint bit and DRL holds end at the next flush). */
const chunkRestored = 3;
/** On the primary durably: its checkpoint bit is clear. */
const chunkDone = 0;

function isOnPrimary(state: number): boolean {
  return state === chunkDone || state === chunkRestored;
}

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
  /**
   * Settles once the checkpoint's first write is durable (a crash from then on resumes), at
   * once without a checkpoint; never rejects (a failed write fails the session).
   */
  get checkpointWritten(): Promise<void> {
    return this.#checkpointWritten;
  }
  #checkpointWritten: Promise<void> = Promise.resolve();
  readonly #deps: RestoreSessionDeps;
  readonly #chunkStates: Uint8Array;
  /** Per chunk, the first index in #pieces (pieces are sorted; chunk c's are [#first[c], #first[c+1])). */
  readonly #firstPiece: Uint32Array;
  readonly #pieceOffsetsBytes: Float64Array;
  readonly #pieceLengthsBytes: Float64Array;
  /** Copy buffers, one per copy in flight (`switchLimits.restoreCopiesInFlight`), allocated at start. */
  readonly #freeBuffers: Uint8Array[];
  /**
   * One chunk each, for host I/O that must restore a chunk first (instant restore): it does not
   * wait behind the background copies for a buffer (`switchLimits.restoreHostBuffers`).
   */
  readonly #hostBuffers: Uint8Array[];
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
  #suspendRequested = false;
  /** Why the checkpoint could not be cleared at the end, if it could not. */
  #checkpointError: unknown = undefined;
  /** Chunks on the primary whose DRL holds end at the next flush (durable first, then settle). */
  readonly #unflushedChunks: number[] = [];
  #unflushedBytes = 0;
  /** The background flush under way, and the first error one met. */
  #flushing: Promise<void> | null = null;
  #flushError: unknown = undefined;
  /** The last flush queued (flushes run one after another). */
  #lastFlush: Promise<void> = Promise.resolve();
  /** Where the chunks left to copy are kept durably (a restore that survives a crash), if anywhere. */
  #checkpoint: RestoreCheckpoint | null = null;
  #begun = false;

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
    this.#hostBuffers = Array.from({ length: switchLimits.restoreHostBuffers }, () => new Uint8Array(chunkBytes));
    this.finished = Promise.resolve();
  }

  /**
   * Holds the DRL over every piece (durably), then starts the background copy.
   *
   * @throws {RangeError} for extents that are not ascending, apart and inside the volume, or a bad chunk size.
   * @throws {DirtyRegionLogError} when the DRL cannot be made durable (nothing was changed).
   */
  static async start(deps: RestoreSessionDeps, options: RestoreSessionOptions): Promise<RestoreSession> {
    const session = await RestoreSession.hold(deps, options);
    session.begin(null);
    return session;
  }

  /**
   * Holds the DRL over every piece (durably) but moves nothing until {@link begin}: the caller
   * puts its restore marker in the write stream in between.
   *
   * @throws as {@link start}.
   */
  static hold(deps: RestoreSessionDeps, options: RestoreSessionOptions): Promise<RestoreSession> {
    const { chunkBytes, copyBytesMax } = RestoreSession.#geometry(deps.primary.sizeBytes, options);
    return RestoreSession.#holdWith(deps, options.extents, chunkBytes, copyBytesMax);
  }

  static async #holdWith(
    deps: RestoreSessionDeps,
    extents: readonly RestoreExtent[],
    chunkBytes: number,
    copyBytesMax: number,
  ): Promise<RestoreSession> {
    const session = new RestoreSession(deps, extents, chunkBytes, copyBytesMax);
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
    return session;
  }

  /**
   * Resumes the restore a checkpoint keeps (after a crash of the switch): every chunk still
   * marked is copied whole from `deps.source` (the target point's image), as instant or not as
   * the caller attaches it. Holds the DRL over those chunks and begins at once.
   *
   * @throws {RangeError} when the checkpoint holds no restore.
   */
  static async resume(deps: RestoreSessionDeps, checkpoint: RestoreCheckpoint, options: { copyBytesMax?: number } = {}): Promise<RestoreSession> {
    const record = checkpoint.active;
    if (record === null) throw new RangeError("Cannot resume a restore: the checkpoint holds none");
    const sizeBytes = deps.primary.sizeBytes;
    const extents: RestoreExtent[] = [];
    for (let chunk = 0; chunk < checkpoint.chunkCount; chunk++) {
      if (!checkpoint.isPending(chunk)) continue;
      const offsetBytes = chunk * record.chunkBytes;
      const endBytes = Math.min(sizeBytes, offsetBytes + record.chunkBytes);
      const last = extents[extents.length - 1];
      if (last !== undefined && last.offsetBytes + last.lengthBytes === offsetBytes) {
        extents[extents.length - 1] = { offsetBytes: last.offsetBytes, lengthBytes: endBytes - last.offsetBytes };
      } else {
        extents.push({ offsetBytes, lengthBytes: endBytes - offsetBytes });
      }
    }
    const { copyBytesMax } = RestoreSession.#geometry(sizeBytes, { extents, chunkBytes: record.chunkBytes, ...options });
    const session = await RestoreSession.#holdWith(deps, extents, record.chunkBytes, copyBytesMax);
    session.#checkpoint = checkpoint;
    session.#begun = true;
    (session as { finished: Promise<void> }).finished = session.#copyAll();
    return session;
  }

  /**
   * Starts the copy of a held session. With a checkpoint, the chunks to copy are kept in it
   * (`record` says what the restore is), written as the copy starts; a chunk's bit clears once
   * it is durable on the primary, in cell writes that follow the first. A cell that cannot be
   * written fails the session (its partial state is then recorded like any failure's).
   */
  begin(checkpoint: { checkpoint: RestoreCheckpoint; record: Omit<RestoreCheckpointRecord, "chunkBytes"> } | null): void {
    assert(!this.#begun && this.#state === "running", "A session begins once");
    if (checkpoint !== null) {
      const written = checkpoint.checkpoint.begin(
        { ...checkpoint.record, chunkBytes: this.chunkBytes },
        (chunk) => this.#chunkStates[chunk] === chunkPending,
      );
      this.#checkpoint = checkpoint.checkpoint;
      this.#checkpointWritten = written.catch((error) => void (this.#flushError ??= error));
    }
    this.#begun = true;
    (this as { finished: Promise<void> }).finished = this.#copyAll();
  }

  /** Ends a held session that will not begin: nothing moved; its regions stay dirty until resync. */
  abandon(error: unknown): void {
    assert(!this.#begun && this.#state === "running", "Only a session that did not begin is abandoned");
    this.#begun = true;
    this.#state = "failed";
    this.#error = error;
    this.#abandonHolds();
  }

  /** The chunk size and copy size `start` uses for a volume of `sizeBytes`. */
  static #geometry(sizeBytes: number, options: RestoreSessionOptions): { chunkBytes: number; copyBytesMax: number } {
    let chunkBytes = options.chunkBytes ?? switchLimits.restoreChunkBytesDefault;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 512 || chunkBytes % 512 !== 0 || chunkBytes > switchLimits.restoreChunkBytesMax) {
      throw new RangeError(`Cannot restore in chunks of ${chunkBytes} bytes: use a multiple of 512 up to ${switchLimits.restoreChunkBytesMax}`);
    }
    while (Math.ceil(sizeBytes / chunkBytes) > switchLimits.restoreChunksMax) chunkBytes *= 2;
    const copyBytesMax = options.copyBytesMax ?? switchLimits.restoreCopyBytesMax;
    if (!Number.isSafeInteger(copyBytesMax) || copyBytesMax < 512 || copyBytesMax > switchLimits.restoreCopyBytesMax) {
      throw new RangeError(`Cannot copy ${copyBytesMax} bytes at a time: use 512 to ${switchLimits.restoreCopyBytesMax}`);
    }
    return { chunkBytes, copyBytesMax };
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
   * Stops the copy between chunks and keeps the checkpoint and the DRL holds (the process is
   * stopping): `finished` settles with state `suspended`, and the next start resumes.
   * Without a checkpoint this is {@link cancel}.
   */
  suspend(): void {
    if (this.#state !== "running") return;
    this.#cancelRequested = true;
    if (this.#checkpoint !== null) this.#suspendRequested = true;
  }

  /** Why the checkpoint could not be cleared when the session ended (a resume would find it). */
  get checkpointError(): unknown {
    return this.#checkpointError;
  }

  /**
   * Makes sure the range holds the target's bytes before host I/O touches it (instant
   * restore): restores the pending chunks it overlaps and waits for those being copied. Before
   * a host write (`forWrite`) of a session with a checkpoint, the chunks are also made durable
   * on the primary and cleared in the checkpoint (rule 3 of `restore_checkpoint.ts`: a resume
   * must never copy over a host write).
   *
   * @throws the source's or primary's error when a chunk cannot be restored (the host I/O must fail).
   */
  async prepare(offsetBytes: number, lengthBytes: number, forWrite = true): Promise<void> {
    if (this.#state !== "running" && this.#state !== "done") return;
    const first = Math.floor(offsetBytes / this.chunkBytes);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.chunkBytes);
    for (let chunk = first; chunk <= last; chunk++) {
      if (!isOnPrimary(this.#chunkStates[chunk])) await this.#restoreChunk(chunk);
      if (!forWrite || this.#checkpoint === null) continue;
      if (this.#chunkStates[chunk] === chunkRestored) {
        // Flushes run one after another: the one queued now comes after the chunk was handed to one.
        try {
          await this.#flushAndSettle();
        } catch (error) {
          this.#flushError ??= error;
          throw error;
        }
        assert(this.#chunkStates[chunk] !== chunkRestored, "A restored chunk is durable after the next flush");
      }
    }
  }

  /** The flush under way, or a new one (a host write waits for its chunk to be durable). */
  #settleSoon(): Promise<void> {
    this.#flushing ??= this.#flushAndSettle()
      .catch((error) => void (this.#flushError ??= error))
      .finally(() => (this.#flushing = null));
    return this.#flushing;
  }

  async #copyAll(): Promise<void> {
    try {
      // A few copies in flight (each reads its span, then writes it): the reads of one overlap
      // the writes of the others, as a copier with several requests in flight does.
      let cursor = 0;
      const worker = async () => {
        while (cursor < this.#chunkStates.length && !this.#cancelRequested) {
          const chunk = cursor;
          if (isOnPrimary(this.#chunkStates[chunk])) {
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
          if (this.#unflushedBytes >= switchLimits.restoreFlushBytes && this.#flushing === null) void this.#settleSoon();
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
      this.#state = !this.#cancelRequested || this.#bytesDone >= this.bytesTotal
        ? "done"
        : this.#suspendRequested ? "suspended" : "cancelled";
    } catch (error) {
      await this.#drainCopies();
      await this.#flushing;
      this.#state = "failed";
      this.#error = error;
      await this.#flushAndSettle().catch(() => {}); // what did land may settle; the rest stays held
    }
    if (this.#state === "suspended") return; // holds and checkpoint stay: the next start resumes
    if (this.#state !== "done") this.#abandonHolds();
    if (this.#checkpoint !== null) {
      try {
        await this.#checkpoint.clear();
      } catch (error) {
        this.#checkpointError = error;
      }
    }
  }

  /** Waits for the chunks host I/O is restoring (their failures are the host's to report). */
  async #drainCopies(): Promise<void> {
    while (this.#copying.size > 0) {
      await Promise.allSettled([...this.#copying.values()]);
    }
  }

  /** Restores one chunk for host I/O (or waits for the copy of it under way). */
  #restoreChunk(chunk: number): Promise<void> {
    return this.#restoreChunks(chunk, 1, true);
  }

  /**
   * Restores `count` chunks from `first` (all pending when `count > 1`), or waits for the copy
   * of `first` under way.
   */
  #restoreChunks(first: number, count: number, forHost = false): Promise<void> {
    const under = this.#copying.get(first);
    if (under !== undefined) return under;
    if (isOnPrimary(this.#chunkStates[first])) return Promise.resolve();
    for (let chunk = first; chunk < first + count; chunk++) {
      if (this.#chunkStates[chunk] !== chunkPending) assert(false, `Chunk ${chunk} is pending`);
      this.#chunkStates[chunk] = chunkCopying;
    }
    // The copy itself marks its chunks restored as it hands them to the next flush (which may
    // run, and mark them done, before this settles): settling only ends the copy.
    const settle = (failed: boolean) => {
      for (let chunk = first; chunk < first + count; chunk++) {
        if (failed && this.#chunkStates[chunk] === chunkCopying) this.#chunkStates[chunk] = chunkPending;
        this.#copying.delete(chunk);
      }
    };
    const copy = this.#copyChunks(first, count, forHost).then(
      () => settle(false),
      (error) => {
        settle(true);
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

  async #copyChunks(first: number, count: number, forHost: boolean): Promise<void> {
    const hostBuffer = forHost ? this.#hostBuffers.pop() : undefined;
    const buffer = hostBuffer ?? await this.#takeBuffer();
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
      for (let chunk = first; chunk < first + count; chunk++) {
        this.#chunkStates[chunk] = chunkRestored;
        this.#unflushedChunks.push(chunk);
      }
    } finally {
      if (hostBuffer !== undefined) this.#hostBuffers.push(hostBuffer);
      else this.#giveBuffer(buffer);
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
   * Makes the restored chunks durable on the primary (one flush for many chunks), then clears
   * them in the checkpoint and ends their DRL holds: a region may settle only once its restored
   * bytes cannot be lost. Flushes run one after another (each takes the chunks restored by
   * the time it starts).
   */
  #flushAndSettle(): Promise<void> {
    const run = this.#lastFlush.catch(() => {}).then(() => this.#flushAndSettleNow());
    this.#lastFlush = run;
    return run;
  }

  async #flushAndSettleNow(): Promise<void> {
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
    const checkpoint = this.#checkpoint;
    if (checkpoint !== null) {
      for (const chunk of chunks) checkpoint.markDone(chunk);
      try {
        await checkpoint.persist();
      } catch (error) {
        // Durable on the primary, but the checkpoint still names them: a resume copies them
        // again (the same bytes; no host write touched them yet), so they stay held.
        this.#unflushedChunks.unshift(...chunks);
        throw error;
      }
    }
    for (const chunk of chunks) {
      this.#chunkStates[chunk] = chunkDone;
      for (let piece = this.#firstPiece[chunk]; piece < this.#firstPiece[chunk + 1]; piece++) {
        this.#deps.drl.endWrite(this.#pieceOffsetsBytes[piece], this.#pieceLengthsBytes[piece]);
      }
    }
  }

  /** A session that did not finish: its regions stay dirty, resets off, until resync. */
  #abandonHolds(): void {
    this.#deps.drl.setInSync(false);
    for (const chunk of this.#unflushedChunks.splice(0)) {
      this.#chunkStates[chunk] = chunkDone;
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

/**
 * `extents` joined with every region the DRL holds dirty: there the primary may differ from
 * the journal's head (a gap not yet resynced), so the restore copies the target's bytes whole
 * rather than trusting the maps' diff. Ascending and apart, as a session takes them.
 */
export function withDirtyRegions(extents: readonly RestoreExtent[], drl: DirtyRegionLog): RestoreExtent[] {
  if (drl.dirtyCount === 0) return [...extents];
  const all: RestoreExtent[] = [...extents];
  drl.forEachDirtyRegion((regionIndex) => {
    const offsetBytes = regionIndex * drl.regionBytes;
    all.push({ offsetBytes, lengthBytes: Math.min(drl.regionBytes, drl.sizeBytes - offsetBytes) });
  });
  all.sort((a, b) => a.offsetBytes - b.offsetBytes);
  const merged: RestoreExtent[] = [];
  for (const extent of all) {
    const last = merged[merged.length - 1];
    if (last !== undefined && extent.offsetBytes <= last.offsetBytes + last.lengthBytes) {
      const endBytes = Math.max(last.offsetBytes + last.lengthBytes, extent.offsetBytes + extent.lengthBytes);
      merged[merged.length - 1] = { offsetBytes: last.offsetBytes, lengthBytes: endBytes - last.offsetBytes };
    } else {
      merged.push(extent);
    }
  }
  return merged;
}
