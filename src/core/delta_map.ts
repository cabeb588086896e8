/**
 * Delta maps: run-encoded, block-ordered maps from a primary volume's byte address space to
 * journal byte addresses (DESIGN.md, "Data model": Delta map, Merge).
 *
 * The encoding follows seed 004 [0035]: every write has an originating entry (where it starts
 * on the primary and where its copy starts in the journal) and a terminating entry (where it
 * ends), and "the initiating entry of the second block would also be the terminating entry for
 * the first block". So a map is one sorted array of breakpoints; each breakpoint starts a run
 * that is either mapped or a hole, and the run ends at the next breakpoint. The last breakpoint
 * is always a hole that extends to infinity (the terminating entry of the last write).
 *
 * Representation: three parallel `Float64Array`s, exactly `runCount` long: `startBytes`
 * (ascending), `addressBytes` (journal address of the byte at `startBytes[i]`, or {@link HOLE})
 * and `seq` (seq of the write that produced the run, -1 for holes). That is 24 bytes per run on
 * disk and in memory (plus at most an eighth of slack a builder may leave in the buffers).
 * Level-0 maps need the seq to cut a point inside their interval (DESIGN.md); merged maps keep
 * it because it costs nothing extra and makes stats and debugging exact. A restore's runs keep
 * the seq of the write whose bytes they map (older than the interval); its zero runs carry the
 * restore marker's seq.
 *
 * Canonical form (checked by {@link DeltaMap.check}, kept by every constructor here): starts
 * strictly ascending non-negative safe integers; the first breakpoint is mapped (a leading
 * hole is implicit); the last is a hole; no two adjacent holes; no two adjacent mapped runs
 * that continue each other (same seq, address advancing with the offset) — those are one run.
 * Because the form is canonical, two maps that resolve alike are equal array by array.
 *
 * A hole in a delta map means "not written in this map's interval" (reads fall through to
 * older maps); a hole in a full point map means "never written" (reads as zeros). The
 * structure is the same. Maps are immutable once built: never write into the arrays.
 *
 * Zero runs: a restore (seed 003 [0075]; DESIGN.md, "Restore") must be able to say "from here
 * these bytes read as zeros" where the restored point never wrote them, and that must win
 * over older layers like any write, which a hole cannot (it falls through). So journal
 * addresses stay below {@link ZERO_ADDRESS_BASE_BYTES} (2^52) and the addresses from there on
 * name zeros: a zero run starting at primary offset p has address `2^52 + p`. Everything that
 * treats addresses as "advancing one for one with the offset" (merge, overlay, diff, the
 * canonical collapse, layered lookup) then handles zero runs with no special case; only
 * readers of journal bytes ({@link isZeroAddress}) and the codec (version 2 marks a map that
 * holds zero runs) know them. No extra column: still 24 bytes per run.
 *
 * @module
 */
import { assert } from "./assert.ts";

/** `addressBytes` of a run that maps nothing (seq of such a run is -1). */
export const HOLE = -1;

/**
 * Journal addresses lie below this; a mapped run whose address is at or above it reads as
 * zeros, and its address is exactly this plus its primary offset (module docs: zero runs).
 * 2^52 bytes of journal (4 PiB) and of primary offsets are the limits this leaves.
 */
export const ZERO_ADDRESS_BASE_BYTES = 2 ** 52;

/**
 * The address a zero run has at primary offset `offsetBytes` (module docs: zero runs).
 *
 * @example
 * ```ts
 * zeroAddressOf(4096); // 2 ** 52 + 4096
 * ```
 */
export function zeroAddressOf(offsetBytes: number): number {
  return ZERO_ADDRESS_BASE_BYTES + offsetBytes;
}

/**
 * True when a mapped address names zeros rather than journal bytes.
 *
 * @example
 * ```ts
 * if (isZeroAddress(addressBytes)) target.fill(0);
 * ```
 */
export function isZeroAddress(addressBytes: number): boolean {
  return addressBytes >= ZERO_ADDRESS_BASE_BYTES;
}

/**
 * Write records in journal order (index order is time order), one column per field, as the
 * map engine reads them from a journal segment. `lengthBytes === 0` marks a marker record.
 */
export interface WriteColumns {
  readonly offsetBytes: Float64Array;
  readonly lengthBytes: Float64Array;
  readonly addressBytes: Float64Array;
  readonly seq: Float64Array;
  /**
   * The records in [fromIndex, toIndex) whose change is a whole map rather than one extent
   * (restore markers: their synthesized delta), ascending by index; absent or empty when
   * there are none. Such a record is a marker row (`lengthBytes === 0`) of the columns.
   */
  mapRecordsBetween?(fromIndex: number, toIndex: number): readonly MapRecord[];
}

/** A record of {@link WriteColumns} whose change is a map (see `mapRecordsBetween`). */
export interface MapRecord {
  /** The record's index in the columns. */
  readonly index: number;
  /**
   * What the record changes: laid over the records before it and under those after it, like
   * a write. Its runs keep their own seqs (a restore's point to the write whose bytes they
   * map; its zero runs carry the restore's seq).
   */
  readonly map: DeltaMap;
}

/** Options of {@link DeltaMap.fromWrites}. */
export interface FromWritesOptions {
  /** First record index to include. */
  readonly fromIndex: number;
  /** One past the last record index to include. */
  readonly toIndex: number;
  /** Records with a larger seq are left out (cuts a point inside the interval). */
  readonly seqMax?: number;
}

/** A byte range of the primary volume. */
export interface Extent {
  offsetBytes: number;
  lengthBytes: number;
}

/**
 * Receives consecutive pieces of a resolved range; `addressBytes` is the journal address of
 * the piece's first byte, or {@link HOLE} (then `seq` is -1).
 */
export type PieceVisitor = (
  offsetBytes: number,
  lengthBytes: number,
  addressBytes: number,
  seq: number,
) => void;

/** Bytes of one run: three float64 fields. */
export const DELTA_MAP_RUN_BYTES = 24;
/** Bytes of the encoded header: magic, version, reserved, run count, reserved. */
export const DELTA_MAP_HEADER_BYTES = 16;
/** Records one {@link DeltaMap.fromWrites} call may take (bounds its scratch memory). */
export const FROM_WRITES_RECORDS_MAX = 2 ** 24;

const MAGIC = 0x4d445441; // "ATDM" read as a little-endian u32
/** The version of a map without zero runs: bytes identical to those before zero runs existed. */
const VERSION_PLAIN = 1;
/** The version of a map that holds zero runs, which a version-1 reader would take for journal bytes. */
const VERSION_ZERO_RUNS = 2;
const RUN_COUNT_MAX = 0xffff_ffff; // the header's u32 field

// Encoding copies the float64 arrays byte for byte, which is little-endian only on a
// little-endian host. Every target we run on (x86-64, arm64) is; fail at load otherwise.
assert(
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1,
  "Delta maps are encoded by copying float64 arrays, which needs a little-endian host",
);

/**
 * A run-encoded map from primary bytes to journal bytes (see the module docs for the form).
 *
 * @example
 * ```ts
 * import { DeltaMap } from "./delta_map.ts";
 * const writes = {
 *   offsetBytes: new Float64Array([0, 512]),
 *   lengthBytes: new Float64Array([4096, 512]),
 *   addressBytes: new Float64Array([100_000, 200_000]),
 *   seq: new Float64Array([1, 2]),
 * };
 * const map = DeltaMap.fromWrites(writes, { fromIndex: 0, toIndex: 2 });
 * map.runCount; // 4: [0,512) seq 1, [512,1024) seq 2, [1024,4096) seq 1, hole from 4096
 * map.resolve(0, 1024, (offsetBytes, lengthBytes, addressBytes, seq) => {});
 * ```
 */
export class DeltaMap {
  /** Breakpoints, strictly ascending; run i covers [startBytes[i], startBytes[i + 1]). */
  readonly startBytes: Float64Array;
  /** Journal address of the byte at `startBytes[i]`, or {@link HOLE}. */
  readonly addressBytes: Float64Array;
  /** Seq of the write that produced run i, or -1 for a hole. */
  readonly seq: Float64Array;
  /** Coarse coverage bitmap for {@link DeltaMap.mayMap}, built on first use (not state). */
  #coverage: Coverage | undefined;

  private constructor(startBytes: Float64Array, addressBytes: Float64Array, seq: Float64Array) {
    assert(
      startBytes.length === addressBytes.length && startBytes.length === seq.length,
      "Delta map columns have one length",
    );
    this.startBytes = startBytes;
    this.addressBytes = addressBytes;
    this.seq = seq;
  }

  /**
   * The map of nothing written.
   *
   * @example
   * ```ts
   * DeltaMap.empty().runCount; // 0
   * ```
   */
  static empty(): DeltaMap {
    return new DeltaMap(new Float64Array(0), new Float64Array(0), new Float64Array(0));
  }

  /**
   * Builds a map from columns that are already canonical (copies them).
   *
   * @throws {RangeError} when the columns break the canonical form.
   * @example
   * ```ts
   * const map = DeltaMap.fromRuns(
   *   new Float64Array([0, 4096]),
   *   new Float64Array([8192, HOLE]),
   *   new Float64Array([7, -1]),
   * );
   * ```
   */
  static fromRuns(startBytes: Float64Array, addressBytes: Float64Array, seq: Float64Array): DeltaMap {
    if (startBytes.length !== addressBytes.length || startBytes.length !== seq.length) {
      throw new RangeError(
        `Cannot build a delta map from columns of lengths ${startBytes.length}, ` +
          `${addressBytes.length} and ${seq.length}: they must be equal`,
      );
    }
    const map = new DeltaMap(startBytes.slice(), addressBytes.slice(), seq.slice());
    const violation = map.findViolation();
    if (violation !== undefined) throw new RangeError(`Cannot build a delta map: ${violation}`);
    return map;
  }

  /**
   * The map of the pieces `emit` passes to `add`, in ascending order and not overlapping
   * (a {@link PieceVisitor}'s calls: offset, length, address or HOLE, seq); what no piece
   * covers is a hole. Pieces that continue each other are joined. This is how a resolution
   * through several layers ({@link resolveLayers}) becomes one map.
   *
   * @throws {RangeError} when the pieces are out of order or overlap, or the result is not a
   * valid map (a bad address or seq).
   * @example
   * ```ts
   * const map = DeltaMap.fromPieces((add) => {
   *   add(0, 4096, 8192, 7);
   *   add(8192, 512, HOLE, -1);
   * });
   * ```
   */
  static fromPieces(emit: (add: PieceVisitor) => void): DeltaMap {
    const builder = new RunBuilder(16, { growable: true });
    let endBytes = 0;
    emit((offsetBytes, lengthBytes, addressBytes, seq) => {
      if (!isSafeCount(offsetBytes) || !isSafeCount(lengthBytes) || offsetBytes < endBytes) {
        throw new RangeError(
          `Cannot add ${lengthBytes} bytes at offset ${offsetBytes} to a map: pieces must be ascending from ${endBytes}`,
        );
      }
      if (lengthBytes === 0) return;
      if (offsetBytes > endBytes && builder.count > 0) builder.push(endBytes, HOLE, -1);
      builder.push(offsetBytes, addressBytes, addressBytes === HOLE ? -1 : seq);
      endBytes = offsetBytes + lengthBytes;
    });
    if (builder.count > 0) builder.push(endBytes, HOLE, -1);
    const [startBytes, addressBytes, seq] = builder.finish();
    const map = new DeltaMap(startBytes, addressBytes, seq);
    const violation = map.findViolation();
    if (violation !== undefined) throw new RangeError(`Cannot build a delta map from pieces: ${violation}`);
    return map;
  }

  /**
   * The map of the write records in [fromIndex, toIndex) of `columns`: the newest record (the
   * highest index) wins where records overlap; markers (`lengthBytes === 0`) and records with
   * a seq above `seqMax` are left out. O(W log W) for W records: the 2W endpoints are sorted,
   * then swept with a max-heap of the records covering the sweep position. A map record
   * (`columns.mapRecordsBetween`: a restore's delta) takes part as what it is, a map laid over
   * the records before it and under those after it.
   *
   * @throws {RangeError} when the index range or a record is out of bounds (a journal address
   * must end at or below {@link ZERO_ADDRESS_BASE_BYTES}).
   * @example
   * ```ts
   * const map = DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: 4096, seqMax: 1200 });
   * ```
   */
  static fromWrites(columns: WriteColumns, options: FromWritesOptions): DeltaMap {
    const { fromIndex, toIndex } = options;
    const seqMax = options.seqMax ?? Infinity;
    checkWriteRange(columns, fromIndex, toIndex);
    if (Number.isNaN(seqMax)) throw new RangeError("Cannot map writes up to seqMax NaN: not a number");
    const mapRecords = columns.mapRecordsBetween?.(fromIndex, toIndex);
    if (mapRecords === undefined || mapRecords.length === 0) {
      return DeltaMap.#fromWriteRange(columns, fromIndex, toIndex, seqMax);
    }
    // A map record (a restore's delta) splits the range: the writes before it, its map, the
    // writes after it, laid over each other oldest first. Its row is a marker, so the sweeps
    // leave it out by themselves.
    const layers: DeltaMap[] = [];
    let rangeFromIndex = fromIndex;
    for (const record of mapRecords) {
      assert(
        record.index >= rangeFromIndex && record.index < toIndex && columns.lengthBytes[record.index] === 0,
        `Map record ${record.index} is a marker inside [${rangeFromIndex}, ${toIndex}), in order`,
      );
      if (columns.seq[record.index] > seqMax) continue;
      layers.push(DeltaMap.#fromWriteRange(columns, rangeFromIndex, record.index, seqMax), record.map);
      rangeFromIndex = record.index + 1;
    }
    layers.push(DeltaMap.#fromWriteRange(columns, rangeFromIndex, toIndex, seqMax));
    return DeltaMap.mergeAll(layers);
  }

  /** {@link fromWrites} over a range without map records (checked by the caller). */
  static #fromWriteRange(columns: WriteColumns, fromIndex: number, toIndex: number, seqMax: number): DeltaMap {
    const recordCount = toIndex - fromIndex;
    // Event codes are (local record index << 1) | isEnd; the limit keeps them in a u32.
    const eventPositions = new Float64Array(2 * recordCount);
    const eventCodes = new Uint32Array(2 * recordCount);
    let eventCount = 0;
    for (let recordIndex = fromIndex; recordIndex < toIndex; recordIndex++) {
      const lengthBytes = columns.lengthBytes[recordIndex];
      if (lengthBytes === 0 || columns.seq[recordIndex] > seqMax) continue;
      checkWrite(columns, recordIndex);
      const offsetBytes = columns.offsetBytes[recordIndex];
      const local = recordIndex - fromIndex;
      eventPositions[eventCount] = offsetBytes;
      eventCodes[eventCount++] = local << 1;
      eventPositions[eventCount] = offsetBytes + lengthBytes;
      eventCodes[eventCount++] = (local << 1) | 1;
    }
    sortEvents(eventPositions, eventCodes, eventCount);
    return DeltaMap.#adopt(sweepEvents(columns, fromIndex, eventPositions, eventCodes, eventCount));
  }

  /**
   * `newer` laid over `older`: newer wins where it is mapped, its holes fall through to older.
   * One linear merge of the two breakpoint arrays; the result is canonical.
   *
   * @example
   * ```ts
   * const merged = DeltaMap.overlay(mapOfFirstHour, mapOfSecondHour);
   * ```
   */
  static overlay(older: DeltaMap, newer: DeltaMap): DeltaMap {
    if (older.startBytes.length === 0) return newer;
    if (newer.startBytes.length === 0) return older;
    const cursor = new OverlayCursor(older, newer);
    cursor.step(Infinity);
    return DeltaMap.#adopt(cursor.builder);
  }

  /**
   * All `maps` (oldest first) laid over each other, merged pairwise in a balanced tree:
   * O(total runs × log k) for k maps.
   *
   * @example
   * ```ts
   * const pointMap = DeltaMap.mergeAll([baseMap, levelOneMap, levelZeroMap]);
   * ```
   */
  static mergeAll(maps: readonly DeltaMap[]): DeltaMap {
    const merge = DeltaMap.startMerge(maps);
    merge.step(Infinity);
    return merge.result;
  }

  /**
   * The merge {@link DeltaMap.mergeAll} does, as work that can stop and resume: each `step`
   * call does at most about `budgetRuns` runs of it (one run of one pairwise overlay each),
   * so a caller can spread a merge of millions of runs over many turns of its event loop
   * instead of holding the loop for the whole of it. The result is the same map.
   *
   * @example
   * ```ts
   * const merge = DeltaMap.startMerge([baseMap, levelOneMap, levelZeroMap]);
   * while (!merge.step(16_384)) await clock.nextTurn(); // other work runs between the steps
   * merge.result.equals(DeltaMap.mergeAll([baseMap, levelOneMap, levelZeroMap])); // true
   * ```
   */
  static startMerge(maps: readonly DeltaMap[]): MapMerge {
    return new BalancedMerge(maps, (builder) => DeltaMap.#adopt(builder));
  }

  /**
   * The extents of primary space where `a` and `b` resolve differently (to different journal
   * addresses, or mapped in one and a hole in the other), merged into maximal extents in
   * ascending order. Restore sends exactly these (DESIGN.md, "Restore"). A zero run and a
   * hole count as different here (in a delta map a hole falls through); to compare full maps
   * by what they read, see {@link DeltaMap.restoreDelta}.
   *
   * @example
   * ```ts
   * const extents = DeltaMap.diff(currentMap, pointMap); // [{ offsetBytes, lengthBytes }, ...]
   * ```
   */
  static diff(a: DeltaMap, b: DeltaMap): Extent[] {
    const extents: Extent[] = [];
    const aStarts = a.startBytes;
    const bStarts = b.startBytes;
    let aNext = 0;
    let bNext = 0;
    let aRun = -1;
    let bRun = -1;
    let differentSinceBytes = -1;
    while (aNext < aStarts.length || bNext < bStarts.length) {
      const aStart = aNext < aStarts.length ? aStarts[aNext] : Infinity;
      const bStart = bNext < bStarts.length ? bStarts[bNext] : Infinity;
      const positionBytes = aStart < bStart ? aStart : bStart;
      if (aStart === positionBytes) aRun = aNext++;
      if (bStart === positionBytes) bRun = bNext++;
      // Both addresses advance one for one with the offset, so whether they differ is the
      // same across the whole stretch up to the next breakpoint; HOLE (-1) never equals an
      // address, so one comparison covers "mapped vs hole" too.
      const different = a.addressAt(aRun, positionBytes) !== b.addressAt(bRun, positionBytes);
      if (different && differentSinceBytes < 0) {
        differentSinceBytes = positionBytes;
      } else if (!different && differentSinceBytes >= 0) {
        extents.push({ offsetBytes: differentSinceBytes, lengthBytes: positionBytes - differentSinceBytes });
        differentSinceBytes = -1;
      }
    }
    // Both maps end in a hole to infinity, so every difference has ended.
    assert(differentSinceBytes < 0, "Delta map diff ends in agreement");
    return extents;
  }

  /**
   * The delta of a restore (seed 003 [0075]; DESIGN.md, "Restore"): what must be laid over a
   * volume whose full map is `current` so that it reads as `target` reads. Where the two read
   * alike it is a hole; where they differ it maps what `target` maps there (with its seq), or
   * zeros ({@link zeroAddressOf}, with `options.seq`) where `target` has a hole — a hole of a
   * full map reads as zeros, and a zero run wins over older layers as a write would. Holes
   * and zero runs read alike, so a zero run laid over a hole is left out. One linear walk of
   * both breakpoint arrays.
   *
   * Both maps may be restricted to the same extents (holes elsewhere): outside them they agree,
   * so the delta is a hole there too.
   *
   * @throws {RangeError} when `options.seq` is not a non-negative integer, or either map
   * reaches past primary offset 2^52 (zero addresses would not be exact there).
   * @example
   * ```ts
   * const delta = DeltaMap.restoreDelta(mapOfNow, mapOfPoint, { seq: restoreSeq });
   * DeltaMap.overlay(mapOfNow, delta); // reads as mapOfPoint
   * ```
   */
  static restoreDelta(current: DeltaMap, target: DeltaMap, options: { readonly seq: number }): DeltaMap {
    const zeroSeq = options.seq;
    if (!isCount(zeroSeq)) throw new RangeError(`Cannot build a restore delta with seq ${zeroSeq}: not a non-negative integer`);
    const currentStarts = current.startBytes;
    const targetStarts = target.startBytes;
    for (const starts of [currentStarts, targetStarts]) {
      const lastBytes = starts.length === 0 ? 0 : starts[starts.length - 1];
      if (lastBytes > ZERO_ADDRESS_BASE_BYTES) {
        throw new RangeError(`Cannot build a restore delta of a map that reaches ${lastBytes}: past 2^52`);
      }
    }
    const builder = new RunBuilder(currentStarts.length + targetStarts.length);
    let currentNext = 0;
    let targetNext = 0;
    let currentRun = -1;
    let targetRun = -1;
    while (currentNext < currentStarts.length || targetNext < targetStarts.length) {
      const currentStart = currentNext < currentStarts.length ? currentStarts[currentNext] : Infinity;
      const targetStart = targetNext < targetStarts.length ? targetStarts[targetNext] : Infinity;
      const positionBytes = currentStart < targetStart ? currentStart : targetStart;
      if (currentStart === positionBytes) currentRun = currentNext++;
      if (targetStart === positionBytes) targetRun = targetNext++;
      // As in diff: both sides advance one for one with the offset (a hole read as zeros does
      // too), so one comparison decides the whole stretch to the next breakpoint.
      if (current.readAddressAt(currentRun, positionBytes) === target.readAddressAt(targetRun, positionBytes)) {
        builder.push(positionBytes, HOLE, -1);
      } else if (targetRun >= 0 && target.addressBytes[targetRun] !== HOLE) {
        builder.pushRunOf(target, targetRun, positionBytes);
      } else {
        builder.push(positionBytes, zeroAddressOf(positionBytes), zeroSeq);
      }
    }
    return DeltaMap.#adopt(builder);
  }

  /**
   * Decodes {@link DeltaMap.encode}'s bytes, validating all of them.
   *
   * @throws {SyntaxError} when the bytes are not a whole, intact, canonical delta map.
   * @example
   * ```ts
   * const map = DeltaMap.decode(await readMapFile());
   * ```
   */
  static decode(bytes: Uint8Array): DeltaMap {
    const { runCount, version } = decodeHeader(bytes);
    // Copy into a fresh, aligned buffer: `bytes` may sit at any offset, and the map must not
    // alias the caller's buffer.
    const body = new Uint8Array(DELTA_MAP_RUN_BYTES * runCount);
    body.set(bytes.subarray(DELTA_MAP_HEADER_BYTES));
    const map = new DeltaMap(
      new Float64Array(body.buffer, 0, runCount),
      new Float64Array(body.buffer, 8 * runCount, runCount),
      new Float64Array(body.buffer, 16 * runCount, runCount),
    );
    const violation = map.findViolation();
    if (violation !== undefined) throw new SyntaxError(`Cannot decode delta map: ${violation}`);
    // The version is a function of the content, so that one map has one encoding.
    const zeroRun = map.firstZeroRun();
    if (version === VERSION_PLAIN && zeroRun >= 0) {
      throw new SyntaxError(`Cannot decode delta map: version ${version} has no zero runs, but run ${zeroRun} is one`);
    }
    if (version === VERSION_ZERO_RUNS && zeroRun < 0) {
      throw new SyntaxError(`Cannot decode delta map: version ${version} is for maps with zero runs, and it has none`);
    }
    return map;
  }

  /**
   * Bytes of the encoded map that `bytes` begins with (header and runs), read from its header,
   * so a container can hold several maps one after another.
   *
   * @throws {SyntaxError} when `bytes` does not begin with a whole delta map header.
   * @example
   * ```ts
   * const first = DeltaMap.decode(bytes.subarray(0, DeltaMap.encodedLengthOf(bytes)));
   * ```
   */
  static encodedLengthOf(bytes: Uint8Array): number {
    if (bytes.length < DELTA_MAP_HEADER_BYTES) {
      throw new SyntaxError(
        `Cannot decode delta map: ${bytes.length} bytes is shorter than its ${DELTA_MAP_HEADER_BYTES}-byte header`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return DELTA_MAP_HEADER_BYTES + DELTA_MAP_RUN_BYTES * view.getUint32(8, true);
  }

  /** Number of breakpoints (entries); the map's size is this times 24 bytes. */
  get runCount(): number {
    return this.startBytes.length;
  }

  /** Bytes the runs take in memory (and, plus the header, on disk). */
  get byteLength(): number {
    return DELTA_MAP_RUN_BYTES * this.startBytes.length;
  }

  /**
   * Index of the run containing `offsetBytes` (binary search), or -1 before the first
   * breakpoint. Offsets past the last breakpoint land in the final hole.
   *
   * @example
   * ```ts
   * const run = map.findRun(1 << 20);
   * const mapped = run >= 0 && map.addressBytes[run] !== HOLE;
   * ```
   */
  findRun(offsetBytes: number): number {
    const starts = this.startBytes;
    let remaining = starts.length;
    if (remaining === 0 || starts[0] > offsetBytes) return -1;
    // Invariant: starts[run] <= offsetBytes, and the answer lies in [run, run + remaining).
    // The select in the loop has no data-dependent branch, which measured ~35% faster than
    // the textbook loop on random lookups (the read path does one per layer).
    let run = 0;
    while (remaining > 1) {
      const half = remaining >>> 1;
      run = starts[run + half] <= offsetBytes ? run + half : run;
      remaining -= half;
    }
    return run;
  }

  /**
   * False when [offsetBytes, offsetBytes + lengthBytes) is certainly all hole in this map;
   * true when it may map something. O(1) for small ranges: a bitmap of fixed-size chunks that
   * hold a mapped byte, at most 8 chunks per run (so at most one byte per run of memory), is
   * built on the first call. It lets a read fall through a sparse layer (a level-0 map of a
   * few thousand writes over a large volume) without a binary search.
   *
   * @example
   * ```ts
   * if (!levelZeroMap.mayMap(offsetBytes, 4096)) {
   *   // skip this layer: every byte falls through
   * }
   * ```
   */
  mayMap(offsetBytes: number, lengthBytes: number): boolean {
    const coverage = this.#coverage ??= buildCoverage(this);
    if (lengthBytes <= 0) return false;
    const firstChunk = Math.floor(offsetBytes * coverage.chunksPerByte);
    if (firstChunk >= coverage.chunkCount) return false;
    const lastChunk = Math.min(
      Math.floor((offsetBytes + lengthBytes - 1) * coverage.chunksPerByte),
      coverage.chunkCount - 1,
    );
    // A long range is answered "maybe" rather than with a long scan: the bound keeps the
    // call O(1), and a binary search costs less than scanning many chunks anyway.
    if (lastChunk - firstChunk >= COVERAGE_SCAN_CHUNKS_MAX) return true;
    const bits = coverage.bits;
    for (let chunk = firstChunk; chunk <= lastChunk; chunk++) {
      if ((bits[chunk >>> 3] & (1 << (chunk & 7))) !== 0) return true;
    }
    return false;
  }

  /**
   * Visits the consecutive pieces covering exactly [offsetBytes, offsetBytes + lengthBytes) in
   * ascending order, each with the journal address of its own first byte (or HOLE). Allocates
   * nothing.
   *
   * @throws {RangeError} when the range is not within [0, 2^53).
   * @example
   * ```ts
   * map.resolve(0, 65536, (offsetBytes, lengthBytes, addressBytes) => {
   *   if (addressBytes === HOLE) zeroFill(offsetBytes, lengthBytes);
   *   else copyFromJournal(addressBytes, offsetBytes, lengthBytes);
   * });
   * ```
   */
  resolve(offsetBytes: number, lengthBytes: number, visit: PieceVisitor): void {
    checkRange(offsetBytes, lengthBytes);
    const starts = this.startBytes;
    const endBytes = offsetBytes + lengthBytes;
    let run = this.findRun(offsetBytes);
    let positionBytes = offsetBytes;
    while (positionBytes < endBytes) {
      const runEndBytes = run + 1 < starts.length ? starts[run + 1] : Infinity;
      const pieceEndBytes = runEndBytes < endBytes ? runEndBytes : endBytes;
      visit(
        positionBytes,
        pieceEndBytes - positionBytes,
        this.addressAt(run, positionBytes),
        run < 0 ? -1 : this.seq[run],
      );
      positionBytes = pieceEndBytes;
      run++;
    }
  }

  /**
   * Visits every finite run in ascending order, holes between mapped runs included (with
   * HOLE); the implicit leading hole and the final hole to infinity are not visited.
   *
   * @example
   * ```ts
   * map.forEachRun((offsetBytes, lengthBytes, addressBytes, seq) => {
   *   if (addressBytes !== HOLE) liveBytes += lengthBytes;
   * });
   * ```
   */
  forEachRun(visit: PieceVisitor): void {
    const starts = this.startBytes;
    for (let run = 0; run + 1 < starts.length; run++) {
      visit(starts[run], starts[run + 1] - starts[run], this.addressBytes[run], this.seq[run]);
    }
  }

  /**
   * Total bytes of the runs mapped to the journal (the journal bytes this map keeps alive);
   * zero runs keep nothing alive and are not counted.
   *
   * @example
   * ```ts
   * const liveBytes = pointMap.mappedBytes();
   * ```
   */
  mappedBytes(): number {
    const starts = this.startBytes;
    let totalBytes = 0;
    for (let run = 0; run + 1 < starts.length; run++) {
      const addressBytes = this.addressBytes[run];
      if (addressBytes !== HOLE && !isZeroAddress(addressBytes)) totalBytes += starts[run + 1] - starts[run];
    }
    return totalBytes;
  }

  /** Index of the first zero run, or -1 when the map has none. */
  firstZeroRun(): number {
    const addresses = this.addressBytes;
    for (let run = 0; run < addresses.length; run++) {
      if (addresses[run] !== HOLE && isZeroAddress(addresses[run])) return run;
    }
    return -1;
  }

  /**
   * Whether both maps resolve alike everywhere (seq included). Canonical form makes this a
   * comparison of the arrays.
   *
   * @example
   * ```ts
   * DeltaMap.overlay(a, DeltaMap.empty()).equals(a); // true
   * ```
   */
  equals(other: DeltaMap): boolean {
    return sameValues(this.startBytes, other.startBytes) &&
      sameValues(this.addressBytes, other.addressBytes) &&
      sameValues(this.seq, other.seq);
  }

  /**
   * Asserts the canonical form (module docs). Always on: used before every encode and by the
   * tests after every build.
   *
   * @example
   * ```ts
   * DeltaMap.overlay(a, b).check();
   * ```
   */
  check(): void {
    const violation = this.findViolation();
    if (violation !== undefined) assert(false, `Delta map is not canonical: ${violation}`);
  }

  /**
   * The compact binary form: a 16-byte header (magic "ATDM", u16 version — 1, or 2 when the
   * map holds zero runs, so a reader that predates them refuses it —, u16 zero, u32 run
   * count, u32 zero), then the starts, addresses and seqs as float64 little-endian: 16 + 24 ×
   * runCount bytes, the body 8-byte aligned. No checksum here: the container (the map store's
   * blob) carries one over these bytes, and checking twice would only cost time. Decode still
   * validates every field and the canonical form, so damage that a checksum would miss cannot
   * yield a broken map — at worst a different valid one.
   *
   * @example
   * ```ts
   * const copy = DeltaMap.decode(map.encode());
   * ```
   */
  encode(): Uint8Array {
    this.check();
    const runCount = this.startBytes.length;
    assert(runCount <= RUN_COUNT_MAX, "The header's u32 holds the run count");
    const bytes = new Uint8Array(DELTA_MAP_HEADER_BYTES + DELTA_MAP_RUN_BYTES * runCount);
    bytes.set(float64Bytes(this.startBytes), DELTA_MAP_HEADER_BYTES);
    bytes.set(float64Bytes(this.addressBytes), DELTA_MAP_HEADER_BYTES + 8 * runCount);
    bytes.set(float64Bytes(this.seq), DELTA_MAP_HEADER_BYTES + 16 * runCount);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint16(4, this.firstZeroRun() < 0 ? VERSION_PLAIN : VERSION_ZERO_RUNS, true);
    view.setUint16(6, 0, true);
    view.setUint32(8, runCount, true);
    view.setUint32(12, 0, true);
    return bytes;
  }

  /** The builder keeps the form canonical by construction, so its runs are not rechecked. */
  static #adopt(builder: RunBuilder): DeltaMap {
    const [startBytes, addressBytes, seq] = builder.finish();
    return new DeltaMap(startBytes, addressBytes, seq);
  }

  /** Journal address of `positionBytes`, which must lie in `run` (-1: the leading hole). */
  private addressAt(run: number, positionBytes: number): number {
    if (run < 0) return HOLE;
    const addressBytes = this.addressBytes[run];
    return addressBytes === HOLE ? HOLE : addressBytes + (positionBytes - this.startBytes[run]);
  }

  /** What `positionBytes` reads as in a full map: its address, a hole read as zeros. */
  private readAddressAt(run: number, positionBytes: number): number {
    const addressBytes = this.addressAt(run, positionBytes);
    return addressBytes === HOLE ? zeroAddressOf(positionBytes) : addressBytes;
  }

  /** What breaks the canonical form, in a sentence, or undefined when nothing does. */
  private findViolation(): string | undefined {
    const starts = this.startBytes;
    const addresses = this.addressBytes;
    const seqs = this.seq;
    const runCount = starts.length;
    if (runCount === 0) return undefined;
    if (addresses[0] === HOLE) return "run 0 is a hole (a leading hole must stay implicit)";
    if (addresses[runCount - 1] !== HOLE) {
      return `last run ${runCount - 1} is mapped (the final run must be a hole to infinity)`;
    }
    // Starts first, so a bad start is reported as such rather than as a bad run length.
    for (let run = 0; run < runCount; run++) {
      const problem = startProblem(starts, run);
      if (problem !== Problem.none) return describeProblem(problem, this, run);
    }
    for (let run = 0; run < runCount; run++) {
      const problem = runProblem(starts, addresses, seqs, run);
      if (problem !== Problem.none) return describeProblem(problem, this, run);
    }
    return undefined;
  }
}

/**
 * The canonical-form rules a run can break. The checks return these codes and only the
 * reporting builds a sentence: on Node 20, building template strings in the checking
 * functions, even on paths never taken, made check() five times slower (measured).
 */
const Problem = {
  none: 0,
  startNotCount: 1,
  startNotAfter: 2,
  holeSeq: 3,
  addressNotCount: 4,
  seqNotCount: 5,
  addressPastMax: 6,
  adjacentHoles: 7,
  continues: 8,
  journalPastMax: 9,
  zeroNotAligned: 10,
} as const;
type Problem = (typeof Problem)[keyof typeof Problem];

/** Run `run` starts at a non-negative integer, after its predecessor. */
function startProblem(starts: Float64Array, run: number): Problem {
  const startBytes = starts[run];
  if (!isCount(startBytes)) return Problem.startNotCount;
  if (run > 0 && !(startBytes > starts[run - 1])) return Problem.startNotAfter;
  return Problem.none;
}

/** The rules on run `run`'s address and seq, alone and next to its predecessor. */
function runProblem(starts: Float64Array, addresses: Float64Array, seqs: Float64Array, run: number): Problem {
  const addressBytes = addresses[run];
  const seq = seqs[run];
  if (addressBytes === HOLE) {
    if (seq !== -1) return Problem.holeSeq;
  } else {
    if (!isCount(addressBytes)) return Problem.addressNotCount;
    if (!isCount(seq)) return Problem.seqNotCount;
    // The last run is a hole, so a mapped run always has a successor.
    const endAddressBytes = addressBytes + (starts[run + 1] - starts[run]);
    if (!(endAddressBytes <= Number.MAX_SAFE_INTEGER)) return Problem.addressPastMax;
    if (addressBytes < ZERO_ADDRESS_BASE_BYTES) {
      if (endAddressBytes > ZERO_ADDRESS_BASE_BYTES) return Problem.journalPastMax;
    } else if (addressBytes !== zeroAddressOf(starts[run])) {
      return Problem.zeroNotAligned;
    }
  }
  if (run === 0) return Problem.none;
  const previousAddressBytes = addresses[run - 1];
  if (addressBytes === HOLE) return previousAddressBytes === HOLE ? Problem.adjacentHoles : Problem.none;
  const continues = previousAddressBytes !== HOLE && seqs[run - 1] === seq &&
    previousAddressBytes + (starts[run] - starts[run - 1]) === addressBytes;
  return continues ? Problem.continues : Problem.none;
}

function describeProblem(problem: Problem, map: DeltaMap, run: number): string {
  const startBytes = map.startBytes[run];
  const addressBytes = map.addressBytes[run];
  const seq = map.seq[run];
  switch (problem) {
    case Problem.none:
      return "no problem";
    case Problem.startNotCount:
      return `run ${run} starts at ${startBytes}, not a non-negative integer`;
    case Problem.startNotAfter:
      return `run ${run} starts at ${startBytes}, not after run ${run - 1} at ${map.startBytes[run - 1]}`;
    case Problem.holeSeq:
      return `hole ${run} has seq ${seq}, not -1`;
    case Problem.addressNotCount:
      return `run ${run} has address ${addressBytes}, not a non-negative integer or -1`;
    case Problem.seqNotCount:
      return `run ${run} has seq ${seq}, not a non-negative integer`;
    case Problem.addressPastMax:
      return `run ${run} maps past the largest exact address (${
        addressBytes + (map.startBytes[run + 1] - startBytes)
      })`;
    case Problem.adjacentHoles:
      return `runs ${run - 1} and ${run} are adjacent holes`;
    case Problem.continues:
      return `runs ${run - 1} and ${run} continue each other (seq ${seq}) and must be one run`;
    case Problem.journalPastMax:
      return `run ${run} maps journal bytes past 2^52, where zero addresses begin`;
    case Problem.zeroNotAligned:
      return `zero run ${run} has address ${addressBytes}, not 2^52 + its start ${startBytes}`;
  }
}

/** A non-negative safe integer that is not -0 (-0 would encode to different bytes). */
function isCount(value: number): boolean {
  // `1 / value` is -Infinity for -0 and Infinity for +0.
  return Number.isSafeInteger(value) && value >= 0 && (value !== 0 || 1 / value > 0);
}

/**
 * Appends runs in ascending order and keeps them canonical as it goes: a hole after a hole,
 * a leading hole, and a run that continues the previous one are dropped (seed 004 [0035]: one
 * entry both terminates a run and originates the next).
 */
class RunBuilder {
  #startBytes: Float64Array;
  #addressBytes: Float64Array;
  #seq: Float64Array;
  #count = 0;
  /** Whether the buffers may grow (pieces of unknown number); else the capacity is a bound. */
  readonly #growable: boolean;

  constructor(capacity: number, options: { growable?: boolean } = {}) {
    this.#startBytes = new Float64Array(capacity);
    this.#addressBytes = new Float64Array(capacity);
    this.#seq = new Float64Array(capacity);
    this.#growable = options.growable ?? false;
  }

  /** Runs pushed so far. */
  get count(): number {
    return this.#count;
  }

  push(startBytes: number, addressBytes: number, seq: number): void {
    const last = this.#count - 1;
    if (last >= 0) {
      assert(startBytes > this.#startBytes[last], "Runs are pushed in ascending order");
      const lastAddressBytes = this.#addressBytes[last];
      if (addressBytes === HOLE) {
        if (lastAddressBytes === HOLE) return;
      } else if (
        lastAddressBytes !== HOLE && this.#seq[last] === seq &&
        lastAddressBytes + (startBytes - this.#startBytes[last]) === addressBytes
      ) {
        return;
      }
    } else if (addressBytes === HOLE) {
      return;
    }
    if (this.#count === this.#startBytes.length) this.#grow();
    // `+ 0` turns a -0 from the inputs into +0, so equal maps encode to equal bytes.
    this.#startBytes[this.#count] = startBytes + 0;
    this.#addressBytes[this.#count] = addressBytes + 0;
    this.#seq[this.#count] = seq + 0;
    this.#count++;
  }

  #grow(): void {
    assert(this.#growable, "Run builder capacity suffices");
    const capacity = Math.max(16, 2 * this.#startBytes.length);
    const grow = (column: Float64Array) => {
      const next = new Float64Array(capacity);
      next.set(column);
      return next;
    };
    this.#startBytes = grow(this.#startBytes);
    this.#addressBytes = grow(this.#addressBytes);
    this.#seq = grow(this.#seq);
  }

  /** Pushes run `run` of `map` from `positionBytes` on (inside that run). */
  pushRunOf(map: DeltaMap, run: number, positionBytes: number): void {
    const addressBytes = map.addressBytes[run];
    if (addressBytes === HOLE) {
      this.push(positionBytes, HOLE, -1);
    } else {
      this.push(positionBytes, addressBytes + (positionBytes - map.startBytes[run]), map.seq[run]);
    }
  }

  /**
   * The runs pushed, as exact-length arrays. When at most an eighth of the capacity went
   * unused they are views on the builder's buffers (copying 24 bytes a run costs more than
   * the merge loop saves, measured on 1M-run overlays); otherwise copies, so a map never
   * holds more than 27 bytes a run.
   */
  finish(): [startBytes: Float64Array, addressBytes: Float64Array, seq: Float64Array] {
    const count = this.#count;
    assert(count === 0 || this.#addressBytes[count - 1] === HOLE, "A map ends in a hole");
    const capacity = this.#startBytes.length;
    const take = capacity - count <= capacity / 8
      ? (column: Float64Array) => column.subarray(0, count)
      : (column: Float64Array) => column.slice(0, count);
    return [take(this.#startBytes), take(this.#addressBytes), take(this.#seq)];
  }
}

/** A merge in progress, from {@link DeltaMap.startMerge}. */
export interface MapMerge {
  /** Does at most about `budgetRuns` runs of the merge; true once {@link result} is ready. */
  step(budgetRuns: number): boolean;
  /** The merged map; read it only after `step` returned true. */
  readonly result: DeltaMap;
}

/**
 * One {@link DeltaMap.overlay} in progress: the linear merge of the two breakpoint arrays,
 * with its cursors kept between `step` calls. Both maps must hold runs.
 */
class OverlayCursor {
  readonly builder: RunBuilder;
  readonly #older: DeltaMap;
  readonly #newer: DeltaMap;
  #olderNext = 0;
  #newerNext = 0;
  #olderRun = -1;
  #newerRun = -1;

  constructor(older: DeltaMap, newer: DeltaMap) {
    this.#older = older;
    this.#newer = newer;
    this.builder = new RunBuilder(older.startBytes.length + newer.startBytes.length);
  }

  /** Merges at most `budgetRuns` breakpoints; returns how many it merged (fewer: done). */
  step(budgetRuns: number): number {
    const older = this.#older;
    const newer = this.#newer;
    const builder = this.builder;
    const olderStarts = older.startBytes;
    const newerStarts = newer.startBytes;
    const newerAddresses = newer.addressBytes;
    const olderCount = olderStarts.length;
    const newerCount = newerStarts.length;
    let olderNext = this.#olderNext;
    let newerNext = this.#newerNext;
    let olderRun = this.#olderRun;
    let newerRun = this.#newerRun;
    let steps = 0;
    while (steps < budgetRuns && (olderNext < olderCount || newerNext < newerCount)) {
      steps++;
      const olderStart = olderNext < olderCount ? olderStarts[olderNext] : Infinity;
      const newerStart = newerNext < newerCount ? newerStarts[newerNext] : Infinity;
      const positionBytes = olderStart < newerStart ? olderStart : newerStart;
      if (olderStart === positionBytes) olderRun = olderNext++;
      if (newerStart === positionBytes) newerRun = newerNext++;
      if (newerRun >= 0 && newerAddresses[newerRun] !== HOLE) {
        builder.pushRunOf(newer, newerRun, positionBytes);
        // Older breakpoints under a mapped newer run cannot show through: skip them here
        // instead of pushing runs the builder would collapse again.
        const newerEnd = newerNext < newerCount ? newerStarts[newerNext] : Infinity;
        while (olderNext < olderCount && olderStarts[olderNext] < newerEnd) olderRun = olderNext++;
      } else if (olderRun >= 0) {
        builder.pushRunOf(older, olderRun, positionBytes);
      } else {
        builder.push(positionBytes, HOLE, -1);
      }
    }
    this.#olderNext = olderNext;
    this.#newerNext = newerNext;
    this.#olderRun = olderRun;
    this.#newerRun = newerRun;
    return steps;
  }
}

/**
 * {@link DeltaMap.mergeAll}'s balanced tree of pairwise overlays, one overlay at a time and
 * each in steps: the maps of the current round, the results of the next, and the overlay in
 * progress. `adopt` turns a finished overlay's builder into a map (DeltaMap's own).
 */
class BalancedMerge implements MapMerge {
  readonly #adopt: (builder: RunBuilder) => DeltaMap;
  #round: DeltaMap[];
  #next: DeltaMap[] = [];
  /** Index in `#round` of the older map of the pair being merged. */
  #pair = 0;
  #cursor: OverlayCursor | null = null;
  #result: DeltaMap | null = null;

  constructor(maps: readonly DeltaMap[], adopt: (builder: RunBuilder) => DeltaMap) {
    this.#adopt = adopt;
    this.#round = maps.slice();
    if (maps.length === 0) this.#result = DeltaMap.empty();
    else if (maps.length === 1) this.#result = maps[0];
  }

  get result(): DeltaMap {
    assert(this.#result !== null, "A merge's result is read once its steps are done");
    return this.#result;
  }

  step(budgetRuns: number): boolean {
    let budget = budgetRuns;
    while (this.#result === null && budget > 0) {
      if (this.#pair + 1 >= this.#round.length) {
        // The round is done: an odd map out goes up as it is.
        if (this.#pair < this.#round.length) this.#next.push(this.#round[this.#pair]);
        this.#round = this.#next;
        this.#next = [];
        this.#pair = 0;
        if (this.#round.length === 1) this.#result = this.#round[0];
        continue;
      }
      const older = this.#round[this.#pair];
      const newer = this.#round[this.#pair + 1];
      if (older.runCount === 0 || newer.runCount === 0) {
        this.#next.push(older.runCount === 0 ? newer : older);
        this.#pair += 2;
        continue;
      }
      this.#cursor ??= new OverlayCursor(older, newer);
      const steps = this.#cursor.step(budget);
      budget -= steps;
      if (budget > 0 || steps === 0) {
        // It stopped short of its budget (or had nothing left): the overlay is complete.
        this.#next.push(this.#adopt(this.#cursor.builder));
        this.#cursor = null;
        this.#pair += 2;
      }
    }
    return this.#result !== null;
  }
}

/** Which chunks of primary space hold a mapped byte (see {@link DeltaMap.mayMap}). */
interface Coverage {
  /** 2^-chunkShift: multiplying by a power of two is exact, unlike shifting past 2^32. */
  readonly chunksPerByte: number;
  /** Chunks from 0 up to the last breakpoint; beyond it everything is the final hole. */
  readonly chunkCount: number;
  readonly bits: Uint8Array;
}

/** Chunks a {@link DeltaMap.mayMap} call scans at most before it answers "maybe". */
const COVERAGE_SCAN_CHUNKS_MAX = 16;
/** Smallest coverage chunk: 4 KiB, the usual read size. */
const COVERAGE_CHUNK_SHIFT_MIN = 12;
/** Coverage bits per run at most (8: one byte of bitmap per 24-byte run). */
const COVERAGE_BITS_PER_RUN_MAX = 8;

function buildCoverage(map: DeltaMap): Coverage {
  const starts = map.startBytes;
  const runCount = starts.length;
  const spanBytes = runCount === 0 ? 0 : starts[runCount - 1];
  let chunkShift = COVERAGE_CHUNK_SHIFT_MIN;
  while (spanBytes / 2 ** chunkShift > COVERAGE_BITS_PER_RUN_MAX * runCount) chunkShift++;
  const chunksPerByte = 2 ** -chunkShift;
  const chunkCount = Math.ceil(spanBytes * chunksPerByte);
  const bits = new Uint8Array(Math.ceil(chunkCount / 8));
  for (let run = 0; run + 1 < runCount; run++) {
    if (map.addressBytes[run] === HOLE) continue;
    const lastChunk = Math.floor((starts[run + 1] - 1) * chunksPerByte);
    for (let chunk = Math.floor(starts[run] * chunksPerByte); chunk <= lastChunk; chunk++) {
      bits[chunk >>> 3] |= 1 << (chunk & 7);
    }
  }
  return { chunksPerByte, chunkCount, bits };
}

/** Checks the record range of {@link DeltaMap.fromWrites} once, at the boundary. */
function checkWriteRange(columns: WriteColumns, fromIndex: number, toIndex: number): void {
  const recordCount = columns.offsetBytes.length;
  if (
    columns.lengthBytes.length !== recordCount || columns.addressBytes.length !== recordCount ||
    columns.seq.length !== recordCount
  ) {
    throw new RangeError(
      `Cannot map write columns of lengths ${recordCount}, ${columns.lengthBytes.length}, ` +
        `${columns.addressBytes.length} and ${columns.seq.length}: they must be equal`,
    );
  }
  if (
    !Number.isSafeInteger(fromIndex) || !Number.isSafeInteger(toIndex) || fromIndex < 0 ||
    fromIndex > toIndex || toIndex > recordCount
  ) {
    throw new RangeError(
      `Cannot map records [${fromIndex}, ${toIndex}) of ${recordCount}: not a range inside them`,
    );
  }
  if (toIndex - fromIndex > FROM_WRITES_RECORDS_MAX) {
    throw new RangeError(
      `Cannot map ${toIndex - fromIndex} records at once: at most ${FROM_WRITES_RECORDS_MAX}`,
    );
  }
}

/** Checks one write record (not a marker) before it enters a map. */
function checkWrite(columns: WriteColumns, recordIndex: number): void {
  const offsetBytes = columns.offsetBytes[recordIndex];
  const lengthBytes = columns.lengthBytes[recordIndex];
  const addressBytes = columns.addressBytes[recordIndex];
  const valid = isSafeCount(offsetBytes) && isSafeCount(lengthBytes) && isSafeCount(addressBytes) &&
    isSafeCount(columns.seq[recordIndex]) && offsetBytes + lengthBytes <= Number.MAX_SAFE_INTEGER &&
    addressBytes + lengthBytes <= ZERO_ADDRESS_BASE_BYTES;
  // The message is built elsewhere: see Problem for why hot checks hold no template strings.
  if (!valid) rejectWrite(columns, recordIndex);
}

function rejectWrite(columns: WriteColumns, recordIndex: number): never {
  const offsetBytes = columns.offsetBytes[recordIndex];
  const lengthBytes = columns.lengthBytes[recordIndex];
  const addressBytes = columns.addressBytes[recordIndex];
  const seq = columns.seq[recordIndex];
  const problem = !isSafeCount(offsetBytes)
    ? `offset ${offsetBytes} is not a non-negative integer`
    : !isSafeCount(lengthBytes)
    ? `length ${lengthBytes} is not a non-negative integer`
    : !isSafeCount(addressBytes)
    ? `journal address ${addressBytes} is not a non-negative integer`
    : !isSafeCount(seq)
    ? `seq ${seq} is not a non-negative integer`
    : !(offsetBytes + lengthBytes <= Number.MAX_SAFE_INTEGER)
    ? "it ends past 2^53 on the primary"
    : "it ends past 2^52 in the journal (zero addresses begin there)";
  throw new RangeError(`Cannot map write record ${recordIndex}: ${problem}`);
}

function isSafeCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/** Checks a range to resolve: both ends within [0, 2^53]. */
function checkRange(offsetBytes: number, lengthBytes: number): void {
  if (
    !isSafeCount(offsetBytes) || !isSafeCount(lengthBytes) ||
    !(offsetBytes + lengthBytes <= Number.MAX_SAFE_INTEGER)
  ) {
    throw new RangeError(
      `Cannot resolve ${lengthBytes} bytes at offset ${offsetBytes}: not a range of non-negative integers below 2^53`,
    );
  }
}

/**
 * Sorts the first `count` events by position (codes move with them). A bottom-up merge sort
 * over typed arrays: O(n log n) in every case, and no comparator call per comparison, which
 * is what makes `TypedArray.prototype.sort` with a comparator several times slower.
 */
function sortEvents(positions: Float64Array, codes: Uint32Array, count: number): void {
  const blockLength = 32;
  for (let blockStart = 0; blockStart < count; blockStart += blockLength) {
    insertionSort(positions, codes, blockStart, Math.min(blockStart + blockLength, count));
  }
  if (count <= blockLength) return;
  let fromPositions = positions;
  let fromCodes = codes;
  let toPositions: Float64Array = new Float64Array(count);
  let toCodes: Uint32Array = new Uint32Array(count);
  for (let width = blockLength; width < count; width *= 2) {
    for (let left = 0; left < count; left += 2 * width) {
      const middle = Math.min(left + width, count);
      const right = Math.min(left + 2 * width, count);
      mergeSorted(fromPositions, fromCodes, toPositions, toCodes, [left, middle, right]);
    }
    [fromPositions, toPositions] = [toPositions, fromPositions];
    [fromCodes, toCodes] = [toCodes, fromCodes];
  }
  if (fromPositions !== positions) {
    positions.set(fromPositions.subarray(0, count));
    codes.set(fromCodes.subarray(0, count));
  }
}

function insertionSort(positions: Float64Array, codes: Uint32Array, begin: number, end: number): void {
  for (let index = begin + 1; index < end; index++) {
    const position = positions[index];
    const code = codes[index];
    let hole = index;
    while (hole > begin && positions[hole - 1] > position) {
      positions[hole] = positions[hole - 1];
      codes[hole] = codes[hole - 1];
      hole--;
    }
    positions[hole] = position;
    codes[hole] = code;
  }
}

/** Merges sorted [left, middle) and [middle, right) of `from*` into the same slots of `to*`. */
function mergeSorted(
  fromPositions: Float64Array,
  fromCodes: Uint32Array,
  toPositions: Float64Array,
  toCodes: Uint32Array,
  [left, middle, right]: [number, number, number],
): void {
  let leftNext = left;
  let rightNext = middle;
  for (let out = left; out < right; out++) {
    const takeLeft = rightNext >= right ||
      (leftNext < middle && fromPositions[leftNext] <= fromPositions[rightNext]);
    const from = takeLeft ? leftNext++ : rightNext++;
    toPositions[out] = fromPositions[from];
    toCodes[out] = fromCodes[from];
  }
}

/**
 * Sweeps the sorted endpoints: at each distinct position the newest record covering it (the
 * top of a max-heap of local record indices, ended records removed lazily) starts the next
 * run, or a hole when none covers it. The builder collapses a record's pieces back into one
 * run where an older record began or ended underneath it.
 */
function sweepEvents(
  columns: WriteColumns,
  fromIndex: number,
  positions: Float64Array,
  codes: Uint32Array,
  eventCount: number,
): RunBuilder {
  const recordCount = eventCount / 2;
  const heap = new Int32Array(recordCount);
  let heapSize = 0;
  // Indexed by local record index, which spans the whole range, markers included.
  const active = new Uint8Array(positions.length / 2);
  const builder = new RunBuilder(eventCount);
  let event = 0;
  while (event < eventCount) {
    const positionBytes = positions[event];
    do {
      const code = codes[event];
      const local = code >>> 1;
      if ((code & 1) === 1) {
        active[local] = 0;
      } else {
        active[local] = 1;
        heapSize = heapPush(heap, heapSize, local);
      }
      event++;
    } while (event < eventCount && positions[event] === positionBytes);
    while (heapSize > 0 && active[heap[0]] === 0) heapSize = heapPop(heap, heapSize);
    if (heapSize === 0) {
      builder.push(positionBytes, HOLE, -1);
    } else {
      const recordIndex = fromIndex + heap[0];
      builder.push(
        positionBytes,
        columns.addressBytes[recordIndex] + (positionBytes - columns.offsetBytes[recordIndex]),
        columns.seq[recordIndex],
      );
    }
  }
  assert(heapSize === 0, "Every record ended by the last endpoint");
  return builder;
}

/** Adds `value` to the max-heap of `size` entries; returns the new size. */
function heapPush(heap: Int32Array, size: number, value: number): number {
  let child = size;
  while (child > 0) {
    const parent = (child - 1) >> 1;
    if (heap[parent] >= value) break;
    heap[child] = heap[parent];
    child = parent;
  }
  heap[child] = value;
  return size + 1;
}

/** Removes the top of the max-heap of `size` entries; returns the new size. */
function heapPop(heap: Int32Array, size: number): number {
  const newSize = size - 1;
  const last = heap[newSize];
  let parent = 0;
  for (;;) {
    let child = 2 * parent + 1;
    if (child >= newSize) break;
    if (child + 1 < newSize && heap[child + 1] > heap[child]) child++;
    if (heap[child] <= last) break;
    heap[parent] = heap[child];
    parent = child;
  }
  heap[parent] = last;
  return newSize;
}

/** Validates the header and total length; returns the run count and version. */
function decodeHeader(bytes: Uint8Array): { runCount: number; version: number } {
  if (bytes.length < DELTA_MAP_HEADER_BYTES) {
    throw new SyntaxError(
      `Cannot decode delta map: ${bytes.length} bytes is shorter than its ${DELTA_MAP_HEADER_BYTES}-byte header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC) {
    throw new SyntaxError(`Cannot decode delta map: magic ${hex32(magic)} is not ${hex32(MAGIC)}`);
  }
  const version = view.getUint16(4, true);
  if (version !== VERSION_PLAIN && version !== VERSION_ZERO_RUNS) {
    throw new SyntaxError(`Cannot decode delta map: version ${version} is not ${VERSION_PLAIN} or ${VERSION_ZERO_RUNS}`);
  }
  const reserved = view.getUint16(6, true);
  if (reserved !== 0) {
    throw new SyntaxError(`Cannot decode delta map: reserved field is ${reserved}, not 0`);
  }
  const runCount = view.getUint32(8, true);
  const reservedWord = view.getUint32(12, true);
  if (reservedWord !== 0) {
    throw new SyntaxError(`Cannot decode delta map: reserved word is ${reservedWord}, not 0`);
  }
  const expectedBytes = DELTA_MAP_HEADER_BYTES + DELTA_MAP_RUN_BYTES * runCount;
  if (bytes.length !== expectedBytes) {
    throw new SyntaxError(
      `Cannot decode delta map: ${runCount} runs take ${expectedBytes} bytes, got ${bytes.length}`,
    );
  }
  return { runCount, version };
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

function float64Bytes(values: Float64Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Equal element by element, -0 apart from +0 (the bytes would differ). */
function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) {
    const x = a[index];
    const y = b[index];
    // NaN never occurs in a checked map; 1 / x tells -0 from +0.
    if (x !== y || (x === 0 && 1 / x !== 1 / y)) return false;
  }
  return true;
}
