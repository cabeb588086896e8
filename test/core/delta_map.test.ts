// Proves that DeltaMap is an exact, canonical encoding of "newest write wins" (seed 004
// [0035]-[0042]). How: fast-check generates journal-ordered write streams (markers included)
// over a 64-sector volume, sometimes placed high in the address space, and every map built
// from them is compared sector by sector with an oracle that replays the writes into an array
// of cells. Because the form is canonical, maps that must be equal (overlay vs one build,
// mergeAll of any split, a seqMax cut vs the prefix) are compared array by array. Every map
// produced passes check(). The codec is fuzzed: every truncation, extensions and random byte
// mutations must throw a SyntaxError or decode to exactly the map those bytes spell.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DeltaMap, type Extent, HOLE, type WriteColumns } from "../../src/core/delta_map.ts";

const SECTOR_BYTES = 512;
const VOLUME_SECTORS = 64;
const VOLUME_BYTES = SECTOR_BYTES * VOLUME_SECTORS;
const NUM_RUNS = 1000;

interface Write {
  offsetBytes: number;
  lengthBytes: number;
  addressBytes: number;
  seq: number;
}

interface Stream {
  baseBytes: number;
  writes: Write[];
}

/** A journal-ordered stream: addresses and seqs grow with the index, as in the journal. */
const streamArbitrary: fc.Arbitrary<Stream> = fc.record({
  baseBytes: fc.constantFrom(0, 0, SECTOR_BYTES * 1000, 2 ** 40),
  firstSeq: fc.constantFrom(0, 1, 1_000_000),
  firstAddressBytes: fc.constantFrom(0, 4096, 2 ** 45),
  steps: fc.array(
    fc.record({
      sector: fc.integer({ min: 0, max: VOLUME_SECTORS - 1 }),
      // 0 sectors makes a marker; long writes make older runs split and collapse.
      sectors: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: VOLUME_SECTORS })),
      gapBytes: fc.constantFrom(0, 0, 64, 4096),
      seqStep: fc.constantFrom(1, 1, 2),
    }),
    { maxLength: 40 },
  ),
}).map(({ baseBytes, firstSeq, firstAddressBytes, steps }) => {
  let addressBytes = firstAddressBytes;
  let seq = firstSeq;
  const writes = steps.map((step) => {
    const lengthBytes = Math.min(step.sectors, VOLUME_SECTORS - step.sector) * SECTOR_BYTES;
    addressBytes += step.gapBytes;
    const write = { offsetBytes: baseBytes + step.sector * SECTOR_BYTES, lengthBytes, addressBytes, seq };
    addressBytes += lengthBytes;
    seq += step.seqStep;
    return write;
  });
  return { baseBytes, writes };
});

function columnsOf(writes: readonly Write[]): WriteColumns {
  return {
    offsetBytes: Float64Array.from(writes, (write) => write.offsetBytes),
    lengthBytes: Float64Array.from(writes, (write) => write.lengthBytes),
    addressBytes: Float64Array.from(writes, (write) => write.addressBytes),
    seq: Float64Array.from(writes, (write) => write.seq),
  };
}

function mapOf(writes: readonly Write[], seqMax?: number): DeltaMap {
  const map = DeltaMap.fromWrites(columnsOf(writes), { fromIndex: 0, toIndex: writes.length, seqMax });
  map.check();
  return map;
}

interface Cell {
  addressBytes: number;
  seq: number;
}

/** The oracle: replays writes one at a time into per-sector cells (newest wins). */
function replay(stream: Stream, writes: readonly Write[] = stream.writes, seqMax = Infinity): Cell[] {
  const cells: Cell[] = Array.from({ length: VOLUME_SECTORS }, () => ({ addressBytes: HOLE, seq: -1 }));
  for (const write of writes) {
    if (write.lengthBytes === 0 || write.seq > seqMax) continue;
    const firstSector = (write.offsetBytes - stream.baseBytes) / SECTOR_BYTES;
    for (let sector = 0; sector < write.lengthBytes / SECTOR_BYTES; sector++) {
      cells[firstSector + sector] = { addressBytes: write.addressBytes + sector * SECTOR_BYTES, seq: write.seq };
    }
  }
  return cells;
}

interface Piece {
  offsetBytes: number;
  lengthBytes: number;
  addressBytes: number;
  seq: number;
}

/** Resolves a range and checks the pieces tile it exactly, in ascending order. */
function piecesOf(map: DeltaMap, offsetBytes: number, lengthBytes: number): Piece[] {
  const pieces: Piece[] = [];
  let expectedOffsetBytes = offsetBytes;
  map.resolve(offsetBytes, lengthBytes, (pieceOffsetBytes, pieceLengthBytes, addressBytes, seq) => {
    expect(pieceOffsetBytes).toBe(expectedOffsetBytes);
    expect(pieceLengthBytes).toBeGreaterThan(0);
    if (addressBytes === HOLE) expect(seq).toBe(-1);
    expectedOffsetBytes += pieceLengthBytes;
    pieces.push({ offsetBytes: pieceOffsetBytes, lengthBytes: pieceLengthBytes, addressBytes, seq });
  });
  expect(expectedOffsetBytes).toBe(offsetBytes + lengthBytes);
  return pieces;
}

/** The map's cells over the volume, read through resolve; outside the volume must be holes. */
function cellsOf(map: DeltaMap, baseBytes: number): Cell[] {
  const cells: Cell[] = [];
  for (const piece of piecesOf(map, baseBytes, VOLUME_BYTES)) {
    for (let at = 0; at < piece.lengthBytes; at += SECTOR_BYTES) {
      const addressBytes = piece.addressBytes === HOLE ? HOLE : piece.addressBytes + at;
      cells.push({ addressBytes, seq: piece.seq });
    }
  }
  const outside = [...piecesOf(map, 0, baseBytes), ...piecesOf(map, baseBytes + VOLUME_BYTES, 1 << 20)];
  for (const piece of outside) expect(piece.addressBytes).toBe(HOLE);
  return cells;
}

function arraysOf(map: DeltaMap): { startBytes: number[]; addressBytes: number[]; seq: number[] } {
  return {
    startBytes: Array.from(map.startBytes),
    addressBytes: Array.from(map.addressBytes),
    seq: Array.from(map.seq),
  };
}

function expectSameMap(actual: DeltaMap, expected: DeltaMap): void {
  actual.check();
  expect(arraysOf(actual)).toEqual(arraysOf(expected));
  expect(actual.equals(expected)).toBe(true);
}

/** Splits `length` items at sorted random cut points. */
const splitArbitrary = (stream: Stream) =>
  fc.array(fc.integer({ min: 0, max: stream.writes.length }), { maxLength: 6 }).map((cuts) => {
    const sorted = [0, ...cuts.sort((a, b) => a - b), stream.writes.length];
    return sorted.slice(1).map((end, index) => stream.writes.slice(sorted[index], end));
  });

/** Bytes of a map with the given columns, bypassing the encoder's check (for bad input). */
function rawBytes(startBytes: number[], addressBytes: number[], seq: number[]): Uint8Array {
  const runCount = startBytes.length;
  const bytes = new Uint8Array(16 + 24 * runCount);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x4d445441, true);
  view.setUint16(4, 1, true);
  view.setUint32(8, runCount, true);
  [startBytes, addressBytes, seq].forEach((column, columnIndex) => {
    column.forEach((value, run) => view.setFloat64(16 + 8 * (columnIndex * runCount + run), value, true));
  });
  return bytes;
}

describe("DeltaMap.fromWrites", () => {
  it("resolves every sector like replaying the writes one at a time", () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        expect(cellsOf(mapOf(stream.writes), stream.baseBytes)).toEqual(replay(stream));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("builds the seed's Figure 2 example: an originating and a terminating entry per write", () => {
    // seed 004 [0035]: where a write is followed by a consecutive one, the second's
    // originating entry is the first's terminating entry. Different seqs keep both runs.
    const map = mapOf([
      { offsetBytes: 100 * 512, lengthBytes: 20 * 512, addressBytes: 0, seq: 1 },
      { offsetBytes: 120 * 512, lengthBytes: 10 * 512, addressBytes: 20 * 512, seq: 2 },
    ]);
    expect(arraysOf(map)).toEqual({
      startBytes: [100 * 512, 120 * 512, 130 * 512],
      addressBytes: [0, 20 * 512, HOLE],
      seq: [1, 2, -1],
    });
  });

  it("collapses the pieces of a write that an older write's edges cut back into one run", () => {
    const map = mapOf([
      { offsetBytes: 4096, lengthBytes: 4096, addressBytes: 0, seq: 1 },
      { offsetBytes: 0, lengthBytes: 16384, addressBytes: 8192, seq: 2 },
    ]);
    expect(arraysOf(map)).toEqual({ startBytes: [0, 16384], addressBytes: [8192, HOLE], seq: [2, -1] });
  });

  it("leaves out markers, records above seqMax and records outside the index range", () => {
    fc.assert(
      fc.property(
        streamArbitrary.chain((stream) =>
          fc.tuple(
            fc.constant(stream),
            fc.integer({ min: 0, max: stream.writes.length }),
            fc.integer({ min: 0, max: stream.writes.length }),
            fc.integer({ min: -1, max: 1_000_100 }),
          )
        ),
        ([stream, first, second, seqMax]) => {
          const [fromIndex, toIndex] = first <= second ? [first, second] : [second, first];
          const map = DeltaMap.fromWrites(columnsOf(stream.writes), { fromIndex, toIndex, seqMax });
          map.check();
          const expected = stream.writes.slice(fromIndex, toIndex).filter((write) => write.seq <= seqMax);
          expectSameMap(map, mapOf(expected));
          expect(cellsOf(map, stream.baseBytes)).toEqual(replay(stream, expected));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it("cut at a seqMax equals the map of the prefix up to that seq", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), (stream, pick) => {
        const cutIndex = stream.writes.length === 0 ? 0 : pick % (stream.writes.length + 1);
        const seqMax = cutIndex === 0 ? -1 : stream.writes[cutIndex - 1].seq;
        expectSameMap(mapOf(stream.writes, seqMax), mapOf(stream.writes.slice(0, cutIndex)));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("rejects malformed records and index ranges with a RangeError", () => {
    const good: Write = { offsetBytes: 0, lengthBytes: 512, addressBytes: 0, seq: 1 };
    const bad: Partial<Write>[] = [
      { offsetBytes: -512 },
      { offsetBytes: 0.5 },
      { lengthBytes: -512 },
      { lengthBytes: Number.NaN },
      { addressBytes: -1 },
      { seq: -1 },
      { seq: Number.NaN },
      { offsetBytes: 2 ** 53 - 256 },
      { addressBytes: 2 ** 53 - 256 },
    ];
    for (const change of bad) {
      const columns = columnsOf([good, { ...good, ...change }]);
      expect(() => DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: 2 }), JSON.stringify(change))
        .toThrow(RangeError);
    }
    const columns = columnsOf([good]);
    expect(() => DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: 2 })).toThrow(RangeError);
    expect(() => DeltaMap.fromWrites(columns, { fromIndex: 1, toIndex: 0 })).toThrow(RangeError);
    expect(() => DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: 1, seqMax: Number.NaN })).toThrow(RangeError);
    expect(() => DeltaMap.fromWrites({ ...columns, seq: new Float64Array(0) }, { fromIndex: 0, toIndex: 1 }))
      .toThrow(RangeError);
    // A marker's fields are not addresses, so they are not checked.
    const marker = columnsOf([{ offsetBytes: -1, lengthBytes: 0, addressBytes: -7, seq: 3 }]);
    expect(DeltaMap.fromWrites(marker, { fromIndex: 0, toIndex: 1 }).runCount).toBe(0);
  });
});

describe("DeltaMap.resolve", () => {
  it("covers any byte range exactly, each piece addressed at its own first byte", () => {
    fc.assert(
      fc.property(
        streamArbitrary,
        fc.integer({ min: -1024, max: VOLUME_BYTES + 1024 }),
        fc.integer({ min: 0, max: VOLUME_BYTES + 2048 }),
        (stream, relativeOffsetBytes, lengthBytes) => {
          const offsetBytes = Math.max(0, stream.baseBytes + relativeOffsetBytes);
          const cells = replay(stream);
          const addressOf = (byte: number): number => {
            const sector = Math.floor((byte - stream.baseBytes) / SECTOR_BYTES);
            const cell = cells[sector];
            if (cell === undefined || cell.addressBytes === HOLE) return HOLE;
            return cell.addressBytes + (byte - stream.baseBytes) % SECTOR_BYTES;
          };
          for (const piece of piecesOf(mapOf(stream.writes), offsetBytes, lengthBytes)) {
            expect(piece.addressBytes).toBe(addressOf(piece.offsetBytes));
            const lastByte = piece.offsetBytes + piece.lengthBytes - 1;
            const expectedLast = piece.addressBytes === HOLE ? HOLE : piece.addressBytes + piece.lengthBytes - 1;
            expect(addressOf(lastByte)).toBe(expectedLast);
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it("mayMap denies only ranges that resolve to one hole", () => {
    fc.assert(
      fc.property(
        streamArbitrary,
        fc.integer({ min: -VOLUME_BYTES, max: 2 * VOLUME_BYTES }),
        fc.integer({ min: 0, max: VOLUME_BYTES }),
        (stream, relativeOffsetBytes, lengthBytes) => {
          const map = mapOf(stream.writes);
          const offsetBytes = Math.max(0, stream.baseBytes + relativeOffsetBytes);
          const pieces = piecesOf(map, offsetBytes, lengthBytes);
          const allHole = pieces.every((piece) => piece.addressBytes === HOLE);
          if (!map.mayMap(offsetBytes, lengthBytes)) expect(allHole).toBe(true);
        },
      ),
      { numRuns: NUM_RUNS },
    );
    // It does deny: a lone write far out leaves the space before it provably empty.
    const lone = mapOf([{ offsetBytes: 2 ** 30, lengthBytes: 4096, addressBytes: 0, seq: 1 }]);
    expect([0, 2 ** 29, 2 ** 30 - 2048, 2 ** 30, 2 ** 31].map((offsetBytes) => lone.mayMap(offsetBytes, 4096)))
      .toEqual([false, false, true, true, false]);
    expect(DeltaMap.empty().mayMap(0, 2 ** 40)).toBe(false);
  });

  it("finds runs by binary search and rejects ranges outside [0, 2^53)", () => {
    const map = mapOf([{ offsetBytes: 4096, lengthBytes: 4096, addressBytes: 0, seq: 1 }]);
    expect([0, 4095, 4096, 8191, 8192, 2 ** 52].map((offsetBytes) => map.findRun(offsetBytes)))
      .toEqual([-1, -1, 0, 0, 1, 1]);
    expect(DeltaMap.empty().findRun(0)).toBe(-1);
    expect(piecesOf(DeltaMap.empty(), 0, 4096)).toEqual([{ offsetBytes: 0, lengthBytes: 4096, addressBytes: HOLE, seq: -1 }]);
    expect(piecesOf(map, 100, 0)).toEqual([]);
    const visit = () => {};
    expect(() => map.resolve(-512, 512, visit)).toThrow(RangeError);
    expect(() => map.resolve(0, -1, visit)).toThrow(RangeError);
    expect(() => map.resolve(2 ** 53, 512, visit)).toThrow(RangeError);
  });
});

describe("DeltaMap.overlay and mergeAll", () => {
  it("overlay of two maps equals the map of both write streams", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), (stream, pick) => {
        const cut = pick % (stream.writes.length + 1);
        const overlaid = DeltaMap.overlay(mapOf(stream.writes.slice(0, cut)), mapOf(stream.writes.slice(cut)));
        expectSameMap(overlaid, mapOf(stream.writes));
        expect(cellsOf(overlaid, stream.baseBytes)).toEqual(replay(stream));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("overlay of unrelated maps lets the newer win wherever it is mapped", () => {
    fc.assert(
      fc.property(streamArbitrary, streamArbitrary, (older, newer) => {
        const newerShifted = { ...newer, writes: newer.writes.map((write) => ({
          ...write,
          offsetBytes: write.offsetBytes - newer.baseBytes + older.baseBytes,
        })) };
        const overlaid = DeltaMap.overlay(mapOf(older.writes), mapOf(newerShifted.writes));
        overlaid.check();
        const olderCells = replay(older);
        const newerCells = replay(older, newerShifted.writes);
        const expected = newerCells.map((cell, sector) => cell.addressBytes === HOLE ? olderCells[sector] : cell);
        expect(cellsOf(overlaid, older.baseBytes)).toEqual(expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("overlay is associative", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), fc.nat(), (stream, pickA, pickB) => {
        const [a, b] = [pickA, pickB].map((pick) => pick % (stream.writes.length + 1)).sort((x, y) => x - y);
        const [first, second, third] = [
          mapOf(stream.writes.slice(0, a)),
          mapOf(stream.writes.slice(a, b)),
          mapOf(stream.writes.slice(b)),
        ];
        expectSameMap(
          DeltaMap.overlay(DeltaMap.overlay(first, second), third),
          DeltaMap.overlay(first, DeltaMap.overlay(second, third)),
        );
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("mergeAll of any split of a stream equals the map of the whole stream", () => {
    fc.assert(
      fc.property(
        streamArbitrary.chain((stream) => fc.tuple(fc.constant(stream), splitArbitrary(stream))),
        ([stream, parts]) => {
          expectSameMap(DeltaMap.mergeAll(parts.map((part) => mapOf(part))), mapOf(stream.writes));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it("a merge run in steps of any budgets equals mergeAll, and says done only once", () => {
    fc.assert(
      fc.property(
        streamArbitrary.chain((stream) => fc.tuple(fc.constant(stream), splitArbitrary(stream))),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 8 }),
        ([stream, parts], budgets) => {
          const maps = parts.map((part) => mapOf(part));
          const merge = DeltaMap.startMerge(maps);
          let steps = 0;
          for (let call = 0; !merge.step(budgets[call % budgets.length]); call++) {
            steps++;
            expect(() => merge.result).toThrow(/once its steps are done/);
            // Each step makes progress: the runs merged are bounded by the maps' runs.
            expect(steps).toBeLessThanOrEqual(10 * (maps.reduce((sum, map) => sum + map.runCount, 0) + maps.length));
          }
          expect(merge.step(1)).toBe(true); // done stays done
          merge.result.check();
          expectSameMap(merge.result, DeltaMap.mergeAll(maps));
          expectSameMap(merge.result, mapOf(stream.writes));
        },
      ),
      { numRuns: NUM_RUNS },
    );
    expect(DeltaMap.startMerge([]).step(1)).toBe(true);
  });

  it("merging the seed's Figure 4 maps leaves fewer entries than the two maps hold", () => {
    // seed 004 [0040]-[0042]: four writes, two maps of two writes each; the merged map
    // needs fewer entries because the later writes cover the earlier ones.
    const writes: Write[] = [
      { offsetBytes: 0, lengthBytes: 2048, addressBytes: 0, seq: 456 },
      { offsetBytes: 8192, lengthBytes: 1024, addressBytes: 2048, seq: 458 },
      { offsetBytes: 0, lengthBytes: 4096, addressBytes: 3072, seq: 460 },
      { offsetBytes: 4096, lengthBytes: 1024, addressBytes: 7168, seq: 462 },
    ];
    const first = mapOf(writes.slice(0, 2));
    const second = mapOf(writes.slice(2));
    const merged = DeltaMap.mergeAll([first, second]);
    expectSameMap(merged, mapOf(writes));
    expect(first.runCount + second.runCount).toBe(7);
    expect(arraysOf(merged)).toEqual({
      startBytes: [0, 4096, 5120, 8192, 9216],
      addressBytes: [3072, 7168, HOLE, 2048, HOLE],
      seq: [460, 462, -1, 458, -1],
    });
  });

  it("treats the empty map as the identity", () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        const map = mapOf(stream.writes);
        expectSameMap(DeltaMap.overlay(DeltaMap.empty(), map), map);
        expectSameMap(DeltaMap.overlay(map, DeltaMap.empty()), map);
        expectSameMap(DeltaMap.mergeAll([map]), map);
      }),
      { numRuns: 100 },
    );
    expect(DeltaMap.mergeAll([]).runCount).toBe(0);
  });
});

describe("DeltaMap.diff", () => {
  it("returns the maximal extents where two maps resolve differently", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), fc.nat(), (stream, pickA, pickB) => {
        const cutA = pickA % (stream.writes.length + 1);
        const cutB = pickB % (stream.writes.length + 1);
        const cellsA = replay(stream, stream.writes.slice(0, cutA));
        const cellsB = replay(stream, stream.writes.slice(0, cutB));
        const expected: Extent[] = [];
        cellsA.forEach((cell, sector) => {
          if (cell.addressBytes === cellsB[sector].addressBytes) return;
          const offsetBytes = stream.baseBytes + sector * SECTOR_BYTES;
          const last = expected[expected.length - 1];
          if (last !== undefined && last.offsetBytes + last.lengthBytes === offsetBytes) {
            last.lengthBytes += SECTOR_BYTES;
          } else {
            expected.push({ offsetBytes, lengthBytes: SECTOR_BYTES });
          }
        });
        const mapA = mapOf(stream.writes.slice(0, cutA));
        const mapB = mapOf(stream.writes.slice(0, cutB));
        expect(DeltaMap.diff(mapA, mapB)).toEqual(expected);
        expect(DeltaMap.diff(mapB, mapA)).toEqual(expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe("DeltaMap statistics", () => {
  it("counts mapped bytes and visits runs like the oracle's cells", () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        const map = mapOf(stream.writes);
        const written = replay(stream).filter((cell) => cell.addressBytes !== HOLE).length;
        expect(map.mappedBytes()).toBe(written * SECTOR_BYTES);
        expect(map.byteLength).toBe(24 * map.runCount);
        let visitedBytes = 0;
        let nextOffsetBytes = map.runCount === 0 ? 0 : map.startBytes[0];
        map.forEachRun((offsetBytes, lengthBytes, addressBytes) => {
          expect(offsetBytes).toBe(nextOffsetBytes);
          nextOffsetBytes += lengthBytes;
          if (addressBytes !== HOLE) visitedBytes += lengthBytes;
        });
        expect(visitedBytes).toBe(written * SECTOR_BYTES);
      }),
      { numRuns: 100 },
    );
  });
});

describe("DeltaMap.encode and decode", () => {
  it("round-trips every map in a 16-byte header plus 24 bytes per run", () => {
    fc.assert(
      fc.property(streamArbitrary, (stream) => {
        const map = mapOf(stream.writes);
        const bytes = map.encode();
        expect(bytes.length).toBe(16 + 24 * map.runCount);
        expectSameMap(DeltaMap.decode(bytes), map);
        // At an unaligned offset inside a larger buffer, too.
        const shifted = new Uint8Array(bytes.length + 3);
        shifted.set(bytes, 3);
        expectSameMap(DeltaMap.decode(shifted.subarray(3)), map);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("rejects every truncation and any extension with a SyntaxError", () => {
    const map = mapOf([
      { offsetBytes: 0, lengthBytes: 4096, addressBytes: 0, seq: 1 },
      { offsetBytes: 8192, lengthBytes: 512, addressBytes: 4096, seq: 2 },
    ]);
    const bytes = map.encode();
    for (let length = 0; length < bytes.length; length++) {
      expect(() => DeltaMap.decode(bytes.subarray(0, length)), `length ${length}`).toThrow(SyntaxError);
    }
    for (let extra = 1; extra <= 48; extra++) {
      const longer = new Uint8Array(bytes.length + extra);
      longer.set(bytes);
      expect(() => DeltaMap.decode(longer), `extra ${extra}`).toThrow(SyntaxError);
    }
  });

  it("decodes mutated bytes to a SyntaxError or to exactly the canonical map they spell", () => {
    fc.assert(
      fc.property(
        streamArbitrary,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (stream, mutations) => {
          const bytes = mapOf(stream.writes).encode();
          for (const [position, flip] of mutations) bytes[position % bytes.length] ^= flip;
          let decoded: DeltaMap;
          try {
            decoded = DeltaMap.decode(bytes);
          } catch (error) {
            expect(error).toBeInstanceOf(SyntaxError);
            return;
          }
          decoded.check();
          expect(decoded.encode()).toEqual(bytes);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("rejects each non-canonical form with a SyntaxError that names the problem", () => {
    const cases: [string, Uint8Array][] = [
      ["magic", (() => {
        const bytes = rawBytes([0, 512], [0, HOLE], [1, -1]);
        bytes[0] ^= 1;
        return bytes;
      })()],
      ["version", (() => {
        const bytes = rawBytes([0, 512], [0, HOLE], [1, -1]);
        bytes[4] = 2;
        return bytes;
      })()],
      ["reserved", (() => {
        const bytes = rawBytes([0, 512], [0, HOLE], [1, -1]);
        bytes[13] = 1;
        return bytes;
      })()],
      ["leading hole", rawBytes([0], [HOLE], [-1])],
      ["final run must be a hole", rawBytes([0, 512], [0, 4096], [1, 2])],
      ["not after", rawBytes([512, 512, 1024], [0, 4096, HOLE], [1, 2, -1])],
      ["adjacent holes", rawBytes([0, 512, 1024], [0, HOLE, HOLE], [1, -1, -1])],
      ["continue each other", rawBytes([0, 512, 1024], [0, 512, HOLE], [1, 1, -1])],
      ["not -1", rawBytes([0, 512], [0, HOLE], [1, 5])],
      ["not a non-negative integer", rawBytes([0, 512], [0, HOLE], [Number.NaN, -1])],
      ["not a non-negative integer", rawBytes([0.5, 512], [0, HOLE], [1, -1])],
      ["not a non-negative integer", rawBytes([-0, 512], [0, HOLE], [1, -1])],
      ["not a non-negative integer", rawBytes([0, 512], [-2, HOLE], [1, -1])],
      ["not a non-negative integer", rawBytes([0, Infinity], [0, HOLE], [1, -1])],
      ["largest exact address", rawBytes([0, 4096], [2 ** 53 - 1024, HOLE], [1, -1])],
    ];
    for (const [problem, bytes] of cases) {
      expect(() => DeltaMap.decode(bytes), problem).toThrow(SyntaxError);
      expect(() => DeltaMap.decode(bytes), problem).toThrow(problem);
    }
    // The same columns are refused by fromRuns, with a RangeError.
    expect(() => DeltaMap.fromRuns(new Float64Array([0]), new Float64Array([HOLE]), new Float64Array([-1])))
      .toThrow(RangeError);
    const valid = DeltaMap.fromRuns(new Float64Array([0, 512]), new Float64Array([0, HOLE]), new Float64Array([1, -1]));
    expectSameMap(DeltaMap.decode(rawBytes([0, 512], [0, HOLE], [1, -1])), valid);
  });
});
