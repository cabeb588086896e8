/**
 * Proves the hierarchy stays exact across restore markers (seed 003 [0075]): a write index
 * with restore rows, whose deltas are synthesized as the volume does (state before the row vs
 * state at the target, both from scratch), feeds a hierarchy built incrementally; every merged
 * map, point map and prefix overlay equals the map built from scratch over the same rows, and
 * each prefix reads sector by sector like a naive replay in which a restore copies the state
 * at its target. Also: level-0 files keep restore deltas (version 2), files without them stay
 * version 1 and still load, and damaged delta sections are refused.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createChecksum } from "../../src/core/checksum.ts";
import { DeltaMap, HOLE, isZeroAddress } from "../../src/core/delta_map.ts";
import { journalRecordKinds } from "../../src/appliance/journal_record.ts";
import { MapHierarchy } from "../../src/appliance/map_hierarchy.ts";
import { MapStore } from "../../src/appliance/map_store.ts";
import { WriteIndex } from "../../src/appliance/write_index.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";

const SECTORS = 64;
const SECTOR = 512;

type Step = { kind: "write"; sector: number; sectors: number } | { kind: "restore"; pick: number };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("write" as const), sector: fc.nat(SECTORS - 1), sectors: fc.integer({ min: 1, max: 24 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restore" as const), pick: fc.nat() }) },
);

/** What each sector reads as: a journal address or 0 for zeros (the oracle's cells). */
function readsOf(map: DeltaMap): number[] {
  const reads: number[] = [];
  map.resolve(0, SECTORS * SECTOR, (_offsetBytes, lengthBytes, addressBytes) => {
    for (let at = 0; at < lengthBytes; at += SECTOR) {
      reads.push(addressBytes === HOLE || isZeroAddress(addressBytes) ? 0 : addressBytes + at);
    }
  });
  return reads;
}

/** Builds the index as the volume would: each restore's delta from the from-scratch states. */
function buildIndex(steps: readonly Step[]): { index: WriteIndex; replay: number[][] } {
  const index = new WriteIndex();
  // replay[r]: the naive state after row r (cells hold journal addresses, 0 for zeros).
  const replay: number[][] = [];
  let state = new Array<number>(SECTORS).fill(0);
  let addressBytes = 4096;
  steps.forEach((step, row) => {
    const seq = row + 1;
    if (step.kind === "write") {
      const sectors = Math.min(step.sectors, SECTORS - step.sector);
      index.push(journalRecordKinds.write, seq, seq, step.sector * SECTOR, sectors * SECTOR, addressBytes);
      state = state.slice();
      for (let s = 0; s < sectors; s++) state[step.sector + s] = addressBytes + s * SECTOR;
      addressBytes += sectors * SECTOR + 64;
    } else {
      const toSeq = step.pick % seq; // 0 (the base: zeros) .. seq - 1
      index.push(journalRecordKinds.restore, seq, seq, 16, 0, addressBytes);
      addressBytes += 128;
      const current = DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: row });
      const target = DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: toSeq });
      index.setRestoreDelta(row, DeltaMap.restoreDelta(current, target, { seq }));
      state = toSeq === 0 ? new Array<number>(SECTORS).fill(0) : replay[toSeq - 1].slice();
    }
    replay.push(state);
  });
  return { index, replay };
}

describe("map hierarchy across restores", () => {
  it("a hierarchy built incrementally across restores equals one built from scratch, and reads like the replay", () => {
    fc.assert(
      fc.property(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 160, size: "medium" }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 32 }),
        (steps, levelZeroRows, fanOut, pointMapRunsMin) => {
          const { index, replay } = buildIndex(steps);
          const hierarchy = new MapHierarchy({ fanOut, levelsMax: 3, pointMapRunsMin, pointMapGrowthDivisor: 2 });
          for (let from = 0; from + levelZeroRows <= index.count; from += levelZeroRows) {
            const to = from + levelZeroRows;
            const map = DeltaMap.fromWrites(index, { fromIndex: from, toIndex: to });
            for (const key of hierarchy.addLevelZero({ fromIndex: from, toIndex: to, firstSeq: from + 1, lastSeq: to, endAddressBytes: 0, map })) {
              hierarchy.install(key, hierarchy.build(key));
            }
          }
          let span = 1;
          for (let level = 1; level <= 3; level++) {
            span *= fanOut;
            hierarchy.merged[level].forEach((map, j) => {
              const scratch = DeltaMap.fromWrites(index, { fromIndex: j * span * levelZeroRows, toIndex: (j + 1) * span * levelZeroRows });
              expect(map.equals(scratch)).toBe(true);
            });
          }
          for (const point of hierarchy.points) {
            expect(point.map.equals(DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: point.boundary * levelZeroRows }))).toBe(true);
          }
          for (let count = 0; count <= hierarchy.levelZeroCount; count++) {
            const merged = DeltaMap.mergeAll(hierarchy.layersFor(count).reverse());
            expect(merged.equals(DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: count * levelZeroRows }))).toBe(true);
          }
          // Every prefix, cut at any row, reads like the naive replay.
          for (let row = 0; row < index.count; row++) {
            expect(readsOf(DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: row + 1 })), `row ${row}`).toEqual(replay[row]);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("level-0 files with restore deltas", () => {
  async function storeWith(steps: Step[]) {
    const { index } = buildIndex(steps);
    const store = new MemorySegmentStore();
    const maps = new MapStore(store, await createChecksum());
    const levelZero = {
      fromIndex: 0,
      toIndex: index.count,
      firstSeq: 1,
      lastSeq: index.count,
      endAddressBytes: 1 << 20,
      map: DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: index.count }),
    };
    return { index, store, maps, levelZero };
  }

  const steps: Step[] = [
    { kind: "write", sector: 0, sectors: 8 },
    { kind: "write", sector: 4, sectors: 8 },
    { kind: "restore", pick: 1 },
    { kind: "write", sector: 20, sectors: 2 },
    { kind: "restore", pick: 0 },
  ];

  it("round-trips the rows, the map and every restore delta, as version 2", async () => {
    const { index, store, maps, levelZero } = await storeWith(steps);
    await maps.writeLevelZero(0, levelZero, index.slice(0, index.count));
    const header = new Uint8Array(16);
    await store.read(0, 0, header);
    expect(new DataView(header.buffer).getUint32(4, true)).toBe(2);
    const { levelZero: read, rows } = await maps.readLevelZero(0);
    expect(read.map.equals(levelZero.map)).toBe(true);
    expect(rows.restoreDeltas.map((r) => r.index)).toEqual([2, 4]);
    const reloaded = new WriteIndex();
    reloaded.pushSlice(rows);
    for (const row of [2, 4]) expect(reloaded.restoreDeltaOf(row)!.equals(index.restoreDeltaOf(row)!)).toBe(true);
    expect(DeltaMap.fromWrites(reloaded, { fromIndex: 0, toIndex: 5 }).equals(levelZero.map)).toBe(true);
  });

  it("a level-0 file without deltas is version 1, and a restore row in it (journaled before restores took effect) changes nothing", async () => {
    const { index, store, maps, levelZero } = await storeWith(steps);
    await maps.writeLevelZero(0, levelZero, { ...index.slice(0, index.count), restoreDeltas: [] });
    const header = new Uint8Array(16);
    await store.read(0, 0, header);
    expect(new DataView(header.buffer).getUint32(4, true)).toBe(1);
    const { rows } = await maps.readLevelZero(0);
    const reloaded = new WriteIndex();
    reloaded.pushSlice(rows);
    expect(reloaded.restoreDeltaOf(2)!.runCount).toBe(0);
    expect(reloaded.mapRecordsBetween(0, 5).map((r) => r.index)).toEqual([2, 4]);
  });

  it("refuses a delta section that names a row that is not a restore, or leaves bytes over", async () => {
    const checksum = await createChecksum();
    for (const damage of ["row", "trailing"] as const) {
      const { index, store, maps, levelZero } = await storeWith(steps);
      await maps.writeLevelZero(0, levelZero, index.slice(0, index.count));
      const size = await store.sizeOf(0);
      const blob = new Uint8Array(size);
      await store.read(0, 0, blob);
      let body = blob.subarray(0, size - 8);
      const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
      // The first delta's row field sits right after the level-0 map.
      const mapFrom = 48 + 5 * 40 + 8;
      const deltaFrom = mapFrom + DeltaMap.encodedLengthOf(body.subarray(mapFrom));
      if (damage === "row") view.setFloat64(deltaFrom, 1, true);
      else body = Uint8Array.from([...body, 0, 0, 0, 0, 0, 0, 0, 0]);
      const damaged = new Uint8Array(body.length + 8);
      damaged.set(body);
      new DataView(damaged.buffer).setBigUint64(body.length, checksum.hash64(body), true);
      const other = new MemorySegmentStore();
      await other.create(0, damaged.length);
      await other.write(0, 0, damaged);
      await expect(new MapStore(other, checksum).readLevelZero(0), damage).rejects.toThrow(SyntaxError);
    }
  });
});
