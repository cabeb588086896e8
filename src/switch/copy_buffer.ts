/**
 * The splitter's copy buffer: copies of host writes kept until the appliance acknowledges
 * them, so they can be sent again after a reconnect (SPEC.md guarantees 2 and 5).
 *
 * Two rings, both allocated once in the constructor and never grown:
 * - a byte ring of `bytesMax` bytes holding the data. Each entry's data is contiguous; an
 *   entry that does not fit before the ring's end starts at offset 0 instead, and the
 *   skipped tail counts as used until that entry is released (so `usedBytes` can exceed the
 *   sum of the entries' lengths by less than one entry). Given a `Checksum`, the ring is
 *   its in-place memory (`Checksum.allocate`) and each write is hashed after it is copied
 *   in, where it lies: one pass over the bytes instead of a copy into the hash's memory;
 * - a metadata ring of typed arrays (seq, timeUs, offsetBytes, lengthBytes, ring position,
 *   span, checksum) with room for `ceil(bytesMax / 512)` entries: one per sector-sized write.
 *
 * Entries are appended in increasing seq and released oldest first by a cumulative
 * acknowledgement (`releaseThrough`).
 *
 * Lending: the switch link sends entries' data straight from the ring (no gather copy), so
 * the bytes must not be overwritten until the send settles, even if the entries are released
 * (acknowledged, or dropped by `clear` in marking mode) first. `lend(firstSeq, lastSeq)`
 * returns views of those entries' bytes (one, or two where the ring wraps) and `endLend()`
 * ends the loan. While a loan is out, releasing an entry of it, or any entry after one, frees
 * its metadata at once but keeps its ring bytes counted as used (`usedBytes`, `freeBytes`):
 * the ring's head stops at the loan, and moves on to where the releases reached when the loan
 * ends. One loan at a time: memory stays the ring's, fixed. When a write does not fit, `tryAppend` returns false and
 * changes nothing: the caller then holds the host write or drops to marking mode; the buffer
 * never grows.
 *
 * @example
 * ```ts
 * import { CopyBuffer } from "./copy_buffer.ts";
 *
 * const buffer = new CopyBuffer(1024 * 1024);
 * const data = new Uint8Array(4096).fill(7);
 * buffer.tryAppend({ seq: 1, timeUs: 1_700_000_000_000_000, offsetBytes: 8192, data, checksum: 0n }); // true
 * buffer.forEachFrom(1, (entry) => {
 *   entry.data; // a view into the ring, valid only during this call
 * });
 * buffer.releaseThrough(1); // the appliance acknowledged seq 1
 * buffer.entryCount; // 0
 * ```
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { switchLimits } from "../core/limits.ts";

/** A write to keep: the data is copied into the ring. */
export interface CopyBufferWrite {
  /** Per-volume sequence; larger than every seq appended before. */
  seq: number;
  /** Switch clock when the host issued the write, µs since the Unix epoch. */
  timeUs: number;
  /** Where the write lands on the primary. */
  offsetBytes: number;
  /** The written bytes: 1 to `bytesMax` of them. */
  data: Uint8Array;
  /**
   * XXH64 of `data`. Omitted, it is computed over the copy in the ring, in place (the buffer
   * needs the `checksum` option): the splitter's way, which saves hashing a copy.
   */
  checksum?: bigint;
}

/**
 * One kept write as `forEachFrom` shows it. The same object is reused for every entry and
 * `data` views the ring: both are valid only during the `visit` call (copy what must outlive it).
 */
export interface CopyBufferEntry {
  readonly seq: number;
  readonly timeUs: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly checksum: bigint;
  /** Where the data starts in the ring (its span may start earlier, at a skipped tail). */
  readonly positionBytes: number;
  readonly data: Uint8Array;
}

/** The one entry view `forEachFrom` hands out; `data` is made only when read. */
class EntryView implements CopyBufferEntry {
  seq = 0;
  timeUs = 0;
  offsetBytes = 0;
  lengthBytes = 0;
  checksum = 0n;
  positionBytes = 0;
  readonly #ring: Uint8Array;

  constructor(ring: Uint8Array) {
    this.#ring = ring;
  }

  get data(): Uint8Array {
    return this.#ring.subarray(this.positionBytes, this.positionBytes + this.lengthBytes);
  }
}

/** See the module doc. */
export class CopyBuffer {
  /** The byte ring's size: the most bytes the buffer ever holds. */
  readonly bytesMax: number;
  /** The metadata ring's size: the most entries the buffer ever holds. */
  readonly entryCountMax: number;

  readonly #ring: Uint8Array;
  readonly #seqs: Float64Array;
  readonly #timesUs: Float64Array;
  readonly #offsetsBytes: Float64Array;
  readonly #lengthsBytes: Uint32Array;
  /** Where each entry's data starts in the byte ring. */
  readonly #positionsBytes: Uint32Array;
  /** Ring bytes each entry holds: its length plus the tail it skipped when it wrapped. */
  readonly #spansBytes: Uint32Array;
  readonly #checksums: BigUint64Array;
  /** Hashes writes appended without a checksum; the ring is its in-place memory. */
  readonly #checksum: Checksum | null;
  /** The one view object `forEachFrom` hands out. */
  readonly #view: EntryView;

  /** Metadata index of the oldest entry. */
  #headIndex = 0;
  #entryCount = 0;
  /** Byte ring position where the oldest entry's span starts (its skipped tail, if any). */
  #headBytes = 0;
  /** Byte ring position where the next entry's data would start without wrapping. */
  #tailBytes = 0;
  #usedBytes = 0;
  /** The newest seq ever appended (kept across `clear`, so seqs keep growing); -1 before any. */
  #lastSeq = -1;
  #iterating = false;
  /** The loan's first seq, or -1 when nothing is lent. */
  #lentFirstSeq = -1;
  /** Ring bytes released while lent, still counted in `#usedBytes` until the loan ends. */
  #deferredBytes = 0;
  /** Where the head moves when the loan ends (valid while `#deferredBytes > 0`). */
  #deferredHeadBytes = 0;

  /**
   * Allocates both rings.
   *
   * @param bytesMax the byte ring's size; default `switchLimits.copyBufferBytesDefault` (64 MiB).
   * @param options.touch write every page of the rings now, so they are resident from the
   *   start: a process then fails at start, not under load, when the memory is not there, and
   *   the write path takes no page faults (the long-running processes set it; tests need not).
   * @param options.checksum allocates the byte ring (`Checksum.allocate`, so it is hashed in
   *   place) and hashes writes appended without a checksum.
   * @throws {RangeError} when `bytesMax` is not an integer in [512, `switchLimits.copyBufferBytesMax`].
   */
  constructor(
    bytesMax: number = switchLimits.copyBufferBytesDefault,
    options: { touch?: boolean; checksum?: Checksum } = {},
  ) {
    if (
      !Number.isSafeInteger(bytesMax) || bytesMax < switchLimits.copyBufferEntryBytesMin ||
      bytesMax > switchLimits.copyBufferBytesMax
    ) {
      throw new RangeError(
        `Cannot size a copy buffer at ${bytesMax} bytes: it must be an integer from ` +
          `${switchLimits.copyBufferEntryBytesMin} to ${switchLimits.copyBufferBytesMax}`,
      );
    }
    this.bytesMax = bytesMax;
    this.entryCountMax = Math.ceil(bytesMax / switchLimits.copyBufferEntryBytesMin);
    this.#checksum = options.checksum ?? null;
    this.#ring = this.#checksum?.allocate(bytesMax) ?? new Uint8Array(bytesMax);
    this.#seqs = new Float64Array(this.entryCountMax);
    this.#timesUs = new Float64Array(this.entryCountMax);
    this.#offsetsBytes = new Float64Array(this.entryCountMax);
    this.#lengthsBytes = new Uint32Array(this.entryCountMax);
    this.#positionsBytes = new Uint32Array(this.entryCountMax);
    this.#spansBytes = new Uint32Array(this.entryCountMax);
    this.#checksums = new BigUint64Array(this.entryCountMax);
    this.#view = new EntryView(this.#ring);
    if (options.touch === true) {
      // Zero-filled allocations are mapped lazily; writing each page makes it resident.
      for (const ring of [this.#ring, this.#seqs, this.#timesUs, this.#offsetsBytes, this.#lengthsBytes, this.#positionsBytes, this.#spansBytes]) ring.fill(0);
      this.#checksums.fill(0n);
    }
  }

  /** Entries held (appended and not yet released). */
  get entryCount(): number {
    return this.#entryCount;
  }

  /** Ring bytes held, skipped tails included. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** `bytesMax - usedBytes`; not all of it is contiguous, so a write this long may not fit. */
  get freeBytes(): number {
    return this.bytesMax - this.#usedBytes;
  }

  /** The oldest held entry's seq, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.#entryCount === 0 ? undefined : this.#seqs[this.#headIndex];
  }

  /** The newest held entry's seq, or undefined when empty. */
  get newestSeq(): number | undefined {
    return this.#entryCount === 0 ? undefined : this.#seqs[this.#indexAt(this.#entryCount - 1)];
  }

  /**
   * Copies a write in. Returns false, changing nothing, when the data does not fit in
   * contiguous free ring space or the metadata ring is full.
   *
   * @throws {RangeError} when a field is not a valid value, or the data is empty or longer
   * than `bytesMax` (it could never fit; waiting for room would wait forever).
   */
  tryAppend(write: CopyBufferWrite): boolean {
    this.#checkNotIterating("append to");
    const { seq, timeUs, offsetBytes, data, checksum } = write;
    checkWrite(write, this.bytesMax);
    if (checksum === undefined && this.#checksum === null) assert(false, "A write without its checksum needs the checksum option");
    // Messages on this path are built only on failure: it runs for every host write.
    if (!(seq > this.#lastSeq)) assert(false, `Seq ${seq} must follow seq ${this.#lastSeq}`);
    if (this.#entryCount === this.entryCountMax) return false;
    const lengthBytes = data.length;
    const placement = this.#place(lengthBytes);
    if (placement < 0) return false;
    const skippedBytes = placement === this.#tailBytes ? 0 : this.bytesMax - this.#tailBytes;
    this.#ring.set(data, placement);
    const index = this.#indexAt(this.#entryCount);
    this.#seqs[index] = seq;
    this.#timesUs[index] = timeUs;
    this.#offsetsBytes[index] = offsetBytes;
    this.#lengthsBytes[index] = lengthBytes;
    this.#positionsBytes[index] = placement;
    this.#spansBytes[index] = skippedBytes + lengthBytes;
    this.#checksums[index] = checksum ?? this.#checksum!.hash64(this.#ring.subarray(placement, placement + lengthBytes));
    this.#entryCount++;
    this.#usedBytes += skippedBytes + lengthBytes;
    this.#tailBytes = placement + lengthBytes === this.bytesMax ? 0 : placement + lengthBytes;
    this.#lastSeq = seq;
    assert(this.#usedBytes <= this.bytesMax, "The copy buffer never holds more than its size");
    return true;
  }

  /**
   * Releases every entry with seq at most `seq` (a cumulative acknowledgement), oldest
   * first; returns how many. A seq older than the oldest entry releases nothing; a seq past
   * the newest releases everything (markers share the sequence and are not kept here).
   *
   * @throws {RangeError} when `seq` is not an integer.
   */
  releaseThrough(seq: number): number {
    this.#checkNotIterating("release from");
    checkSeq("release through", seq);
    let releasedCount = 0;
    while (this.#entryCount > 0 && this.#seqs[this.#headIndex] <= seq) {
      const index = this.#headIndex;
      const spanBytes = this.#spansBytes[index];
      assert(spanBytes <= this.#usedBytes - this.#deferredBytes, "A released entry was accounted as used");
      const nextIndex = this.#indexAt(1);
      assert(this.#entryCount === 1 || this.#seqs[nextIndex] > this.#seqs[index], "Entries are in seq order");
      let endBytes = this.#positionsBytes[index] + this.#lengthsBytes[index];
      if (endBytes === this.bytesMax) endBytes = 0;
      if (this.#deferredBytes > 0 || (this.#lentFirstSeq >= 0 && this.#seqs[index] >= this.#lentFirstSeq)) {
        // Lent (or after a lent entry): the bytes stay until the loan ends.
        this.#deferredBytes += spanBytes;
        this.#deferredHeadBytes = endBytes;
      } else {
        this.#usedBytes -= spanBytes;
        this.#headBytes = endBytes;
      }
      this.#headIndex = nextIndex;
      this.#entryCount--;
      releasedCount++;
    }
    if (this.#entryCount === 0) this.#empty();
    return releasedCount;
  }

  /**
   * Lends the ring bytes of the held entries `firstSeq` through `lastSeq` (consecutive entries,
   * all held): returns views of them in order, one, or two where the ring wraps between
   * entries. The bytes stay unchanged until {@link endLend}, whatever is released meanwhile.
   * One loan at a time.
   */
  lend(firstSeq: number, lastSeq: number): Uint8Array[] {
    this.#checkNotIterating("lend from");
    assert(this.#lentFirstSeq < 0, "Cannot lend from the copy buffer while a loan is out");
    const first = this.#firstPositionFrom(firstSeq);
    const count = lastSeq - firstSeq + 1;
    assert(
      count >= 1 && first + count <= this.#entryCount && this.#seqs[this.#indexAt(first)] === firstSeq &&
        this.#seqs[this.#indexAt(first + count - 1)] === lastSeq,
      `Cannot lend seqs ${firstSeq} to ${lastSeq}: not consecutive held entries`,
    );
    const views: Uint8Array[] = [];
    let runStartBytes = this.#positionsBytes[this.#indexAt(first)];
    let runEndBytes = runStartBytes;
    for (let position = first; position < first + count; position++) {
      const index = this.#indexAt(position);
      const positionBytes = this.#positionsBytes[index];
      if (positionBytes !== runEndBytes) {
        views.push(this.#ring.subarray(runStartBytes, runEndBytes));
        runStartBytes = positionBytes;
      }
      runEndBytes = positionBytes + this.#lengthsBytes[index];
    }
    views.push(this.#ring.subarray(runStartBytes, runEndBytes));
    // Held entries wrap the ring at most once.
    assert(views.length <= 2, "A loan is one or two runs of the ring");
    this.#lentFirstSeq = firstSeq;
    return views;
  }

  /** Whether a loan is out. */
  get isLent(): boolean {
    return this.#lentFirstSeq >= 0;
  }

  /** Ends the loan (the send settled): bytes released meanwhile become free. Idempotent. */
  endLend(): void {
    this.#checkNotIterating("end a loan of");
    this.#lentFirstSeq = -1;
    if (this.#deferredBytes > 0) {
      assert(this.#deferredBytes <= this.#usedBytes, "Deferred bytes were accounted as used");
      this.#usedBytes -= this.#deferredBytes;
      this.#headBytes = this.#deferredHeadBytes;
      this.#deferredBytes = 0;
    }
    if (this.#entryCount === 0) this.#empty();
  }

  /**
   * Calls `visit` for every held entry with seq at least `seq`, oldest first, until `visit`
   * returns false (for re-sending after a reconnect within a send window). The entry object
   * is reused and its `data` views the ring: valid only during the call. The buffer must not
   * be changed from inside `visit`.
   *
   * @throws {RangeError} when `seq` is not an integer.
   */
  forEachFrom(seq: number, visit: (entry: CopyBufferEntry) => boolean | void): void {
    this.#checkNotIterating("iterate");
    checkSeq("iterate from", seq);
    this.#iterating = true;
    try {
      for (let position = this.#firstPositionFrom(seq); position < this.#entryCount; position++) {
        const index = this.#indexAt(position);
        const view = this.#view;
        view.seq = this.#seqs[index];
        view.timeUs = this.#timesUs[index];
        view.offsetBytes = this.#offsetsBytes[index];
        view.lengthBytes = this.#lengthsBytes[index];
        view.checksum = this.#checksums[index];
        view.positionBytes = this.#positionsBytes[index];
        if (visit(view) === false) break;
      }
    } finally {
      this.#iterating = false;
    }
  }

  /** Drops every entry (when the splitter falls back to marking mode). Seqs must still grow. */
  clear(): void {
    this.#checkNotIterating("clear");
    if (this.#lentFirstSeq >= 0) {
      // The lent bytes must stay: release everything as acknowledged (their bytes wait for the loan).
      if (this.#entryCount > 0) this.releaseThrough(this.#lastSeq);
      return;
    }
    this.#empty();
  }

  /**
   * Where `lengthBytes` of data would start, or -1 when it does not fit. Prefers the tail;
   * wraps to 0 only when the tail is too short and the span before the head is long enough.
   */
  #place(lengthBytes: number): number {
    if (this.#usedBytes === 0) return 0;
    const head = this.#headBytes;
    const tail = this.#tailBytes;
    if (tail > head) {
      if (lengthBytes <= this.bytesMax - tail) return tail;
      return lengthBytes <= head ? 0 : -1;
    }
    if (tail < head) return lengthBytes <= head - tail ? tail : -1;
    // tail === head with entries held: the ring is full.
    assert(this.#usedBytes === this.bytesMax, "A ring whose tail meets its head is full");
    return -1;
  }

  /** Index in the metadata ring of the entry `position` places after the oldest. */
  #indexAt(position: number): number {
    const index = this.#headIndex + position;
    return index >= this.entryCountMax ? index - this.entryCountMax : index;
  }

  /** Position (from the oldest) of the first entry with seq at least `seq`: a binary search. */
  #firstPositionFrom(seq: number): number {
    let low = 0;
    let high = this.#entryCount;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#seqs[this.#indexAt(middle)] < seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #empty(): void {
    this.#entryCount = 0;
    this.#headIndex = 0;
    if (this.#deferredBytes > 0) return; // the ring's bytes wait for the loan to end
    this.#headBytes = 0;
    this.#tailBytes = 0;
    this.#usedBytes = 0;
  }

  #checkNotIterating(verb: string): void {
    if (this.#iterating) assert(false, `Cannot ${verb} the copy buffer from inside forEachFrom`);
  }
}

function checkSeq(verb: string, seq: number): void {
  if (!Number.isSafeInteger(seq)) throw new RangeError(`Cannot ${verb} seq ${seq}: it must be an integer`);
}

function checkWrite(write: CopyBufferWrite, bytesMax: number): void {
  const { seq, timeUs, offsetBytes, data, checksum } = write;
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new RangeError(`Cannot keep a write with seq ${seq}: it must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(timeUs)) {
    throw new RangeError(`Cannot keep write seq ${seq} with time ${timeUs} µs: it must be an integer`);
  }
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) {
    throw new RangeError(`Cannot keep write seq ${seq} at offset ${offsetBytes}: it must be a non-negative integer`);
  }
  if (data.length === 0 || data.length > bytesMax) {
    throw new RangeError(
      `Cannot keep write seq ${seq} of ${data.length} bytes: it must hold 1 to ${bytesMax} bytes (the buffer's size)`,
    );
  }
  if (checksum !== undefined && (typeof checksum !== "bigint" || checksum < 0n || checksum >= 1n << 64n)) {
    throw new RangeError(`Cannot keep write seq ${seq} with checksum ${checksum}: it must be an unsigned 64-bit bigint`);
  }
}
