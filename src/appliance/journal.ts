/**
 * The journal: the appliance's write log for one volume. Records (writes, baseline chunks,
 * markers; see `journal_record.ts`) are appended in seq order into preallocated segments of
 * a {@link SegmentStore}, made durable by group commit, and read back by address.
 *
 * **Addresses.** A journal address is `segmentId * segmentSizeBytes + offsetInSegment`, a
 * float64 byte count. A record never straddles segments: when the next record does not fit,
 * a 56-byte segment-end pad is written where it would have gone (if there is room for one),
 * the rest of the segment stays zero, and the record goes to the next segment's start. The
 * pad travels in the same store write as the records before it, so recovery crosses into the
 * next segment only when that write survived whole: seq alone cannot prove it, since baseline
 * records all have seq 0. Segments are created at their full size, one ahead of the tail, in
 * the background, so a rollover does not wait for a create (DESIGN.md: syncs on a file of
 * full size cost a third of those on a growing one). What a segment holds before it is
 * written reads as zeros; the file store makes it sparse by default, not zero-filled
 * (`FileSegmentStoreOptions.allocation`).
 *
 * **Group commit.** Two buffers of `groupBytesMax`, allocated at open and reused. Appends copy
 * header + payload into the filling buffer; as soon as there is data and no commit in flight
 * (scheduled by a microtask, not a timer), the buffers swap and the commit writes the full one
 * with one `store.write` per segment it touches. The buffer is free again once written (the
 * bytes are in the store: its cache, or on disk where the file store writes around the page
 * cache); syncs run one at a time behind the writes, each covering
 * every group written before it began, so the disk syncs group k while group k+1 fills and is
 * written. While a sync is in flight, a filling group smaller than
 * `limits.journalSmallGroupBytes` (or half a buffer) is not written: the end of the sync
 * starts it, so writes that trickle in go to the store once per sync (the limit's doc has
 * the figures). Measured on the Node target (1 GiB of 64 KiB records): ~330 MiB/s with
 * write and sync in series, ~600-720 MiB/s pipelined (with the Node target writing large buffers on its
 * thread pool), ~1,000 MiB/s once groups went around the page cache (`npm run bench --
 * engine`, 2026-12-02: 1.02 of a plain writer through the page cache in the same run, and
 * 0.64-0.89 of one writing around it, as the journal does, in eight later runs). So batches grow by
 * themselves under load and an idle journal commits each record at once. When both
 * buffers are full, `tryAppend` returns -1 (backpressure) and `append` waits.
 *
 * One group write at a time, measured (2026-12-03). With a 1 MiB `nbdcopy` through the switch
 * the write stage is outstanding ~100% of the time while the disk is busy about half of it:
 * each ~7 MiB direct write takes ~12 ms from issue to completion, ~7.5 ms of that in the
 * kernel (`perf trace`). A third buffer with a second write in flight (started only when the
 * filling buffer was full; the recovery rule above already covers a later group surviving an
 * earlier one, and the crash property test passed with it) did not move the rate over three
 * alternating pairs and cost the main thread time. On sparse segments, ext4 takes the inode
 * lock exclusively for a direct write that is not a pure overwrite, so the second write
 * queued behind the first, and the main thread's page-cache head and tail writes
 * (`file_segment_store.ts`) waited for it: 183-192 ms of a 2 s round instead of 19 ms. Raw
 * direct writers with fdatasync pipelined (7 MiB writes, 700 MiB, two passes) gain from a
 * second write only on segments already written:
 *
 * | segments | one write in flight | two in flight |
 * | --- | --- | --- |
 * | sparse | 792 / 631 MiB/s | 661 / 527 MiB/s |
 * | preallocated (fallocate) | 750 / 689 MiB/s | 800 / 855 MiB/s |
 * | zero-filled | 712 / 917 MiB/s | 906 / 1,285 MiB/s |
 *
 * In the journal, though, segments zero-filled before the run did not help either, with one
 * write in flight or two (steady rounds 461-640 and 457-589 MiB/s against 508-721 on sparse
 * ones, alternating runs; the disk busy 33-45% of the time). The page-cache head and tail
 * writes into written blocks then read each block first (75-104 ms per round on the main
 * thread, and 112-122 with two writes in flight). So it is not the file system's allocation
 * that paces the write stage. 16 MiB groups, each one direct call, did no better than 8 MiB
 * over four alternating pairs (steady rounds 431-607 against 420-633 MiB/s). The gap between
 * the JavaScript view (outstanding ~98%) and the disk's (busy ~50%) is the main thread: in a
 * `perf trace` of one round (2026-12-03, evening) the next group's `pwrite64` mostly began
 * in the same millisecond as the previous group's `fdatasync`, both issued by this class
 * when it ran the completion, 5-14 ms after the previous `pwrite64` had returned. Neither a
 * pool with nothing else in it (the primary's writes made synchronous) nor one XXH64 pass
 * less on the main thread raised the rate over two alternating pairs each.
 *
 * **Durability.** `durableSeq` / `durableAddressBytes` advance only after a sync resolves;
 * `onDurable` listeners and `flush` waiters hear of it then and only then (the appliance acks
 * a seq to the switch from here; SPEC.md guarantee 2). A failed write or sync puts the journal
 * in a failed state: durable position frozen, every waiter and later append rejected with
 * {@link JournalFailedError}. Nothing is retried: a retry after a failed fsync may report
 * durability of data the kernel already dropped.
 *
 * **Recovery** (`Journal.open`) scans from `recoverFromAddressBytes` (a record boundary the map
 * catalogue remembered; default the first segment's start), checking each record's header
 * checksum, payload checksum and the seq rule (baseline records have seq 0 and come before
 * seq 1; after that seq grows by exactly 1 per record). The scan ends at the first position P
 * that holds no valid record (a pad with nothing valid after it does not count as one). Then
 * everything after P, through every later segment, is examined:
 * - A valid record header after P whose `durableAddressBytes > P` proves that P had been
 *   synced before that record was written, so the bad bytes at P are mid-journal corruption:
 *   open throws {@link JournalCorruptionError} and changes nothing.
 * - Otherwise whatever follows P was never durable (a torn or lost group commit): the nonzero
 *   bytes after P are zeroed and synced, so a later crash cannot resurrect a stale record
 *   whose seq the new records will reuse, and one line is logged. Appending continues at P.
 * Each record's `durableAddressBytes` is stamped when its group is written (the end of the
 * previous group, which has been synced by then), so any record of a later group proves the
 * earlier groups durable. Corruption inside the newest durable group cannot be told from a
 * torn write; it is cut like one (and logged).
 *
 * @example
 * ```ts
 * import { MemorySegmentStore } from "../io/memory_segment_store.ts";
 * import { Journal } from "./journal.ts";
 * import { journalRecordKinds } from "./journal_record.ts";
 *
 * const journal = await Journal.open({ store: new MemorySegmentStore() }, {});
 * const payloadAddressBytes = journal.tryAppend({
 *   kind: journalRecordKinds.write, seq: 1, timeUs: 1_700_000_000_000_000,
 *   offsetBytes: 0, payload: new Uint8Array(4096),
 * });
 * await journal.flush(); // seq 1 is durable now
 * await journal.close();
 * ```
 */
import { assert } from "../core/assert.ts";
import { type Checksum, createChecksum } from "../core/checksum.ts";
import { limits } from "../core/limits.ts";
import { ALIGNED_MEMORY_BYTES, allocateAligned } from "../io/aligned_memory.ts";
import type { Clock } from "../io/clock.ts";
import type { SegmentStore } from "../io/segment_store.ts";
import {
  createJournalRecordHeader,
  journalRecordAlignBytes,
  journalRecordBytes,
  journalRecordBytesMax,
  JournalRecordCodec,
  type JournalRecordHeader,
  journalRecordHeaderBytes,
  journalRecordHeaderProblem,
  type JournalRecordKind,
  journalRecordKindName,
  journalRecordKinds,
  journalRecordMagic,
  journalSegmentEndKind,
} from "./journal_record.ts";

/** The journal's own limits (kept here, next to the only code that uses them). */
export const journalLimits = {
  /** `append` calls that may wait for group-buffer space at once. */
  appendWaitersMax: 1024,
  /** Segment sizes accepted by `open` (offsets inside a segment stay below 2^31). */
  segmentBytesMin: 4096,
  segmentBytesMax: 2 ** 30,
  /** Smallest group buffer accepted by `open` (the largest is `limits.journalGroupBytesMax`). */
  groupBytesMin: 4096,
} as const;

assert(
  limits.journalSegmentBytes >= journalLimits.segmentBytesMin &&
    limits.journalSegmentBytes <= journalLimits.segmentBytesMax,
  "The default journal segment size must be accepted by the journal",
);
assert(
  journalRecordBytesMax + journalRecordHeaderBytes <= limits.journalGroupBytesMax,
  "The largest record and a segment-end pad must fit a default group",
);

/** A record to append. `payload` is copied before `tryAppend` returns. */
export interface JournalRecordInput {
  /** One of {@link journalRecordKinds} (checked at run time: kinds also arrive off the wire). */
  kind: number;
  seq: number;
  timeUs: number;
  offsetBytes: number;
  payload: Uint8Array;
  /** XXH64 of `payload` as computed at the switch; verified, then stored. */
  payloadChecksum?: bigint;
  /**
   * The caller already compared `payloadChecksum` with `payload` (the appliance link checks a
   * batch whole before appending any of it): stored without hashing the payload again.
   */
  payloadChecksumVerified?: boolean;
}

/** A record found by recovery. `payload` is a view valid only during the callback. */
export interface RecoveredRecord extends Readonly<Omit<JournalRecordHeader, "kind">> {
  readonly kind: JournalRecordKind;
  readonly recordAddressBytes: number;
  readonly payloadAddressBytes: number;
  readonly payload: Uint8Array;
}

export interface JournalDeps {
  store: SegmentStore;
  log?: (line: string) => void;
  /** Times the group writes and syncs for {@link Journal.counters}; without it they read 0. */
  clock?: Clock;
}

/**
 * What the journal has done since it opened, for status and benchmarks. The times run from
 * issuing a call to the journal seeing it done, so they include the runtime's hand-off (a
 * pool thread's queue, a busy event loop taking the completion), not only the disk's work.
 * Comparing two readings tells which stage paces a durable ingest: `writeInFlightUs` near
 * the elapsed time means the write stage was always outstanding (then the disk's own busy
 * time, e.g. Linux `/proc/diskstats`, says whether the disk or the hand-off took it); a
 * small share means the appends set the pace.
 */
export interface JournalCounters {
  /** Group commits written to the store. */
  readonly groupWrites: number;
  /** Bytes those commits wrote (records and segment-end pads). */
  readonly groupWriteBytes: number;
  /** Time a group write was outstanding, µs (one is at a time); 0 without a clock. */
  readonly writeInFlightUs: number;
  /** Syncs that completed. */
  readonly syncs: number;
  /** Time a sync was outstanding, µs (one is at a time); 0 without a clock. */
  readonly syncInFlightUs: number;
}

export interface JournalOptions {
  /** Size of every segment; default `limits.journalSegmentBytes`. */
  segmentSizeBytes?: number;
  /** Size of each of the two group buffers; default `limits.journalGroupBytesMax`. */
  groupBytesMax?: number;
  /** A record boundary to scan from (the map catalogue's); default the first segment's start. */
  recoverFromAddressBytes?: number;
  /**
   * The seq of the last record before `recoverFromAddressBytes`, so the first record scanned
   * must follow it. Without it the first record scanned may have any seq.
   */
  recoverFromSeq?: number;
  /** Called for each valid record recovery finds, in order. */
  onRecord?: (record: RecoveredRecord) => void;
}

/** Recovery found a bad record that a later record proves had been durable. */
export class JournalCorruptionError extends Error {
  override name = "JournalCorruptionError";
  readonly segmentId: number;
  readonly offsetBytes: number;
  /** Seq of the last good record before the corruption; -1 when there is none. */
  readonly lastGoodSeq: number;

  constructor(message: string, where: { segmentId: number; offsetBytes: number; lastGoodSeq: number }) {
    super(message);
    this.segmentId = where.segmentId;
    this.offsetBytes = where.offsetBytes;
    this.lastGoodSeq = where.lastGoodSeq;
  }
}

/** The journal stopped after a failed write or sync; `cause` is the store's error. */
export class JournalFailedError extends Error {
  override name = "JournalFailedError";
}

/** A payload does not match the checksum computed at the switch; nothing was appended. */
export class ChecksumMismatchError extends Error {
  override name = "ChecksumMismatchError";
  readonly seq: number;
  readonly expectedChecksum: bigint;
  readonly actualChecksum: bigint;

  constructor(message: string, details: { seq: number; expectedChecksum: bigint; actualChecksum: bigint }) {
    super(message);
    this.seq = details.seq;
    this.expectedChecksum = details.expectedChecksum;
    this.actualChecksum = details.actualChecksum;
  }
}

/**
 * Bytes a group buffer may skip to align its pieces: the first piece and one after a segment
 * rollover (a group spans two segments when segments are larger than groups, as by default).
 */
const groupSkipBytesMax = 2 * ALIGNED_MEMORY_BYTES;

/**
 * One of the two group buffers: records packed back to back, in pieces that are each
 * contiguous in one segment (a new piece starts where a record rolled over to a new segment).
 * The buffer is aligned memory, and each piece starts in it at the same offset modulo
 * {@link ALIGNED_MEMORY_BYTES} as in its segment (a few bytes are skipped before it), so a
 * store that writes around the page cache can take the piece's aligned middle as it is.
 */
class GroupBuffer {
  readonly bytes: Uint8Array;
  /** Bytes of `bytes` in use: records, and the bytes skipped before pieces. */
  usedBytes = 0;
  /** Bytes skipped to align pieces; at most {@link groupSkipBytesMax} (then pieces go unaligned). */
  skippedBytes = 0;
  lastSeq = -1;
  endAddressBytes = 0;
  pieceCount = 0;
  readonly pieceSegmentIds: number[] = [];
  readonly pieceSegmentOffsetsBytes: number[] = [];
  readonly pieceBufferOffsetsBytes: number[] = [];
  readonly pieceBufferEndsBytes: number[] = [];

  /** `recordBytesMax` of records at most. */
  constructor(recordBytesMax: number) {
    this.bytes = allocateAligned(recordBytesMax + groupSkipBytesMax);
  }

  /** Record bytes held (what counts against `groupBytesMax`). */
  get recordBytes(): number {
    return this.usedBytes - this.skippedBytes;
  }

  /** Notes that the next record goes to `segmentId` at `segmentOffsetBytes`. */
  placeRecord(segmentId: number, segmentOffsetBytes: number): void {
    const last = this.pieceCount - 1;
    if (last >= 0 && this.pieceSegmentIds[last] === segmentId) {
      assert(
        this.pieceSegmentOffsetsBytes[last] + (this.usedBytes - this.pieceBufferOffsetsBytes[last]) === segmentOffsetBytes,
        "Records of a piece are contiguous in their segment",
      );
      return;
    }
    if (last >= 0) this.pieceBufferEndsBytes[last] = this.usedBytes;
    const skipBytes = (((segmentOffsetBytes - this.usedBytes) % ALIGNED_MEMORY_BYTES) + ALIGNED_MEMORY_BYTES) %
      ALIGNED_MEMORY_BYTES;
    if (this.skippedBytes + skipBytes <= groupSkipBytesMax) {
      this.usedBytes += skipBytes;
      this.skippedBytes += skipBytes;
    }
    this.pieceSegmentIds[this.pieceCount] = segmentId;
    this.pieceSegmentOffsetsBytes[this.pieceCount] = segmentOffsetBytes;
    this.pieceBufferOffsetsBytes[this.pieceCount] = this.usedBytes;
    this.pieceCount++;
  }

  pieceEndBytes(pieceIndex: number): number {
    return pieceIndex + 1 < this.pieceCount ? this.pieceBufferEndsBytes[pieceIndex] : this.usedBytes;
  }

  /** Copies `target.length` bytes at (`segmentId`, `offsetBytes`) if this group holds them. */
  copyOut(segmentId: number, offsetBytes: number, target: Uint8Array): boolean {
    for (let piece = 0; piece < this.pieceCount; piece++) {
      if (this.pieceSegmentIds[piece] !== segmentId) continue;
      const pieceOffsetBytes = this.pieceSegmentOffsetsBytes[piece];
      const pieceStartBytes = this.pieceBufferOffsetsBytes[piece];
      const pieceLengthBytes = this.pieceEndBytes(piece) - pieceStartBytes;
      if (offsetBytes < pieceOffsetBytes || offsetBytes >= pieceOffsetBytes + pieceLengthBytes) continue;
      if (offsetBytes + target.length > pieceOffsetBytes + pieceLengthBytes) {
        throw new RangeError(
          `Cannot read ${target.length} bytes at segment ${segmentId} offset ${offsetBytes}: ` +
            "the range runs past the records not yet written to the store",
        );
      }
      const fromBytes = pieceStartBytes + offsetBytes - pieceOffsetBytes;
      target.set(this.bytes.subarray(fromBytes, fromBytes + target.length));
      return true;
    }
    return false;
  }

  reset(): void {
    this.usedBytes = 0;
    this.skippedBytes = 0;
    this.lastSeq = -1;
    this.endAddressBytes = 0;
    this.pieceCount = 0;
  }
}

interface FlushWaiter {
  readonly addressBytes: number;
  readonly promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface AppendWaiter {
  readonly record: JournalRecordInput;
  resolve: (payloadAddressBytes: number) => void;
  reject: (error: unknown) => void;
}

/** Where recovery stopped and what it saw there. */
interface ScanEnd {
  segmentId: number;
  offsetBytes: number;
  lastSeq: number;
  /** Why the position holds no valid record ("zeros" at a clean end). */
  reason: string;
  /** Segments the scan read records from (synced after recovery). */
  segmentIdsVisited: number[];
}

/** The write log; see the module doc. */
export class Journal {
  readonly #store: SegmentStore;
  readonly #log: (line: string) => void;
  readonly #clock: Clock | null;
  readonly #segmentSizeBytes: number;
  readonly #groupBytesMax: number;
  /** A filling group below this waits while a sync is in flight (`limits.journalSmallGroupBytes`). */
  readonly #smallGroupBytes: number;
  readonly #recordBytesMax: number;
  readonly #checksum: Checksum;
  readonly #codec: JournalRecordCodec;
  readonly #header = createJournalRecordHeader();
  readonly #padHeader: JournalRecordHeader;

  #filling: GroupBuffer;
  #committing: GroupBuffer;
  /** A group is being written to the store (stage 1). */
  #writeInFlight = false;
  /** A sync is in flight (stage 2). */
  #syncInFlight = false;
  // What `counters` reports (JournalCounters).
  #groupWrites = 0;
  #groupWriteBytes = 0;
  #writeInFlightUs = 0;
  #syncs = 0;
  #syncInFlightUs = 0;
  /** Journal address up to which groups are written to the store (maybe not yet synced). */
  #writtenAddressBytes = 0;
  #writtenSeq = -1;
  /** Segments written since the last sync started. */
  readonly #unsyncedSegmentIds = new Set<number>();
  #commitScheduled = false;

  #tailSegmentId = 0;
  #tailOffsetBytes = 0;
  #headSeq = -1;
  #durableSeq = -1;
  #durableAddressBytes = 0;

  #segmentIdCreatedMax = -1;
  readonly #pendingCreates = new Map<number, Promise<void>>();

  #failure: JournalFailedError | null = null;
  #closing = false;
  #flushWaiters: FlushWaiter[] = [];
  #appendWaiters: AppendWaiter[] = [];
  readonly #durableListeners = new Set<(seq: number, addressBytes: number) => void>();

  private constructor(deps: JournalDeps, sizes: { segmentSizeBytes: number; groupBytesMax: number }, checksum: Checksum) {
    this.#store = deps.store;
    this.#log = deps.log ?? (() => {});
    this.#clock = deps.clock ?? null;
    this.#segmentSizeBytes = sizes.segmentSizeBytes;
    this.#groupBytesMax = sizes.groupBytesMax;
    this.#smallGroupBytes = Math.min(limits.journalSmallGroupBytes, sizes.groupBytesMax / 2);
    // A record must fit an empty group together with the segment-end pad before it.
    this.#recordBytesMax = Math.min(sizes.segmentSizeBytes, sizes.groupBytesMax - journalRecordHeaderBytes);
    this.#checksum = checksum;
    this.#codec = new JournalRecordCodec(checksum);
    this.#padHeader = {
      ...createJournalRecordHeader(),
      kind: journalSegmentEndKind,
      payloadChecksum: checksum.hash64(new Uint8Array(0)),
    };
    this.#filling = new GroupBuffer(sizes.groupBytesMax);
    this.#committing = new GroupBuffer(sizes.groupBytesMax);
  }

  /**
   * Opens the journal in `deps.store`, recovering what is there (see the module doc), and
   * resolves when appending may start. Rejects with {@link JournalCorruptionError} when a
   * durable record is damaged, `RangeError` for options that do not fit the store.
   */
  static async open(deps: JournalDeps, options: JournalOptions = {}): Promise<Journal> {
    const segmentSizeBytes = options.segmentSizeBytes ?? limits.journalSegmentBytes;
    const groupBytesMax = options.groupBytesMax ?? limits.journalGroupBytesMax;
    checkSize("segmentSizeBytes", segmentSizeBytes, journalLimits.segmentBytesMin, journalLimits.segmentBytesMax);
    checkSize("groupBytesMax", groupBytesMax, journalLimits.groupBytesMin, limits.journalGroupBytesMax);
    const journal = new Journal(deps, { segmentSizeBytes, groupBytesMax }, await createChecksum());
    await journal.#recover(options);
    return journal;
  }

  /** Seq of the newest record appended (durable or not); -1 before the first. */
  get headSeq(): number {
    return this.#headSeq;
  }

  /** Seq of the newest durable record; -1 before the first. */
  get durableSeq(): number {
    return this.#durableSeq;
  }

  /** Journal address up to which every appended byte is durable. */
  get durableAddressBytes(): number {
    return this.#durableAddressBytes;
  }

  /** Journal address just past the newest appended record. */
  get endAddressBytes(): number {
    return this.#address(this.#tailSegmentId, this.#tailOffsetBytes);
  }

  get segmentSizeBytes(): number {
    return this.#segmentSizeBytes;
  }

  /**
   * The largest write or baseline payload this journal accepts: `limits.writeBytesMax`, or
   * less when a group or a segment (less a header and a segment-end pad) cannot hold that.
   */
  get dataPayloadBytesMax(): number {
    const sectorBytes = 512;
    const fitBytes = Math.floor((this.#recordBytesMax - journalRecordHeaderBytes) / sectorBytes) * sectorBytes;
    return Math.min(limits.writeBytesMax, fitBytes);
  }

  /** See {@link JournalCounters}. */
  get counters(): JournalCounters {
    return {
      groupWrites: this.#groupWrites,
      groupWriteBytes: this.#groupWriteBytes,
      writeInFlightUs: this.#writeInFlightUs,
      syncs: this.#syncs,
      syncInFlightUs: this.#syncInFlightUs,
    };
  }

  /** The failure that stopped the journal, or `null` while it works. */
  get failure(): JournalFailedError | null {
    return this.#failure;
  }

  /**
   * Appends a record if the filling group buffer has room, and returns its payload's journal
   * address; returns -1 when both group buffers are full (retry after a commit, or use
   * {@link append}). Throws `RangeError`/`TypeError` for a record that breaks the seq rule or a
   * limit, {@link ChecksumMismatchError} when `payloadChecksum` does not match (nothing is
   * appended then), {@link JournalFailedError} after a failure.
   */
  tryAppend(record: JournalRecordInput): number {
    this.#checkAppendable();
    if (this.#appendWaiters.length > 0) return -1; // earlier appends wait: keep seq order
    return this.#appendNow(record);
  }

  /** Appends a record, waiting for group-buffer space; resolves to the payload's address. */
  append(record: JournalRecordInput): Promise<number> {
    try {
      const payloadAddressBytes = this.tryAppend(record);
      if (payloadAddressBytes >= 0) return Promise.resolve(payloadAddressBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#appendWaiters.length >= journalLimits.appendWaitersMax) {
      return Promise.reject(
        new RangeError(`Cannot queue another append: ${this.#appendWaiters.length} appends already wait for space`),
      );
    }
    return new Promise((resolve, reject) => this.#appendWaiters.push({ record, resolve, reject }));
  }

  /** Resolves when every record appended so far is durable; rejects if the journal fails. */
  flush(): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const targetAddressBytes = this.endAddressBytes;
    if (this.#durableAddressBytes >= targetAddressBytes) return Promise.resolve();
    const last = this.#flushWaiters.at(-1);
    if (last !== undefined && last.addressBytes === targetAddressBytes) return last.promise;
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((resolvePromise, rejectPromise) => {
      resolve = resolvePromise;
      reject = rejectPromise;
    });
    this.#flushWaiters.push({ addressBytes: targetAddressBytes, promise, resolve, reject });
    return promise;
  }

  /**
   * Calls `listener(durableSeq, durableAddressBytes)` after each sync that made records
   * durable. Returns a function that removes the listener. A listener that throws does not
   * stop the journal; its error is rethrown from a microtask (like an event listener's).
   */
  onDurable(listener: (seq: number, addressBytes: number) => void): () => void {
    this.#durableListeners.add(listener);
    return () => this.#durableListeners.delete(listener);
  }

  /**
   * Fills `target` with the journal bytes at `addressBytes` (a payload address from
   * `append`, or inside one payload). Records not yet durable are read from the group buffers.
   */
  async read(addressBytes: number, target: Uint8Array): Promise<void> {
    const segmentId = Math.floor(addressBytes / this.#segmentSizeBytes);
    const offsetBytes = addressBytes - segmentId * this.#segmentSizeBytes;
    if (!Number.isSafeInteger(addressBytes) || addressBytes < 0 || offsetBytes + target.length > this.#segmentSizeBytes) {
      throw new RangeError(
        `Cannot read ${target.length} bytes at journal address ${addressBytes}: ` +
          `not inside one segment of ${this.#segmentSizeBytes} bytes`,
      );
    }
    if (addressBytes + target.length > this.endAddressBytes) {
      throw new RangeError(
        `Cannot read ${target.length} bytes at journal address ${addressBytes}: ` +
          `the journal ends at ${this.endAddressBytes}`,
      );
    }
    // The order matters: a group's bytes are in the store once its commit has completed,
    // and the committing group is only reused after that.
    if (this.#filling.copyOut(segmentId, offsetBytes, target)) return;
    if (this.#writeInFlight && this.#committing.copyOut(segmentId, offsetBytes, target)) return;
    await this.#store.read(segmentId, offsetBytes, target);
  }

  /**
   * Waits until every appended record (and every queued `append`) is durable, then stops
   * accepting records. The store stays open: it was passed in, its owner closes it.
   */
  async close(): Promise<void> {
    this.#closing = true;
    while (this.#appendWaiters.length > 0 || this.#durableAddressBytes < this.endAddressBytes) {
      await this.flush();
    }
    await Promise.allSettled([...this.#pendingCreates.values()]);
    if (this.#failure !== null) throw this.#failure;
  }

  // ---- Appending ----

  #checkAppendable(): void {
    if (this.#failure !== null) throw this.#failure;
    assert(!this.#closing, "Cannot append to a journal that is closing");
  }

  #appendNow(record: JournalRecordInput): number {
    const recordBytes = this.#validate(record);
    const rollsOver = this.#tailOffsetBytes + recordBytes > this.#segmentSizeBytes;
    const padBytes = rollsOver && this.#segmentSizeBytes - this.#tailOffsetBytes >= journalRecordHeaderBytes
      ? journalRecordHeaderBytes
      : 0;
    if (this.#filling.recordBytes + padBytes + recordBytes > this.#groupBytesMax) {
      this.#startCommitIfIdle();
      if (this.#filling.recordBytes + padBytes + recordBytes > this.#groupBytesMax) return -1;
    }
    const trusted = record.payloadChecksumVerified === true && record.payloadChecksum !== undefined;
    const payloadChecksum = trusted ? record.payloadChecksum! : this.#checksum.hash64(record.payload);
    if (record.payloadChecksum !== undefined && record.payloadChecksum !== payloadChecksum) {
      throw new ChecksumMismatchError(
        `Cannot append seq ${record.seq}: its payload checksum is 0x${payloadChecksum.toString(16)}, ` +
          `the switch computed 0x${record.payloadChecksum.toString(16)}`,
        { seq: record.seq, expectedChecksum: record.payloadChecksum, actualChecksum: payloadChecksum },
      );
    }
    const group = this.#filling;
    if (rollsOver) {
      if (padBytes > 0) this.#appendSegmentEnd(group);
      this.#tailSegmentId++;
      this.#tailOffsetBytes = 0;
      this.#ensureSegment(this.#tailSegmentId + 1);
    }
    group.placeRecord(this.#tailSegmentId, this.#tailOffsetBytes);
    const atBytes = group.usedBytes;
    const header = this.#header;
    header.payloadChecksum = payloadChecksum;
    header.durableAddressBytes = this.#durableAddressBytes;
    // Validated by #validate; sealed once, when the group is written (#stampDurableAddress).
    this.#codec.encodeHeaderUnsealed(header, group.bytes, atBytes);
    const payloadAtBytes = atBytes + journalRecordHeaderBytes;
    group.bytes.set(record.payload, payloadAtBytes);
    group.bytes.fill(0, payloadAtBytes + record.payload.length, atBytes + recordBytes);
    const recordAddressBytes = this.#address(this.#tailSegmentId, this.#tailOffsetBytes);
    group.usedBytes += recordBytes;
    group.lastSeq = record.seq;
    group.endAddressBytes = recordAddressBytes + recordBytes;
    this.#tailOffsetBytes += recordBytes;
    this.#headSeq = record.seq;
    this.#scheduleCommit();
    return recordAddressBytes + journalRecordHeaderBytes;
  }

  /**
   * Writes the segment-end pad at the tail: it travels in the same store write as the records
   * before it in this segment, so recovery crosses to the next segment only if all of them
   * survived (see `journalSegmentEndKind`).
   */
  #appendSegmentEnd(group: GroupBuffer): void {
    group.placeRecord(this.#tailSegmentId, this.#tailOffsetBytes);
    const pad = this.#padHeader;
    pad.seq = Math.max(this.#headSeq, 0);
    pad.durableAddressBytes = this.#durableAddressBytes;
    this.#codec.encodeHeader(pad, group.bytes, group.usedBytes);
    group.usedBytes += journalRecordHeaderBytes;
    this.#tailOffsetBytes += journalRecordHeaderBytes;
  }

  /** Checks a record against the seq rule and the limits; fills `#header`; returns its size. */
  #validate(record: JournalRecordInput): number {
    const { kind, seq, payload } = record;
    const kindName = journalRecordKindName(kind);
    if (kindName === undefined || kind === journalSegmentEndKind) {
      throw new TypeError(`Cannot append a record of kind ${kind}: no such kind`);
    }
    if (!(payload instanceof Uint8Array)) throw new TypeError(`Cannot append seq ${seq}: payload is not a Uint8Array`);
    const header = this.#header;
    header.kind = kind as JournalRecordKind;
    header.seq = seq;
    header.timeUs = record.timeUs;
    header.offsetBytes = record.offsetBytes;
    header.payloadLengthBytes = payload.length;
    header.payloadChecksum = 0n;
    header.durableAddressBytes = 0;
    const problem = journalRecordHeaderProblem(header) ?? seqProblem(this.#headSeq, kind, seq);
    if (problem !== null) throw new RangeError(`Cannot append a ${kindName} record with seq ${seq}: ${problem}`);
    const recordBytes = journalRecordBytes(payload.length);
    if (recordBytes > this.#recordBytesMax) {
      throw new RangeError(
        `Cannot append a ${kindName} record with seq ${seq}: its ${recordBytes} bytes exceed ` +
          `the ${this.#recordBytesMax} bytes a group and a segment can hold`,
      );
    }
    return recordBytes;
  }

  #drainAppendWaiters(): void {
    while (this.#appendWaiters.length > 0) {
      const waiter = this.#appendWaiters[0];
      let payloadAddressBytes: number;
      try {
        payloadAddressBytes = this.#appendNow(waiter.record);
      } catch (error) {
        this.#appendWaiters.shift();
        waiter.reject(error);
        continue;
      }
      if (payloadAddressBytes < 0) return;
      this.#appendWaiters.shift();
      waiter.resolve(payloadAddressBytes);
    }
  }

  // ---- Group commit ----

  #scheduleCommit(): void {
    if (this.#writeInFlight || this.#commitScheduled) return;
    this.#commitScheduled = true;
    queueMicrotask(this.#onCommitMicrotask);
  }

  readonly #onCommitMicrotask = (): void => {
    this.#commitScheduled = false;
    this.#startCommitIfIdle();
  };

  /**
   * Stage 1 of a commit: swap the buffers and write the full one to the store. The buffer is
   * free again as soon as its bytes are in the store (the page cache), not when they are
   * synced, so appends keep flowing while the disk syncs the previous group.
   */
  #startCommitIfIdle(): void {
    if (this.#writeInFlight || this.#failure !== null || this.#filling.usedBytes === 0) return;
    // A small group waits for the sync in flight, whose end starts it (#completeSync).
    if (this.#syncInFlight && this.#filling.usedBytes < this.#smallGroupBytes) return;
    const group = this.#filling;
    this.#filling = this.#committing;
    this.#committing = group;
    this.#writeInFlight = true;
    void this.#write(group);
  }

  async #write(group: GroupBuffer): Promise<void> {
    const startedUs = this.#clock?.nowUs() ?? 0;
    try {
      this.#stampDurableAddress(group);
      for (let piece = 0; piece < group.pieceCount; piece++) {
        const segmentId = group.pieceSegmentIds[piece];
        const pendingCreate = this.#pendingCreates.get(segmentId);
        if (pendingCreate !== undefined) await pendingCreate;
        const source = group.bytes.subarray(group.pieceBufferOffsetsBytes[piece], group.pieceEndBytes(piece));
        await this.#store.write(segmentId, group.pieceSegmentOffsetsBytes[piece], source);
        this.#unsyncedSegmentIds.add(segmentId);
      }
    } catch (error) {
      this.#fail(error);
      return;
    }
    assert(group.endAddressBytes > this.#writtenAddressBytes, "A commit moves the written address forward");
    this.#writtenAddressBytes = group.endAddressBytes;
    this.#writtenSeq = group.lastSeq;
    this.#groupWrites++;
    this.#groupWriteBytes += group.recordBytes;
    if (this.#clock !== null) this.#writeInFlightUs += this.#clock.nowUs() - startedUs;
    group.reset();
    this.#writeInFlight = false;
    this.#startSyncIfIdle();
    this.#startCommitIfIdle();
    this.#drainAppendWaiters();
  }

  /**
   * Stage 2: one sync at a time covers every group written before it started; only then do
   * the durable position, flush waiters and `onDurable` listeners move.
   */
  #startSyncIfIdle(): void {
    if (this.#syncInFlight || this.#failure !== null || this.#writtenAddressBytes <= this.#durableAddressBytes) return;
    this.#syncInFlight = true;
    const segmentIds = [...this.#unsyncedSegmentIds].sort((a, b) => a - b);
    this.#unsyncedSegmentIds.clear();
    void this.#sync(segmentIds, this.#writtenAddressBytes, this.#writtenSeq);
  }

  async #sync(segmentIds: number[], endAddressBytes: number, lastSeq: number): Promise<void> {
    const startedUs = this.#clock?.nowUs() ?? 0;
    try {
      for (const segmentId of segmentIds) await this.#store.sync(segmentId);
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#syncs++;
    if (this.#clock !== null) this.#syncInFlightUs += this.#clock.nowUs() - startedUs;
    this.#completeSync(endAddressBytes, lastSeq);
  }

  /**
   * Stamps every record of the group with the current durable address and seals its header
   * (appends leave headers unsealed: one header checksum per record, not two): everything
   * before the address has been synced, so the claim is true, and it is what lets recovery
   * tell corruption of an earlier group from a torn tail.
   */
  #stampDurableAddress(group: GroupBuffer): void {
    for (let piece = 0; piece < group.pieceCount; piece++) {
      const endBytes = group.pieceEndBytes(piece);
      let atBytes = group.pieceBufferOffsetsBytes[piece];
      while (atBytes < endBytes) {
        this.#codec.stampDurableAddress(group.bytes, atBytes, this.#durableAddressBytes);
        atBytes += journalRecordBytes(this.#codec.payloadLengthAt(group.bytes, atBytes));
      }
      assert(atBytes === endBytes, "Records fill their piece exactly");
    }
  }

  #completeSync(endAddressBytes: number, lastSeq: number): void {
    assert(endAddressBytes > this.#durableAddressBytes, "A sync moves the durable address forward");
    this.#durableAddressBytes = endAddressBytes;
    this.#durableSeq = lastSeq;
    this.#syncInFlight = false;
    while (this.#flushWaiters.length > 0 && this.#flushWaiters[0].addressBytes <= this.#durableAddressBytes) {
      this.#flushWaiters.shift()!.resolve();
    }
    for (const listener of this.#durableListeners) {
      try {
        listener(this.#durableSeq, this.#durableAddressBytes);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    this.#startCommitIfIdle();
    this.#startSyncIfIdle();
  }

  #fail(error: unknown): void {
    if (this.#failure !== null) return;
    const message = error instanceof Error ? error.message : String(error);
    this.#failure = new JournalFailedError(
      `The journal failed and accepts no more records (durable through seq ${this.#durableSeq}): ${message}`,
      { cause: error },
    );
    this.#log(this.#failure.message);
    for (const waiter of this.#flushWaiters) waiter.reject(this.#failure);
    for (const waiter of this.#appendWaiters) waiter.reject(this.#failure);
    this.#flushWaiters = [];
    this.#appendWaiters = [];
  }

  /** Starts creating segments up to `segmentId` in the background (one ahead of the tail). */
  #ensureSegment(segmentId: number): void {
    while (this.#segmentIdCreatedMax < segmentId) {
      const newSegmentId = ++this.#segmentIdCreatedMax;
      const created = Promise.resolve().then(() => this.#store.create(newSegmentId, this.#segmentSizeBytes));
      this.#pendingCreates.set(newSegmentId, created);
      created.then(
        () => this.#pendingCreates.delete(newSegmentId),
        (error: unknown) => this.#fail(error),
      );
    }
  }

  #address(segmentId: number, offsetBytes: number): number {
    return segmentId * this.#segmentSizeBytes + offsetBytes;
  }

  // ---- Recovery ----

  async #recover(options: JournalOptions): Promise<void> {
    const segmentIds = await this.#store.list();
    if (options.recoverFromSeq !== undefined) checkSeq("recoverFromSeq", options.recoverFromSeq);
    if (segmentIds.length === 0) {
      if (options.recoverFromAddressBytes !== undefined && options.recoverFromAddressBytes !== 0) {
        throw new RangeError(
          `Cannot recover from journal address ${options.recoverFromAddressBytes}: the store holds no segments`,
        );
      }
      await this.#store.create(0, this.#segmentSizeBytes);
      this.#segmentIdCreatedMax = 0;
      this.#headSeq = this.#durableSeq = this.#writtenSeq = options.recoverFromSeq ?? -1;
      this.#ensureSegment(1);
      return;
    }
    const startAddressBytes = options.recoverFromAddressBytes ?? this.#address(segmentIds[0], 0);
    const startSegmentId = Math.floor(startAddressBytes / this.#segmentSizeBytes);
    if (
      !Number.isSafeInteger(startAddressBytes) || startAddressBytes % journalRecordAlignBytes !== 0 ||
      !segmentIds.includes(startSegmentId)
    ) {
      throw new RangeError(
        `Cannot recover from journal address ${startAddressBytes}: not a record boundary in an existing segment`,
      );
    }
    const scan = new RecoveryScan({
      store: this.#store,
      codec: this.#codec,
      segmentIds,
      segmentSizeBytes: this.#segmentSizeBytes,
      onRecord: options.onRecord,
    });
    const end = await scan.run(startSegmentId, startAddressBytes - this.#address(startSegmentId, 0), options.recoverFromSeq);
    await scan.cutAfter(end, (line) => this.#log(line));
    // What the scan read may still sit in a page cache after a process crash: make it durable
    // before new records claim it was.
    for (const segmentId of end.segmentIdsVisited) await this.#store.sync(segmentId);

    this.#tailSegmentId = end.segmentId;
    this.#tailOffsetBytes = end.offsetBytes;
    this.#durableAddressBytes = this.#writtenAddressBytes = this.endAddressBytes;
    this.#headSeq = this.#durableSeq = this.#writtenSeq = end.lastSeq;
    this.#segmentIdCreatedMax = segmentIds[segmentIds.length - 1];
    for (let segmentId = end.segmentId + 1; segmentId < this.#segmentIdCreatedMax; segmentId++) {
      if (!segmentIds.includes(segmentId)) await this.#store.create(segmentId, this.#segmentSizeBytes);
    }
    this.#ensureSegment(end.segmentId + 1);
  }
}

/** Reads segments through one reusable window buffer during recovery. */
class RecoveryScan {
  readonly #store: SegmentStore;
  readonly #codec: JournalRecordCodec;
  readonly #segmentIds: readonly number[];
  readonly #segmentSizeBytes: number;
  readonly #onRecord: ((record: RecoveredRecord) => void) | undefined;
  readonly #window: Uint8Array;
  readonly #windowWords: Uint32Array;
  #windowSegmentId = -1;
  #windowStartBytes = 0;
  #windowLengthBytes = 0;
  readonly #header = createJournalRecordHeader();
  readonly #segmentSizesChecked = new Set<number>();

  constructor(deps: {
    store: SegmentStore;
    codec: JournalRecordCodec;
    segmentIds: readonly number[];
    segmentSizeBytes: number;
    onRecord: ((record: RecoveredRecord) => void) | undefined;
  }) {
    this.#store = deps.store;
    this.#codec = deps.codec;
    this.#segmentIds = deps.segmentIds;
    this.#segmentSizeBytes = deps.segmentSizeBytes;
    this.#onRecord = deps.onRecord;
    // Any record fits the window: records are at most a segment and at most the largest record.
    this.#window = new Uint8Array(Math.min(deps.segmentSizeBytes, journalRecordBytesMax));
    this.#windowWords = new Uint32Array(this.#window.buffer);
  }

  /** Delivers every valid record from the start position on; returns where they end. */
  async run(segmentId: number, offsetBytes: number, recoverFromSeq: number | undefined): Promise<ScanEnd> {
    const end: ScanEnd = {
      segmentId,
      offsetBytes,
      lastSeq: recoverFromSeq ?? -1,
      reason: "zeros",
      segmentIdsVisited: [segmentId],
    };
    let seqKnown = recoverFromSeq !== undefined;
    // Just past the last record delivered: where the journal ends if nothing valid follows. A
    // pad followed by nothing valid is not part of the journal (it is cut with the rest).
    let resumeSegmentId = segmentId;
    let resumeOffsetBytes = offsetBytes;
    await this.#checkSegmentSize(segmentId);
    for (;;) {
      const problem = await this.#nextProblem(end, seqKnown);
      if (problem !== null) {
        const backsUp = end.segmentId !== resumeSegmentId || end.offsetBytes !== resumeOffsetBytes;
        end.reason = backsUp
          ? `a segment end pad, then ${problem} at segment ${end.segmentId} offset ${end.offsetBytes}`
          : problem;
        end.segmentId = resumeSegmentId;
        end.offsetBytes = resumeOffsetBytes;
        return end;
      }
      if (this.#continuesInNextSegment(end)) {
        end.segmentId++;
        end.offsetBytes = 0;
        end.segmentIdsVisited.push(end.segmentId);
        continue;
      }
      this.#deliver(end);
      end.lastSeq = this.#header.seq;
      end.offsetBytes += journalRecordBytes(this.#header.payloadLengthBytes);
      seqKnown = true;
      resumeSegmentId = end.segmentId;
      resumeOffsetBytes = end.offsetBytes;
    }
  }

  /**
   * Checks what comes at `end`: `null` when it is a valid record that follows the seq rule,
   * a valid segment-end pad, or, where the segment has no room left even for a pad, a valid
   * record at the next segment's start. Otherwise says why the records end here.
   */
  async #nextProblem(end: ScanEnd, seqKnown: boolean): Promise<string | null> {
    const roomBytes = this.#segmentSizeBytes - end.offsetBytes;
    if (roomBytes >= journalRecordHeaderBytes) {
      const problem = await this.#recordProblem(end, seqKnown);
      if (problem !== null || this.#header.kind !== journalSegmentEndKind) return problem;
    }
    const nextSegmentId = end.segmentId + 1;
    if (!this.#segmentIds.includes(nextSegmentId)) {
      return roomBytes >= journalRecordHeaderBytes ? "a segment end pad but no next segment" : "zeros";
    }
    await this.#checkSegmentSize(nextSegmentId);
    if (roomBytes >= journalRecordHeaderBytes) return null; // a valid pad: go on at the next segment
    const problem = await this.#recordProblem({ ...end, segmentId: nextSegmentId, offsetBytes: 0 }, seqKnown);
    if (problem === null && this.#header.kind === journalSegmentEndKind) return "a segment end pad at a segment start";
    return problem;
  }

  /** After `#nextProblem` said yes: true when the scan goes on at the next segment's start. */
  #continuesInNextSegment(end: ScanEnd): boolean {
    return this.#segmentSizeBytes - end.offsetBytes < journalRecordHeaderBytes ||
      this.#header.kind === journalSegmentEndKind;
  }

  /**
   * Examines everything after the scan's end: throws {@link JournalCorruptionError} if a
   * later record proves the end position durable; otherwise zeroes (and syncs) the nonzero
   * bytes there, which no durable record can be, and logs the cut.
   */
  async cutAfter(end: ScanEnd, log: (line: string) => void): Promise<void> {
    const endAddressBytes = end.segmentId * this.#segmentSizeBytes + end.offsetBytes;
    const garbage: { segmentId: number; fromBytes: number; toBytes: number }[] = [];
    for (const segmentId of this.#segmentIds) {
      if (segmentId < end.segmentId) continue;
      await this.#checkSegmentSize(segmentId);
      const fromBytes = segmentId === end.segmentId ? end.offsetBytes : 0;
      const extent = await this.#examine(segmentId, fromBytes, endAddressBytes, end);
      if (extent !== null) garbage.push({ segmentId, ...extent });
    }
    if (garbage.length === 0) return;
    this.#window.fill(0);
    this.#windowSegmentId = -1;
    let zeroedBytes = 0;
    for (const { segmentId, fromBytes, toBytes } of garbage) {
      for (let atBytes = fromBytes; atBytes < toBytes; atBytes += this.#window.length) {
        const lengthBytes = Math.min(this.#window.length, toBytes - atBytes);
        await this.#store.write(segmentId, atBytes, this.#window.subarray(0, lengthBytes));
      }
      await this.#store.sync(segmentId);
      zeroedBytes += toBytes - fromBytes;
    }
    const after = end.lastSeq < 0 ? "before any record" : `after seq ${end.lastSeq}`;
    log(
      `Journal recovery cut a torn tail at segment ${end.segmentId} offset ${end.offsetBytes} ${after} ` +
        `(found ${end.reason}; zeroed ${zeroedBytes} bytes that were never durable)`,
    );
  }

  /**
   * Scans `[fromBytes, segment end)` of one segment for record headers that prove
   * `endAddressBytes` durable, and returns the 8-aligned extent of its nonzero bytes.
   */
  async #examine(
    segmentId: number,
    fromBytes: number,
    endAddressBytes: number,
    end: ScanEnd,
  ): Promise<{ fromBytes: number; toBytes: number } | null> {
    const segmentSizeBytes = this.#segmentSizeBytes;
    let nonzeroFromBytes = -1;
    let nonzeroToBytes = -1;
    let chunkStartBytes = fromBytes;
    while (chunkStartBytes < segmentSizeBytes) {
      const baseBytes = await this.#coverChunk(segmentId, chunkStartBytes);
      const chunkBytes = this.#windowStartBytes + this.#windowLengthBytes - chunkStartBytes;
      const words = this.#windowWords;
      const baseWord = baseBytes / 4;
      for (let word = 0; word < chunkBytes / 4; word++) {
        if (words[baseWord + word] === 0) continue;
        if (nonzeroFromBytes < 0) nonzeroFromBytes = chunkStartBytes + word * 4;
        nonzeroToBytes = chunkStartBytes + word * 4 + 4;
      }
      let atBytes = 0;
      for (; atBytes + journalRecordHeaderBytes <= chunkBytes; atBytes += journalRecordAlignBytes) {
        if (words[baseWord + atBytes / 4] !== journalRecordMagic) continue;
        if (this.#codec.tryDecodeHeader(this.#window, baseBytes + atBytes, this.#header) !== null) continue;
        if (this.#header.durableAddressBytes <= endAddressBytes) continue;
        const laterOffsetBytes = chunkStartBytes + atBytes;
        throw new JournalCorruptionError(
          `Journal corruption at segment ${end.segmentId} offset ${end.offsetBytes} after seq ${end.lastSeq}: ` +
            `found ${end.reason} there, but the later record seq ${this.#header.seq} at segment ${segmentId} ` +
            `offset ${laterOffsetBytes} was written after that position was durable`,
          { segmentId: end.segmentId, offsetBytes: end.offsetBytes, lastGoodSeq: end.lastSeq },
        );
      }
      if (chunkStartBytes + chunkBytes >= segmentSizeBytes) break;
      chunkStartBytes += atBytes; // the next chunk starts at the first header position not checked
    }
    if (nonzeroFromBytes < 0) return null;
    const alignMask = journalRecordAlignBytes - 1;
    return {
      fromBytes: nonzeroFromBytes & ~alignMask,
      toBytes: Math.min(segmentSizeBytes, (nonzeroToBytes + alignMask) & ~alignMask),
    };
  }

  /** `null` when a valid record that follows the seq rule starts at `end`; else why not. */
  async #recordProblem(end: ScanEnd, seqKnown: boolean): Promise<string | null> {
    const { segmentId, offsetBytes } = end;
    if (offsetBytes + journalRecordHeaderBytes > this.#segmentSizeBytes) return "zeros";
    let atBytes = await this.#cover(segmentId, offsetBytes, journalRecordHeaderBytes);
    if (isZero(this.#window, atBytes, journalRecordHeaderBytes)) return "zeros";
    const header = this.#header;
    const headerProblem = this.#codec.tryDecodeHeader(this.#window, atBytes, header);
    if (headerProblem !== null) return `an invalid record header (${headerProblem})`;
    if (seqKnown) {
      const problem = header.kind === journalSegmentEndKind
        ? (header.seq === Math.max(end.lastSeq, 0) ? null : `a segment end pad with seq ${header.seq}`)
        : seqProblem(end.lastSeq, header.kind, header.seq);
      if (problem !== null) return `a record out of sequence (${problem})`;
    }
    const recordBytes = journalRecordBytes(header.payloadLengthBytes);
    if (offsetBytes + recordBytes > this.#segmentSizeBytes) return "a record that overruns its segment";
    const recordAddressBytes = segmentId * this.#segmentSizeBytes + offsetBytes;
    if (header.durableAddressBytes > recordAddressBytes) {
      return `a record claiming address ${header.durableAddressBytes} durable before it was written`;
    }
    atBytes = await this.#cover(segmentId, offsetBytes, recordBytes);
    const payloadAtBytes = atBytes + journalRecordHeaderBytes;
    const payload = this.#window.subarray(payloadAtBytes, payloadAtBytes + header.payloadLengthBytes);
    if (this.#codec.checksum.hash64(payload) !== header.payloadChecksum) return "a payload checksum mismatch";
    return null;
  }

  /** Hands the record just validated by `#recordProblem` to `onRecord`. */
  #deliver(end: ScanEnd): void {
    if (this.#onRecord === undefined) return;
    const header = this.#header;
    const kind = header.kind;
    assert(kind !== journalSegmentEndKind, "Pads are not delivered");
    const recordAddressBytes = end.segmentId * this.#segmentSizeBytes + end.offsetBytes;
    const payloadAtBytes = end.offsetBytes - this.#windowStartBytes + journalRecordHeaderBytes;
    this.#onRecord({
      ...header,
      kind,
      recordAddressBytes,
      payloadAddressBytes: recordAddressBytes + journalRecordHeaderBytes,
      payload: this.#window.subarray(payloadAtBytes, payloadAtBytes + header.payloadLengthBytes),
    });
  }

  /**
   * Makes the window hold bytes from `offsetBytes` on: what it holds already if that reaches
   * the segment's end or is more than a header (the scan just read it), else a fresh window.
   * Returns the window index of `offsetBytes`.
   */
  async #coverChunk(segmentId: number, offsetBytes: number): Promise<number> {
    const windowEndBytes = this.#windowStartBytes + this.#windowLengthBytes;
    if (
      segmentId === this.#windowSegmentId && offsetBytes >= this.#windowStartBytes &&
      (windowEndBytes === this.#segmentSizeBytes ||
        windowEndBytes - offsetBytes >= journalRecordHeaderBytes + journalRecordAlignBytes)
    ) {
      return offsetBytes - this.#windowStartBytes;
    }
    await this.#load(segmentId, offsetBytes, Math.min(this.#window.length, this.#segmentSizeBytes - offsetBytes));
    return 0;
  }

  /** Makes the window hold `[offsetBytes, +lengthBytes)` of a segment; returns its index. */
  async #cover(segmentId: number, offsetBytes: number, lengthBytes: number): Promise<number> {
    if (
      segmentId === this.#windowSegmentId && offsetBytes >= this.#windowStartBytes &&
      offsetBytes + lengthBytes <= this.#windowStartBytes + this.#windowLengthBytes
    ) {
      return offsetBytes - this.#windowStartBytes;
    }
    const readBytes = Math.min(this.#window.length, this.#segmentSizeBytes - offsetBytes);
    assert(lengthBytes <= readBytes, "A record fits the recovery window");
    await this.#load(segmentId, offsetBytes, readBytes);
    return 0;
  }

  async #load(segmentId: number, offsetBytes: number, lengthBytes: number): Promise<void> {
    this.#windowSegmentId = -1; // a failed read leaves no stale window behind
    await this.#store.read(segmentId, offsetBytes, this.#window.subarray(0, lengthBytes));
    this.#windowSegmentId = segmentId;
    this.#windowStartBytes = offsetBytes;
    this.#windowLengthBytes = lengthBytes;
  }

  async #checkSegmentSize(segmentId: number): Promise<void> {
    if (this.#segmentSizesChecked.has(segmentId)) return;
    const sizeBytes = await this.#store.sizeOf(segmentId);
    if (sizeBytes !== this.#segmentSizeBytes) {
      throw new RangeError(
        `Cannot recover journal segment ${segmentId}: it holds ${sizeBytes} bytes, ` +
          `not the ${this.#segmentSizeBytes} of segmentSizeBytes`,
      );
    }
    this.#segmentSizesChecked.add(segmentId);
  }
}

/**
 * The seq rule: baseline records (seq 0) come first, then 1, 2, 3, ... with no gap. `lastSeq`
 * is -1 before any record. Returns why `seq` may not follow `lastSeq`, or `null`.
 */
function seqProblem(lastSeq: number, kind: number, seq: number): string | null {
  if (kind === journalRecordKinds.baseline) {
    return lastSeq <= 0 ? null : `a baseline record cannot follow seq ${lastSeq}`;
  }
  const expectedSeq = Math.max(lastSeq, 0) + 1;
  return seq === expectedSeq ? null : `seq ${expectedSeq} comes next`;
}

function isZero(bytes: Uint8Array, fromBytes: number, lengthBytes: number): boolean {
  for (let i = fromBytes; i < fromBytes + lengthBytes; i++) if (bytes[i] !== 0) return false;
  return true;
}

function checkSize(name: string, valueBytes: number, minBytes: number, maxBytes: number): void {
  if (
    !Number.isSafeInteger(valueBytes) || valueBytes < minBytes || valueBytes > maxBytes ||
    valueBytes % journalRecordAlignBytes !== 0
  ) {
    throw new RangeError(
      `Cannot open the journal with ${name} ${valueBytes}: ` +
        `it must be a multiple of ${journalRecordAlignBytes} from ${minBytes} to ${maxBytes}`,
    );
  }
}

function checkSeq(name: string, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new RangeError(`Cannot open the journal with ${name} ${seq}: not a non-negative integer`);
  }
}
