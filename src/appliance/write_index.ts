/**
 * The write index: one row per journal record (writes, baseline chunks and markers), in
 * journal order, as growable typed-array columns. It is the level below the delta maps:
 * level-0 maps are built from its rows, a point inside a level-0 interval is cut from its
 * rows (per-write granularity), and times resolve to the exact record by binary search over
 * its `timeUs` column (non-decreasing per volume, SPEC "Points in time").
 *
 * Marker rows have `lengthBytes` 0 (so map builders skip them) and keep their payload length
 * in `offsetBytes` (markers have no primary offset), which locates the end of their record.
 *
 * Restore rows (seed 003 [0075]: "from here the state is POINT's") change the state by a map,
 * not an extent: the volume synthesizes that delta when the row becomes durable and hands it
 * to {@link WriteIndex.setRestoreDelta}; map builders then find it through
 * {@link WriteIndex.mapRecordsBetween} (see `DeltaMap.fromWrites`). The columns stay as they
 * are; restores are few, so they live in a short side list.
 *
 * Appliance-side memory: 41 bytes per record, plus 24 bytes per run of each restore delta. It
 * grows with retained history, not with load on the switch's write path.
 */
import { assert } from "../core/assert.ts";
import { DeltaMap, type MapRecord, type WriteColumns } from "../core/delta_map.ts";
import { journalRecordKinds } from "./journal_record.ts";

const noMapRecords: readonly MapRecord[] = Object.freeze([]);

const INITIAL_CAPACITY = 1024;

/** Growable columns of journal records; rows are appended in journal order. */
export class WriteIndex implements WriteColumns {
  offsetBytes = new Float64Array(INITIAL_CAPACITY);
  lengthBytes = new Float64Array(INITIAL_CAPACITY);
  addressBytes = new Float64Array(INITIAL_CAPACITY);
  seq = new Float64Array(INITIAL_CAPACITY);
  timeUs = new Float64Array(INITIAL_CAPACITY);
  kind = new Uint8Array(INITIAL_CAPACITY);
  #count = 0;
  /** Rows of restore markers, ascending. */
  readonly #restoreRows: number[] = [];
  /** The synthesized delta of each restore row (same order), undefined until it is set. */
  readonly #restoreDeltas: (DeltaMap | undefined)[] = [];

  /** Rows appended so far. */
  get count(): number {
    return this.#count;
  }

  /** Appends one row and returns its index. */
  push(
    kind: number,
    seq: number,
    timeUs: number,
    offsetBytes: number,
    lengthBytes: number,
    addressBytes: number,
  ): number {
    if (this.#count === this.seq.length) this.#grow(this.#count * 2);
    const index = this.#count++;
    this.kind[index] = kind;
    this.seq[index] = seq;
    this.timeUs[index] = timeUs;
    this.offsetBytes[index] = offsetBytes;
    this.lengthBytes[index] = lengthBytes;
    this.addressBytes[index] = addressBytes;
    if (kind === journalRecordKinds.restore) {
      this.#restoreRows.push(index);
      this.#restoreDeltas.push(undefined);
    }
    return index;
  }

  /** Drops rows from `count` on (records a crash lost before they became durable). */
  truncate(count: number): void {
    assert(count >= 0 && count <= this.#count, `Cannot truncate the write index to ${count}`);
    this.#count = count;
    const keep = lowerBound(this.#restoreRows, count);
    this.#restoreRows.length = keep;
    this.#restoreDeltas.length = keep;
  }

  /** Sets the synthesized delta of restore row `row` (once, when the row is durable). */
  setRestoreDelta(row: number, delta: DeltaMap): void {
    const at = lowerBound(this.#restoreRows, row);
    assert(this.#restoreRows[at] === row, `Row ${row} is not a restore marker`);
    assert(this.#restoreDeltas[at] === undefined, `Restore row ${row} has its delta already`);
    this.#restoreDeltas[at] = delta;
  }

  /** The delta of restore row `row`, or undefined while it is not synthesized yet. */
  restoreDeltaOf(row: number): DeltaMap | undefined {
    const at = lowerBound(this.#restoreRows, row);
    assert(this.#restoreRows[at] === row, `Row ${row} is not a restore marker`);
    return this.#restoreDeltas[at];
  }

  /**
   * The restore rows in [fromIndex, toIndex) with their deltas, ascending (the map records of
   * `DeltaMap.fromWrites`). Every one must have its delta: maps are built from durable rows.
   */
  mapRecordsBetween(fromIndex: number, toIndex: number): readonly MapRecord[] {
    const rows = this.#restoreRows;
    if (rows.length === 0 || rows[rows.length - 1] < fromIndex) return noMapRecords;
    const records: MapRecord[] = [];
    for (let at = lowerBound(rows, fromIndex); at < rows.length && rows[at] < toIndex; at++) {
      const map = this.#restoreDeltas[at];
      assert(map !== undefined, `Restore row ${rows[at]} is mapped before its delta was synthesized`);
      records.push({ index: rows[at], map });
    }
    return records;
  }

  /**
   * Index of the last row with `seq <= seqMax` among the first `count` rows, or -1.
   * Seqs are non-decreasing by row (baseline rows share seq 0).
   */
  lastIndexAtOrBeforeSeq(seqMax: number, count = this.#count): number {
    return upperBound(this.seq, count, seqMax) - 1;
  }

  /** Index of the last row with `timeUs <= timeUsMax` among the first `count` rows, or -1. */
  lastIndexAtOrBeforeTime(timeUsMax: number, count = this.#count): number {
    return upperBound(this.timeUs, count, timeUsMax) - 1;
  }

  /** Copies rows [fromIndex, toIndex) of every column, for persisting a level-0 map. */
  slice(fromIndex: number, toIndex: number): WriteIndexSlice {
    const restoreDeltas = this.mapRecordsBetween(fromIndex, toIndex)
      .map((record) => ({ index: record.index - fromIndex, map: record.map }));
    return {
      restoreDeltas,
      kind: this.kind.slice(fromIndex, toIndex),
      seq: this.seq.slice(fromIndex, toIndex),
      timeUs: this.timeUs.slice(fromIndex, toIndex),
      offsetBytes: this.offsetBytes.slice(fromIndex, toIndex),
      lengthBytes: this.lengthBytes.slice(fromIndex, toIndex),
      addressBytes: this.addressBytes.slice(fromIndex, toIndex),
    };
  }

  /**
   * Appends the rows of a persisted slice (start-up: reloading level-0 maps). A restore row the
   * slice has no delta for was journaled before restores took effect (a version-1 level-0
   * map, built without one): it changes nothing, so its delta is empty.
   */
  pushSlice(slice: WriteIndexSlice): void {
    const rows = slice.seq.length;
    if (this.#count + rows > this.seq.length) {
      this.#grow(Math.max(this.seq.length * 2, this.#count + rows));
    }
    const at = this.#count;
    this.kind.set(slice.kind, at);
    this.seq.set(slice.seq, at);
    this.timeUs.set(slice.timeUs, at);
    this.offsetBytes.set(slice.offsetBytes, at);
    this.lengthBytes.set(slice.lengthBytes, at);
    this.addressBytes.set(slice.addressBytes, at);
    this.#count += rows;
    let next = 0;
    for (let row = 0; row < rows; row++) {
      if (slice.kind[row] !== journalRecordKinds.restore) continue;
      this.#restoreRows.push(at + row);
      const record = slice.restoreDeltas[next];
      if (record !== undefined && record.index === row) {
        this.#restoreDeltas.push(record.map);
        next++;
      } else {
        this.#restoreDeltas.push(DeltaMap.empty());
      }
    }
    assert(next === slice.restoreDeltas.length, "Every restore delta of a slice belongs to a restore row");
  }

  /** Memory held by the columns and the restore deltas. */
  get byteLength(): number {
    let deltaBytes = 0;
    for (const delta of this.#restoreDeltas) deltaBytes += delta?.byteLength ?? 0;
    return this.seq.length * 41 + deltaBytes;
  }

  #grow(capacity: number): void {
    const grow64 = (old: Float64Array) => {
      const next = new Float64Array(capacity);
      next.set(old.subarray(0, this.#count));
      return next;
    };
    this.offsetBytes = grow64(this.offsetBytes);
    this.lengthBytes = grow64(this.lengthBytes);
    this.addressBytes = grow64(this.addressBytes);
    this.seq = grow64(this.seq);
    this.timeUs = grow64(this.timeUs);
    const kind = new Uint8Array(capacity);
    kind.set(this.kind.subarray(0, this.#count));
    this.kind = kind;
  }
}

/** A copy of some rows of a {@link WriteIndex}. */
export interface WriteIndexSlice {
  /** The deltas of the slice's restore rows, by index within the slice, ascending. */
  readonly restoreDeltas: readonly MapRecord[];
  readonly kind: Uint8Array;
  readonly seq: Float64Array;
  readonly timeUs: Float64Array;
  readonly offsetBytes: Float64Array;
  readonly lengthBytes: Float64Array;
  readonly addressBytes: Float64Array;
}

/** First index of the ascending `values` whose value is >= key. */
function lowerBound(values: readonly number[], key: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle] < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** First index in [0, count) whose value is > key (values non-decreasing). */
function upperBound(values: Float64Array, count: number, key: number): number {
  let low = 0;
  let high = count;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle] <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}
