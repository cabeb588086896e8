/**
 * The dirty region log (DRL) of one volume on the switch (seed 003 [0045]-[0053], DESIGN.md
 * "Data model"): a bitmap of fixed-size regions of the primary volume. A set bit says "this
 * region may differ from the appliance's copy", so after a crash resync compares only the
 * set regions instead of the whole volume (SPEC.md guarantee 2).
 *
 * The one rule (seed 003 [0050]): a set bit may be stale, a clear bit must not be. Hence:
 * - a write to a region whose bit is not yet known to be durable waits for {@link
 *   DirtyRegionLog.persist} before it is issued to the primary and acknowledged;
 * - bits are cleared only by {@link DirtyRegionLog.reset}, only for regions with no write
 *   in flight to the appliance, and only while resets are enabled (in sync, seed 003 [0051]);
 * - a failed persist leaves every bit set in memory.
 *
 * Memory is fixed at construction: the bitmap, a second bitmap of the bits known durable, a
 * 32-bit in-flight count per region, and one encode buffer for the persisted form. Nothing
 * on the write path allocates or queues: concurrent persists share one pending cell write.
 *
 * Persisted form (little-endian), written whole through a {@link DurableCell}:
 *
 * | offset | size | field             | meaning                                       |
 * | -----: | ---: | ----------------- | --------------------------------------------- |
 * |      0 |    4 | magic u32         | `ADRL` (bytes 0x41 0x44 0x52 0x4c)             |
 * |      4 |    2 | version u16       | 1                                             |
 * |      6 |    2 | reserved u16      | 0                                             |
 * |      8 |    4 | regionBytes u32   | region size, a power of two                   |
 * |     12 |    4 | regionCount u32   | `ceil(sizeBytes / regionBytes)`                |
 * |     16 |    8 | sizeBytes f64     | volume size                                   |
 * |     24 |    8 | generation f64    | counts persisted states; grows by one a write |
 * |     32 |    B | bitmap            | bit `r % 8` of byte `r >> 3` is region r; B = ceil(regionCount / 8); unused high bits 0 |
 * |   32+B |    8 | checksum u64      | XXH64 of bytes 0 .. 32+B                      |
 *
 * @example
 * ```ts
 * import { MemoryDurableCell } from "../io/memory_durable_cell.ts";
 * import { DirtyRegionLog } from "./dirty_region_log.ts";
 *
 * const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes: 1024 ** 3 });
 * if (drl.beginWrite(4096, 8192)) await drl.persist(); // durable before the host is acknowledged
 * // ... write the primary, acknowledge the host, send the copy to the appliance ...
 * drl.endWrite(4096, 8192); // the appliance acknowledged it durably
 * drl.setInSync(true);
 * await drl.reset(); // 1: region 0 is clean again
 * ```
 */
import { assert } from "../core/assert.ts";
import { type Checksum, createChecksum } from "../core/checksum.ts";
import { limits, switchLimits } from "../core/limits.ts";
import type { DurableCell } from "../io/durable_cell.ts";

/** The persisted form's magic, `ADRL` read as a little-endian u32. */
const drlMagic = 0x4c524441;
const drlVersion = 1;
const drlHeaderBytes = 32;
const drlChecksumBytes = 8;

/**
 * A persist of the DRL failed: the bits it carried are still set in memory (setting is
 * always safe) and the next persist writes them again. The cell's error is the `cause`.
 * Also the base class of the open errors below, so one `instanceof` catches every DRL error.
 */
export class DirtyRegionLogError extends Error {
  override name = "DirtyRegionLogError";
}

/**
 * The cell does not hold a valid DRL (bad length, magic, version, checksum, or bits past
 * the last region). Its content is not trusted, and it is never read as clean: recover
 * with {@link DirtyRegionLog.recreateAllDirty} (a full resync) once an operator agrees.
 */
export class DirtyRegionLogCorruptError extends DirtyRegionLogError {
  override name = "DirtyRegionLogCorruptError";
}

/**
 * The cell holds a valid DRL of another geometry (volume size or region size): a
 * configuration mismatch. Its bits cannot be mapped onto this volume's regions.
 */
export class DirtyRegionLogGeometryError extends DirtyRegionLogError {
  override name = "DirtyRegionLogGeometryError";
}

/** The volume geometry a DRL is opened with. */
export interface DirtyRegionLogOptions {
  /** Volume size in bytes: a positive multiple of 512, at most `limits.volumeBytesMax`. */
  sizeBytes: number;
  /**
   * Region size in bytes: a power of two, at least 512, at most
   * `switchLimits.drlRegionBytesMax`. Default `switchLimits.drlRegionBytesDefault` (1 MiB).
   */
  regionBytes?: number;
}

/** Dependencies a DRL can be given (tests pass a shared checksum to skip instantiation). */
export interface DirtyRegionLogDeps {
  checksum?: Checksum;
}

/** The persisted form's length for a region count. */
export function dirtyRegionLogCellBytes(regionCount: number): number {
  return drlHeaderBytes + Math.ceil(regionCount / 8) + drlChecksumBytes;
}

/** See the module doc. */
export class DirtyRegionLog {
  /** Volume size in bytes. */
  readonly sizeBytes: number;
  /** Region size in bytes (a power of two). */
  readonly regionBytes: number;
  /** `ceil(sizeBytes / regionBytes)`; the last region may be partial. */
  readonly regionCount: number;

  readonly #cell: DurableCell;
  readonly #checksum: Checksum;
  /** The bits as they are now (what the next persist writes). */
  readonly #bits: Uint8Array;
  /**
   * The bits set in every state the cell can be in: set in the last write that succeeded
   * and in the write in flight, if any. A bit set here may be acknowledged without a persist.
   */
  readonly #durableBits: Uint8Array;
  /** Writes issued but not yet acknowledged by the appliance, per region. */
  readonly #inFlightCounts: Uint32Array;
  /** The one buffer persisted states are encoded into; untouched while a write is in flight. */
  readonly #encoded: Uint8Array;
  readonly #encodedView: DataView;
  #dirtyCount = 0;
  #generation: number;
  #resetsEnabled = false;
  /** Whether `#bits` changed since the last snapshot was taken (or that snapshot's write failed). */
  #changedSinceSnapshot = false;
  /** The cell write in flight, or null: at most one at a time. */
  #writeInFlight: Promise<void> | null = null;
  /** The callers waiting for the write after the one in flight: one shared promise, not a queue. */
  #nextWrite: { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | null =
    null;

  private constructor(
    cell: DurableCell,
    checksum: Checksum,
    geometry: { sizeBytes: number; regionBytes: number; regionCount: number },
    generation: number,
  ) {
    this.#cell = cell;
    this.#checksum = checksum;
    this.sizeBytes = geometry.sizeBytes;
    this.regionBytes = geometry.regionBytes;
    this.regionCount = geometry.regionCount;
    this.#generation = generation;
    const bitmapBytes = Math.ceil(this.regionCount / 8);
    this.#bits = new Uint8Array(bitmapBytes);
    this.#durableBits = new Uint8Array(bitmapBytes);
    this.#inFlightCounts = new Uint32Array(this.regionCount);
    this.#encoded = new Uint8Array(dirtyRegionLogCellBytes(this.regionCount));
    this.#encodedView = new DataView(this.#encoded.buffer);
    this.#encodedView.setUint32(0, drlMagic, true);
    this.#encodedView.setUint16(4, drlVersion, true);
    this.#encodedView.setUint16(6, 0, true);
    this.#encodedView.setUint32(8, this.regionBytes, true);
    this.#encodedView.setUint32(12, this.regionCount, true);
    this.#encodedView.setFloat64(16, this.sizeBytes, true);
  }

  /**
   * Opens the DRL kept in `cell`: the persisted bits are loaded (after a crash they are the
   * regions resync must compare), or, for an empty cell, every region starts clean. Resets
   * start disabled: call `setInSync(true)` once the volume is known to be in sync.
   *
   * @throws {RangeError} when the geometry is invalid.
   * @throws {DirtyRegionLogError} when the cell cannot be read (the cell's error is the `cause`).
   * @throws {DirtyRegionLogCorruptError} when the cell holds something that is not a valid DRL.
   * @throws {DirtyRegionLogGeometryError} when the cell holds a DRL of another geometry.
   */
  static async open(
    cell: DurableCell,
    options: DirtyRegionLogOptions,
    deps: DirtyRegionLogDeps = {},
  ): Promise<DirtyRegionLog> {
    const geometry = validateGeometry(options);
    const checksum = deps.checksum ?? await createChecksum();
    let stored: Uint8Array | null;
    try {
      stored = await cell.read();
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new DirtyRegionLogError(`Cannot open the dirty region log: reading the cell failed: ${reason}`, { cause });
    }
    if (stored === null) return new DirtyRegionLog(cell, checksum, geometry, 0);
    const decoded = decodeCell(stored, checksum);
    if (
      decoded.sizeBytes !== geometry.sizeBytes || decoded.regionBytes !== geometry.regionBytes ||
      decoded.regionCount !== geometry.regionCount
    ) {
      throw new DirtyRegionLogGeometryError(
        `Cannot open the dirty region log: it was written for a ${decoded.sizeBytes}-byte volume ` +
          `in ${decoded.regionBytes}-byte regions, not a ${geometry.sizeBytes}-byte volume in ` +
          `${geometry.regionBytes}-byte regions`,
      );
    }
    const drl = new DirtyRegionLog(cell, checksum, geometry, decoded.generation);
    drl.#bits.set(decoded.bitmap);
    drl.#durableBits.set(decoded.bitmap);
    drl.#dirtyCount = countBits(decoded.bitmap);
    return drl;
  }

  /**
   * Starts the DRL of a volume the switch protects for the first time, every region clean,
   * persisted before this resolves (so the next start knows the switch has seen it).
   *
   * @throws {RangeError} when the geometry is invalid.
   * @throws {DirtyRegionLogError} when the cell write fails.
   */
  static async createClean(
    cell: DurableCell,
    options: DirtyRegionLogOptions,
    deps: DirtyRegionLogDeps = {},
  ): Promise<DirtyRegionLog> {
    return await DirtyRegionLog.#persistedNew(cell, options, deps, false);
  }

  /**
   * Discards whatever `cell` holds and starts with every region dirty, persisted before
   * this resolves: the way back from a corrupt or mismatched DRL, at the price of a full
   * resync.
   *
   * @throws {RangeError} when the geometry is invalid.
   * @throws {DirtyRegionLogError} when the cell write fails.
   */
  static async recreateAllDirty(
    cell: DurableCell,
    options: DirtyRegionLogOptions,
    deps: DirtyRegionLogDeps = {},
  ): Promise<DirtyRegionLog> {
    return await DirtyRegionLog.#persistedNew(cell, options, deps, true);
  }

  /** A new DRL in `cell`, every region clean or dirty, persisted before this resolves. */
  static async #persistedNew(
    cell: DurableCell,
    options: DirtyRegionLogOptions,
    deps: DirtyRegionLogDeps,
    allDirty: boolean,
  ): Promise<DirtyRegionLog> {
    const geometry = validateGeometry(options);
    const checksum = deps.checksum ?? await createChecksum();
    const drl = new DirtyRegionLog(cell, checksum, geometry, 0);
    if (allDirty) drl.markAllDirty();
    else drl.#changedSinceSnapshot = true;
    await drl.persist();
    return drl;
  }

  /** Regions whose bit is set now (in memory). */
  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  /** Whether `reset` may clear bits (in sync), seed 003 [0051]. */
  get resetsEnabled(): boolean {
    return this.#resetsEnabled;
  }

  /** How many persisted states have been written (the header's generation). */
  get generation(): number {
    return this.#generation;
  }

  /** The region holding byte `offsetBytes`. @throws {RangeError} outside the volume. */
  regionIndexOf(offsetBytes: number): number {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes >= this.sizeBytes) {
      throw new RangeError(`Cannot find the region of byte ${offsetBytes}: the volume has ${this.sizeBytes} bytes`);
    }
    return Math.floor(offsetBytes / this.regionBytes);
  }

  /** Whether the region's bit is set now (in memory). */
  isDirty(regionIndex: number): boolean {
    this.#checkRegionIndex(regionIndex);
    return (this.#bits[regionIndex >>> 3] & (1 << (regionIndex & 7))) !== 0;
  }

  /** Writes begun on the region and not yet ended. */
  inFlightCount(regionIndex: number): number {
    this.#checkRegionIndex(regionIndex);
    return this.#inFlightCounts[regionIndex];
  }

  /**
   * Records a host write about to be issued: counts it in flight in every region it touches
   * and sets their bits. Returns true when any of those bits is not yet known to be durable
   * (it was clean, or a persist that carries it has not succeeded yet); then the caller must
   * `await persist()` before issuing the write to the primary and acknowledging it (seed 003
   * [0049]). Returns false when every bit was already durable: no wait is needed.
   *
   * Every `beginWrite` must be matched by one `endWrite` of the same range, also when the
   * persist fails and the write is refused.
   *
   * @throws {RangeError} when the range is empty or not inside the volume.
   */
  beginWrite(offsetBytes: number, lengthBytes: number): boolean {
    this.#checkRange("begin", offsetBytes, lengthBytes);
    const first = Math.floor(offsetBytes / this.regionBytes);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.regionBytes);
    let mustPersist = false;
    for (let region = first; region <= last; region++) {
      const count = this.#inFlightCounts[region];
      // Messages on this path are built only on failure: it runs twice for every host write.
      if (!(count < 0xffff_ffff)) assert(false, `Region ${region} has too many writes in flight`);
      this.#inFlightCounts[region] = count + 1;
      const byteIndex = region >>> 3;
      const mask = 1 << (region & 7);
      if ((this.#bits[byteIndex] & mask) === 0) {
        this.#bits[byteIndex] |= mask;
        this.#dirtyCount++;
        this.#changedSinceSnapshot = true;
      }
      if ((this.#durableBits[byteIndex] & mask) === 0) mustPersist = true;
    }
    return mustPersist;
  }

  /**
   * Records that the appliance acknowledged the write durably (or that the write was
   * refused): its regions count one write fewer in flight.
   *
   * Bits are not cleared here, only by `reset`: a set bit that is stale costs a resync a
   * little reading but is always safe (seed 003 [0050]), so clearing needs no persist on the
   * write path, and batching clears into resets is what keeps DRL writes rare ([0053]).
   *
   * @throws {RangeError} when the range is empty or not inside the volume.
   */
  endWrite(offsetBytes: number, lengthBytes: number): void {
    this.#checkRange("end", offsetBytes, lengthBytes);
    const first = Math.floor(offsetBytes / this.regionBytes);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.regionBytes);
    for (let region = first; region <= last; region++) {
      if (!(this.#inFlightCounts[region] > 0)) assert(false, `Region ${region} ends a write it did not begin`);
    }
    for (let region = first; region <= last; region++) {
      if ((this.#bits[region >>> 3] & (1 << (region & 7))) === 0) assert(false, `Region ${region} is in flight but clean`);
      this.#inFlightCounts[region]--;
    }
  }

  /**
   * Makes the current bits durable. At most one cell write is in flight: when one is, a
   * caller whose bits it already carries waits for it, and any other caller waits for the
   * next write (one for all of them), started when the current one settles. Resolves at
   * once when the cell already holds the current bits.
   *
   * @throws {DirtyRegionLogError} when the cell write carrying the caller's bits fails (with
   * the cell's error as `cause`); the bits stay set and a later persist retries.
   */
  persist(): Promise<void> {
    if (this.#writeInFlight !== null) {
      if (!this.#changedSinceSnapshot) return this.#writeInFlight;
      if (this.#nextWrite === null) {
        let resolve!: () => void;
        let reject!: (error: unknown) => void;
        const promise = new Promise<void>((resolveNext, rejectNext) => {
          resolve = resolveNext;
          reject = rejectNext;
        });
        this.#nextWrite = { promise, resolve, reject };
      }
      return this.#nextWrite.promise;
    }
    if (!this.#changedSinceSnapshot) return Promise.resolve();
    this.#writeInFlight = this.#writeSnapshot();
    return this.#writeInFlight;
  }

  /**
   * Clears the bit of every region with no write in flight and persists the result (seed
   * 003 [0051]); resolves to how many bits it cleared. While resets are disabled (out of
   * sync) it does nothing and resolves to 0.
   *
   * @throws {DirtyRegionLogError} when the persist fails; the bits are clear in memory but
   * possibly still set in the cell, which is safe.
   */
  async reset(): Promise<number> {
    if (!this.#resetsEnabled) return 0;
    let clearedCount = 0;
    for (let byteIndex = 0; byteIndex < this.#bits.length; byteIndex++) {
      const byte = this.#bits[byteIndex];
      if (byte === 0) continue;
      let kept = byte;
      for (let bit = 0; bit < 8; bit++) {
        const mask = 1 << bit;
        if ((byte & mask) !== 0 && this.#inFlightCounts[byteIndex * 8 + bit] === 0) {
          kept &= ~mask;
          clearedCount++;
        }
      }
      this.#bits[byteIndex] = kept;
    }
    if (clearedCount === 0) return 0;
    this.#dirtyCount -= clearedCount;
    this.#changedSinceSnapshot = true;
    await this.persist();
    return clearedCount;
  }

  /**
   * Enables (`true`, an in-sync marker) or disables (`false`, an out-of-sync marker) resets
   * (seed 003 [0051]). A DRL opens with resets disabled: after a crash its bits must
   * survive until resync has compared their regions.
   */
  setInSync(inSync: boolean): void {
    this.#resetsEnabled = inSync;
  }

  /**
   * Sets every region's bit (in memory; `persist` makes it durable): for a full resync, or
   * when a gap makes the whole volume suspect.
   */
  markAllDirty(): void {
    const fullBytes = this.regionCount >>> 3;
    this.#bits.fill(0xff, 0, fullBytes);
    const tailBits = this.regionCount & 7;
    if (tailBits !== 0) this.#bits[fullBytes] = (1 << tailBits) - 1;
    if (this.#dirtyCount !== this.regionCount) this.#changedSinceSnapshot = true;
    this.#dirtyCount = this.regionCount;
  }

  /**
   * Calls `visit` for every dirty region (in memory), in address order, with the region's
   * byte range (the last region may be shorter than `regionBytes`).
   */
  forEachDirtyRegion(visit: (regionIndex: number, offsetBytes: number, lengthBytes: number) => void): void {
    for (let byteIndex = 0; byteIndex < this.#bits.length; byteIndex++) {
      const byte = this.#bits[byteIndex];
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if ((byte & (1 << bit)) === 0) continue;
        const region = byteIndex * 8 + bit;
        const offsetBytes = region * this.regionBytes;
        visit(region, offsetBytes, Math.min(this.regionBytes, this.sizeBytes - offsetBytes));
      }
    }
  }

  /** Encodes the current bits and writes them; the only caller of `#cell.write`. */
  async #writeSnapshot(): Promise<void> {
    const generation = this.#encodeSnapshot();
    try {
      await this.#cell.write(this.#encoded);
      // The cell now holds exactly the snapshot, whatever changed in memory since.
      this.#durableBits.set(this.#encoded.subarray(drlHeaderBytes, drlHeaderBytes + this.#bits.length));
    } catch (cause) {
      // The snapshot's bits may or may not have landed: `#durableBits` already assumes the
      // worst of both, and the next persist must write again.
      this.#changedSinceSnapshot = true;
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new DirtyRegionLogError(`Cannot persist the dirty region log (generation ${generation}): ${reason}`, {
        cause,
      });
    } finally {
      this.#writeInFlight = null;
      this.#startNextWrite();
    }
  }

  #startNextWrite(): void {
    const next = this.#nextWrite;
    if (next === null) return;
    this.#nextWrite = null;
    this.#writeInFlight = this.#writeSnapshot();
    this.#writeInFlight.then(next.resolve, next.reject);
  }

  /**
   * Fills `#encoded` with the current bits and the next generation; returns the generation.
   * Asserts the DRL's invariant first: every region with a write in flight has its bit set.
   */
  #encodeSnapshot(): number {
    assert(this.#writeInFlight === null, "A DRL snapshot is taken only when no write is in flight");
    this.#checkInFlightRegionsDirty();
    this.#generation++;
    assert(Number.isSafeInteger(this.#generation), "The DRL generation stays a safe integer");
    this.#encodedView.setFloat64(24, this.#generation, true);
    this.#encoded.set(this.#bits, drlHeaderBytes);
    const checksummedBytes = drlHeaderBytes + this.#bits.length;
    this.#encodedView.setBigUint64(
      checksummedBytes,
      this.#checksum.hash64(this.#encoded.subarray(0, checksummedBytes)),
      true,
    );
    // A bit this snapshot clears is no longer durable: the cell may take the snapshot any time.
    for (let byteIndex = 0; byteIndex < this.#bits.length; byteIndex++) {
      this.#durableBits[byteIndex] &= this.#bits[byteIndex];
    }
    this.#changedSinceSnapshot = false;
    return this.#generation;
  }

  #checkInFlightRegionsDirty(): void {
    for (let region = 0; region < this.regionCount; region++) {
      if (this.#inFlightCounts[region] === 0) continue;
      assert(
        (this.#bits[region >>> 3] & (1 << (region & 7))) !== 0,
        `Region ${region} has writes in flight but its bit is clear`,
      );
    }
  }

  #checkRange(verb: string, offsetBytes: number, lengthBytes: number): void {
    if (
      !Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 ||
      lengthBytes <= 0 || offsetBytes + lengthBytes > this.sizeBytes
    ) {
      throw new RangeError(
        `Cannot ${verb} a write of ${lengthBytes} bytes at ${offsetBytes}: it must be non-empty and ` +
          `inside the ${this.sizeBytes}-byte volume`,
      );
    }
  }

  #checkRegionIndex(regionIndex: number): void {
    if (!Number.isSafeInteger(regionIndex) || regionIndex < 0 || regionIndex >= this.regionCount) {
      throw new RangeError(`Cannot use region ${regionIndex}: the volume has ${this.regionCount} regions`);
    }
  }
}

/** When a DRL reset is due; pure, so the caller owns the clock and the timer. */
export interface ResetPolicyOptions {
  /** Reset at least this often while in sync. Default `switchLimits.drlResetIntervalUsDefault`. */
  intervalUs?: number;
  /** Never reset more often than this. Default `switchLimits.drlResetIntervalUsMin`. */
  intervalUsMin?: number;
  /** Reset early when this fraction of the regions is dirty. Default `switchLimits.drlResetDirtyFractionDefault`. */
  dirtyFractionMax?: number;
}

/**
 * The DRL reset policy (seed 003 [0053]): frequent resets shorten resync after a crash but
 * cost latency (more clean regions, so more synchronous DRL writes); rare resets the reverse.
 * A reset is due when some region is dirty, at least `intervalUsMin` has passed since the
 * last one, and either `intervalUs` has passed or the dirty fraction reached
 * `dirtyFractionMax`. A clock that went backwards makes a reset due, so the caller
 * re-anchors instead of waiting out the jump.
 *
 * @example
 * ```ts
 * import { ResetPolicy } from "./dirty_region_log.ts";
 * const policy = new ResetPolicy({ intervalUs: 10_000_000 });
 * policy.isDue({ nowUs: 12_000_000, lastResetUs: 1_000_000, dirtyCount: 3, regionCount: 1024 }); // true
 * ```
 */
export class ResetPolicy {
  readonly intervalUs: number;
  readonly intervalUsMin: number;
  readonly dirtyFractionMax: number;

  /** @throws {RangeError} when an interval is not a positive integer or the fraction is not in (0, 1]. */
  constructor(options: ResetPolicyOptions = {}) {
    this.intervalUs = options.intervalUs ?? switchLimits.drlResetIntervalUsDefault;
    this.intervalUsMin = options.intervalUsMin ??
      Math.min(switchLimits.drlResetIntervalUsMin, this.intervalUs);
    this.dirtyFractionMax = options.dirtyFractionMax ?? switchLimits.drlResetDirtyFractionDefault;
    if (!Number.isSafeInteger(this.intervalUs) || this.intervalUs <= 0) {
      throw new RangeError(`Cannot use reset interval ${this.intervalUs} µs: it must be a positive integer`);
    }
    if (!Number.isSafeInteger(this.intervalUsMin) || this.intervalUsMin < 0 || this.intervalUsMin > this.intervalUs) {
      throw new RangeError(
        `Cannot use minimum reset interval ${this.intervalUsMin} µs: it must be an integer in [0, ${this.intervalUs}]`,
      );
    }
    if (!(this.dirtyFractionMax > 0 && this.dirtyFractionMax <= 1)) {
      throw new RangeError(`Cannot use dirty fraction ${this.dirtyFractionMax}: it must be in (0, 1]`);
    }
  }

  /** Whether a reset is due now. */
  isDue(state: { nowUs: number; lastResetUs: number; dirtyCount: number; regionCount: number }): boolean {
    if (state.dirtyCount === 0) return false;
    const elapsedUs = state.nowUs - state.lastResetUs;
    if (elapsedUs < 0) return true;
    if (elapsedUs < this.intervalUsMin) return false;
    return elapsedUs >= this.intervalUs || state.dirtyCount >= this.dirtyFractionMax * state.regionCount;
  }
}

function validateGeometry(
  options: DirtyRegionLogOptions,
): { sizeBytes: number; regionBytes: number; regionCount: number } {
  const { sizeBytes } = options;
  const regionBytes = options.regionBytes ?? switchLimits.drlRegionBytesDefault;
  if (
    !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % switchLimits.sectorBytes !== 0 ||
    sizeBytes > limits.volumeBytesMax
  ) {
    throw new RangeError(
      `Cannot track volume size ${sizeBytes}: it must be a positive multiple of ${switchLimits.sectorBytes} ` +
        `bytes, at most ${limits.volumeBytesMax}`,
    );
  }
  if (
    !Number.isSafeInteger(regionBytes) || regionBytes < switchLimits.drlRegionBytesMin ||
    regionBytes > switchLimits.drlRegionBytesMax || (regionBytes & (regionBytes - 1)) !== 0
  ) {
    throw new RangeError(
      `Cannot use region size ${regionBytes}: it must be a power of two from ` +
        `${switchLimits.drlRegionBytesMin} to ${switchLimits.drlRegionBytesMax} bytes`,
    );
  }
  const regionCount = Math.ceil(sizeBytes / regionBytes);
  if (regionCount > switchLimits.drlRegionCountMax) {
    throw new RangeError(
      `Cannot split ${sizeBytes} bytes into ${regionBytes}-byte regions: that makes ${regionCount} regions, ` +
        `more than ${switchLimits.drlRegionCountMax}; use larger regions`,
    );
  }
  return { sizeBytes, regionBytes, regionCount };
}

interface DecodedCell {
  regionBytes: number;
  regionCount: number;
  sizeBytes: number;
  generation: number;
  bitmap: Uint8Array;
}

/** Parses and verifies a persisted DRL; throws {@link DirtyRegionLogCorruptError} when invalid. */
function decodeCell(bytes: Uint8Array, checksum: Checksum): DecodedCell {
  const corrupt = (why: string) =>
    new DirtyRegionLogCorruptError(`Cannot open the dirty region log: the cell ${why}`);
  if (bytes.length < drlHeaderBytes + drlChecksumBytes) {
    throw corrupt(`holds ${bytes.length} bytes, fewer than a header and a checksum`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const checksummedBytes = bytes.length - drlChecksumBytes;
  const storedChecksum = view.getBigUint64(checksummedBytes, true);
  if (checksum.hash64(bytes.subarray(0, checksummedBytes)) !== storedChecksum) {
    throw corrupt("fails its checksum");
  }
  const magic = view.getUint32(0, true);
  if (magic !== drlMagic) throw corrupt(`starts with magic 0x${magic.toString(16)}, not a DRL's`);
  const version = view.getUint16(4, true);
  if (version !== drlVersion) throw corrupt(`has version ${version}; this build reads version ${drlVersion}`);
  if (view.getUint16(6, true) !== 0) throw corrupt("has reserved header bits set");
  const regionBytes = view.getUint32(8, true);
  const regionCount = view.getUint32(12, true);
  const sizeBytes = view.getFloat64(16, true);
  const generation = view.getFloat64(24, true);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || !Number.isSafeInteger(generation) || generation < 0) {
    throw corrupt(`has an invalid size (${sizeBytes}) or generation (${generation})`);
  }
  if (regionBytes === 0 || regionCount !== Math.ceil(sizeBytes / regionBytes)) {
    throw corrupt(`claims ${regionCount} regions of ${regionBytes} bytes for ${sizeBytes} bytes`);
  }
  if (bytes.length !== dirtyRegionLogCellBytes(regionCount)) {
    throw corrupt(`holds ${bytes.length} bytes; ${regionCount} regions take ${dirtyRegionLogCellBytes(regionCount)}`);
  }
  const bitmap = bytes.subarray(drlHeaderBytes, checksummedBytes);
  const tailBits = regionCount & 7;
  if (tailBits !== 0 && (bitmap[bitmap.length - 1] >>> tailBits) !== 0) {
    throw corrupt("has bits set past the last region");
  }
  return { regionBytes, regionCount, sizeBytes, generation, bitmap };
}

function countBits(bitmap: Uint8Array): number {
  let count = 0;
  for (let byteIndex = 0; byteIndex < bitmap.length; byteIndex++) {
    let byte = bitmap[byteIndex];
    while (byte !== 0) {
      byte &= byte - 1;
      count++;
    }
  }
  return count;
}
