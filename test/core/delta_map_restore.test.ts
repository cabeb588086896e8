// Proves the map-level pieces of restore (seed 003 [0075]; DESIGN.md, "Restore"): zero runs,
// restore deltas, map records in DeltaMap.fromWrites, fromPieces and flattenLayers. How:
// fast-check builds full maps (write streams over a 64-sector volume, some carrying zero runs
// from earlier restores) and an oracle of per-sector cells says what each sector reads as
// (a journal address, or zeros); every delta laid over its map must read like its target,
// and be a hole wherever the two already read alike. Maps that must be equal are compared
// array by array (the form is canonical). The codec's version rule is checked case by case.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  DeltaMap,
  HOLE,
  isZeroAddress,
  type MapRecord,
  type WriteColumns,
  ZERO_ADDRESS_BASE_BYTES,
  zeroAddressOf,
} from "../../src/core/delta_map.ts";
import { flattenLayers, resolveLayers } from "../../src/core/layered_lookup.ts";

const SECTOR_BYTES = 512;
const VOLUME_SECTORS = 64;
const VOLUME_BYTES = SECTOR_BYTES * VOLUME_SECTORS;
const NUM_RUNS = 500;

interface Write {
  offsetBytes: number;
  lengthBytes: number;
  addressBytes: number;
  seq: number;
}

/** Journal-ordered writes (addresses and seqs grow) starting at `firstAddressBytes`. */
function writesArbitrary(firstAddressBytes: number, firstSeq: number): fc.Arbitrary<Write[]> {
  return fc.array(
    fc.record({ sector: fc.nat(VOLUME_SECTORS - 1), sectors: fc.integer({ min: 1, max: 16 }) }),
    { maxLength: 24 },
  ).map((steps) => {
    let addressBytes = firstAddressBytes;
    return steps.map((step, i) => {
      const lengthBytes = Math.min(step.sectors, VOLUME_SECTORS - step.sector) * SECTOR_BYTES;
      const write = { offsetBytes: step.sector * SECTOR_BYTES, lengthBytes, addressBytes, seq: firstSeq + i };
      addressBytes += lengthBytes + 64;
      return write;
    });
  });
}

function columnsOf(writes: readonly Write[], mapRecords: readonly MapRecord[] = []): WriteColumns {
  return {
    offsetBytes: Float64Array.from(writes, (write) => write.offsetBytes),
    lengthBytes: Float64Array.from(writes, (write) => write.lengthBytes),
    addressBytes: Float64Array.from(writes, (write) => write.addressBytes),
    seq: Float64Array.from(writes, (write) => write.seq),
    mapRecordsBetween: (fromIndex, toIndex) => mapRecords.filter((r) => r.index >= fromIndex && r.index < toIndex),
  };
}

function mapOf(writes: readonly Write[]): DeltaMap {
  return DeltaMap.fromWrites(columnsOf(writes), { fromIndex: 0, toIndex: writes.length });
}

/** What a sector reads as through a full map: a journal address, or "zeros". */
function readsOf(map: DeltaMap): (number | "zeros")[] {
  const reads: (number | "zeros")[] = [];
  resolveLayers([map], 0, VOLUME_BYTES, (offsetBytes, lengthBytes, addressBytes) => {
    for (let at = 0; at < lengthBytes; at += SECTOR_BYTES) {
      reads.push(addressBytes === HOLE || isZeroAddress(addressBytes) ? "zeros" : addressBytes + at);
    }
    expect(offsetBytes + lengthBytes).toBeLessThanOrEqual(VOLUME_BYTES);
  });
  return reads;
}

/** A full map that may hold zero runs: a stream, restored to a prefix of itself, then more writes. */
const fullMapArbitrary: fc.Arbitrary<DeltaMap> = fc.tuple(writesArbitrary(0, 1), fc.nat(), writesArbitrary(1 << 20, 100))
  .map(([writes, cut, later]) => {
    const current = mapOf(writes);
    const target = mapOf(writes.slice(0, writes.length === 0 ? 0 : cut % writes.length));
    const restored = DeltaMap.overlay(current, DeltaMap.restoreDelta(current, target, { seq: 50 }));
    return DeltaMap.overlay(restored, mapOf(later));
  });

describe("DeltaMap.restoreDelta", () => {
  it("laid over the current map reads as the target, and is a hole wherever they read alike", () => {
    fc.assert(
      fc.property(fullMapArbitrary, fullMapArbitrary, (current, target) => {
        const delta = DeltaMap.restoreDelta(current, target, { seq: 77 });
        delta.check();
        expect(readsOf(DeltaMap.overlay(current, delta))).toEqual(readsOf(target));
        const currentReads = readsOf(current);
        const targetReads = readsOf(target);
        const deltaCells: number[] = [];
        delta.resolve(0, VOLUME_BYTES, (_offsetBytes, lengthBytes, addressBytes) => {
          for (let at = 0; at < lengthBytes; at += SECTOR_BYTES) deltaCells.push(addressBytes);
        });
        for (let sector = 0; sector < VOLUME_SECTORS; sector++) {
          expect(deltaCells[sector] === HOLE, `sector ${sector}`).toBe(currentReads[sector] === targetReads[sector]);
        }
        // Nothing outside the volume: both maps end in a hole there.
        expect(delta.runCount === 0 || delta.startBytes[delta.runCount - 1] <= VOLUME_BYTES).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("a zero run wins over older layers and reads as zeros; a restore to the same state is empty", () => {
    const written = mapOf([{ offsetBytes: 0, lengthBytes: 4096, addressBytes: 8192, seq: 1 }]);
    const delta = DeltaMap.restoreDelta(written, DeltaMap.empty(), { seq: 2 });
    expect(Array.from(delta.startBytes)).toEqual([0, 4096]);
    expect(Array.from(delta.addressBytes)).toEqual([zeroAddressOf(0), HOLE]);
    expect(Array.from(delta.seq)).toEqual([2, -1]);
    expect(delta.mappedBytes()).toBe(0);
    const pieces: number[] = [];
    resolveLayers([delta, written], 1024, 512, (_offsetBytes, _lengthBytes, addressBytes) => pieces.push(addressBytes));
    expect(pieces).toEqual([zeroAddressOf(1024)]);
    expect(DeltaMap.restoreDelta(written, written, { seq: 3 }).runCount).toBe(0);
    // A hole and a zero run read alike: restoring a zeroed map to nothing changes nothing.
    expect(DeltaMap.restoreDelta(DeltaMap.overlay(written, delta), DeltaMap.empty(), { seq: 4 }).runCount).toBe(0);
    expect(() => DeltaMap.restoreDelta(written, written, { seq: -1 })).toThrow(RangeError);
    const far = mapOf([{ offsetBytes: 2 ** 52, lengthBytes: 512, addressBytes: 0, seq: 1 }]);
    expect(() => DeltaMap.restoreDelta(far, DeltaMap.empty(), { seq: 2 })).toThrow(RangeError);
  });
});

describe("DeltaMap.fromWrites with map records", () => {
  it("equals the writes before a record, its map and the writes after, laid over each other", () => {
    fc.assert(
      fc.property(
        writesArbitrary(0, 1),
        fc.array(fc.tuple(fc.nat(), fullMapArbitrary), { maxLength: 3 }),
        fc.nat(),
        (writes, picks, cut) => {
          // Turn some writes into markers that carry a map (restore rows).
          const rows = [...new Set(picks.map(([pick]) => (writes.length === 0 ? -1 : pick % writes.length)))]
            .filter((row) => row >= 0).sort((a, b) => a - b);
          const records: MapRecord[] = rows.map((row, i) => ({ index: row, map: picks[i][1] }));
          const columns = writes.map((write, row) => (rows.includes(row) ? { ...write, lengthBytes: 0 } : write));
          const built = DeltaMap.fromWrites(columnsOf(columns, records), { fromIndex: 0, toIndex: columns.length });
          built.check();
          const layers: DeltaMap[] = [];
          let from = 0;
          for (const record of records) {
            layers.push(mapOf(columns.slice(from, record.index)), record.map);
            from = record.index + 1;
          }
          layers.push(mapOf(columns.slice(from)));
          expect(built.equals(DeltaMap.mergeAll(layers))).toBe(true);
          // Any split of the range overlays to the whole (how the hierarchy merges level-0 maps).
          const split = columns.length === 0 ? 0 : cut % (columns.length + 1);
          const allColumns = columnsOf(columns, records);
          const left = DeltaMap.fromWrites(allColumns, { fromIndex: 0, toIndex: split });
          const right = DeltaMap.fromWrites(allColumns, { fromIndex: split, toIndex: columns.length });
          expect(DeltaMap.overlay(left, right).equals(built)).toBe(true);
          // A seqMax cut leaves out a record above it like a write (seqs grow by one a row).
          if (split > 0) {
            const seqMax = columns[split - 1].seq;
            const cutMap = DeltaMap.fromWrites(allColumns, { fromIndex: 0, toIndex: columns.length, seqMax });
            expect(cutMap.equals(left)).toBe(true);
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it("refuses a journal address that ends past 2^52, where zero addresses begin", () => {
    const columns = columnsOf([{ offsetBytes: 0, lengthBytes: 1024, addressBytes: ZERO_ADDRESS_BASE_BYTES - 512, seq: 1 }]);
    expect(() => DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: 1 })).toThrow(/past 2\^52/);
  });
});

describe("zero runs in the codec", () => {
  function raw(starts: number[], addresses: number[], seqs: number[], version: number): Uint8Array {
    const bytes = new Uint8Array(16 + 24 * starts.length);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0x4d445441, true);
    view.setUint16(4, version, true);
    view.setUint32(8, starts.length, true);
    [starts, addresses, seqs].forEach((column, i) => {
      column.forEach((value, run) => view.setFloat64(16 + 8 * (i * starts.length + run), value, true));
    });
    return bytes;
  }

  it("a map with zero runs encodes as version 2 and decodes to itself; one without stays version 1", () => {
    const zeroed = DeltaMap.fromRuns(
      new Float64Array([0, 512, 4096]),
      new Float64Array([zeroAddressOf(0), 1024, HOLE]),
      new Float64Array([9, 3, -1]),
    );
    const bytes = zeroed.encode();
    expect(new DataView(bytes.buffer).getUint16(4, true)).toBe(2);
    expect(DeltaMap.decode(bytes).equals(zeroed)).toBe(true);
    const plain = DeltaMap.fromRuns(new Float64Array([0, 512]), new Float64Array([1024, HOLE]), new Float64Array([3, -1]));
    expect(new DataView(plain.encode().buffer).getUint16(4, true)).toBe(1);
    expect(DeltaMap.encodedLengthOf(bytes)).toBe(bytes.length);
  });

  it("refuses a version that does not fit the content and zero runs that are not 2^52 + their start", () => {
    const cases: [string, Uint8Array][] = [
      ["version 1 has no zero runs", raw([0, 512], [zeroAddressOf(0), HOLE], [1, -1], 1)],
      ["version 2 is for maps with zero runs", raw([0, 512], [0, HOLE], [1, -1], 2)],
      ["not 2^52 + its start", raw([512, 1024], [zeroAddressOf(0), HOLE], [1, -1], 2)],
      ["past 2^52", raw([0, 1024], [ZERO_ADDRESS_BASE_BYTES - 512, HOLE], [1, -1], 1)],
      ["continue each other", raw([0, 512, 1024], [zeroAddressOf(0), zeroAddressOf(512), HOLE], [1, 1, -1], 2)],
      ["version 3", raw([0, 512], [0, HOLE], [1, -1], 3)],
    ];
    for (const [problem, bytes] of cases) {
      expect(() => DeltaMap.decode(bytes), problem).toThrow(SyntaxError);
      expect(() => DeltaMap.decode(bytes), problem).toThrow(problem);
    }
    expect(() => DeltaMap.encodedLengthOf(new Uint8Array(8))).toThrow(SyntaxError);
  });
});

describe("DeltaMap.fromPieces and flattenLayers", () => {
  it("joins pieces that continue each other and leaves gaps as holes", () => {
    const map = DeltaMap.fromPieces((add) => {
      add(0, 512, 1000, 1);
      add(512, 512, 1512, 1);
      add(2048, 512, HOLE, -1);
      add(4096, 512, zeroAddressOf(4096), 5);
    });
    expect(Array.from(map.startBytes)).toEqual([0, 1024, 4096, 4608]);
    expect(Array.from(map.addressBytes)).toEqual([1000, HOLE, zeroAddressOf(4096), HOLE]);
    expect(DeltaMap.fromPieces(() => {}).runCount).toBe(0);
    expect(() => DeltaMap.fromPieces((add) => {
      add(512, 512, 0, 1);
      add(0, 512, 0, 1);
    })).toThrow(RangeError);
    expect(() => DeltaMap.fromPieces((add) => add(0, 512, -7, 1))).toThrow(RangeError);
  });

  it("flattening a stack on some extents equals the merged stack there, holes elsewhere", () => {
    fc.assert(
      fc.property(
        fc.array(fullMapArbitrary, { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(VOLUME_SECTORS - 1), fc.integer({ min: 1, max: 16 })), { maxLength: 4 }),
        (oldestFirst, picks) => {
          const marks = new Uint8Array(VOLUME_SECTORS);
          for (const [sector, sectors] of picks) marks.fill(1, sector, Math.min(VOLUME_SECTORS, sector + sectors));
          const extents: { offsetBytes: number; lengthBytes: number }[] = [];
          for (let sector = 0; sector < VOLUME_SECTORS; sector++) {
            if (!marks[sector]) continue;
            const last = extents[extents.length - 1];
            if (last !== undefined && last.offsetBytes + last.lengthBytes === sector * SECTOR_BYTES) last.lengthBytes += SECTOR_BYTES;
            else extents.push({ offsetBytes: sector * SECTOR_BYTES, lengthBytes: SECTOR_BYTES });
          }
          const flat = flattenLayers(oldestFirst.slice().reverse(), extents);
          flat.check();
          const merged = DeltaMap.mergeAll(oldestFirst);
          const mask = DeltaMap.fromPieces((add) => {
            for (const extent of extents) merged.resolve(extent.offsetBytes, extent.lengthBytes, add);
          });
          expect(flat.equals(mask)).toBe(true);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
