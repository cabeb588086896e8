// Proves that resolveLayers reads a stack of delta maps exactly as if they had been merged
// (seed 004 [0038]: a point is restored from a merged map plus later maps). How: fast-check
// generates a journal-ordered write stream over a 64-sector volume, cuts it into layers at
// random points (each layer a map of its slice, stacked newest first, some empty), and
// compares the pieces resolveLayers visits for random byte ranges with an oracle that
// replays the writes into per-sector cells. Stacks of unrelated maps are compared with
// DeltaMap.mergeAll. Every call must tile its range exactly, in ascending order, and never
// visit two holes in a row.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DeltaMap, HOLE, type WriteColumns } from "../../src/core/delta_map.ts";
import { LAYER_COUNT_MAX, resolveLayers } from "../../src/core/layered_lookup.ts";

const SECTOR_BYTES = 512;
const VOLUME_SECTORS = 64;
const VOLUME_BYTES = SECTOR_BYTES * VOLUME_SECTORS;

interface Write {
  offsetBytes: number;
  lengthBytes: number;
  addressBytes: number;
  seq: number;
}

/** A journal-ordered stream over [0, VOLUME_BYTES): addresses and seqs grow with the index. */
const streamArbitrary: fc.Arbitrary<Write[]> = fc.array(
  fc.record({
    sector: fc.integer({ min: 0, max: VOLUME_SECTORS - 1 }),
    sectors: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: VOLUME_SECTORS })),
    gapBytes: fc.constantFrom(0, 0, 4096),
  }),
  { maxLength: 40 },
).map((steps) => {
  let addressBytes = 0;
  return steps.map((step, index) => {
    const lengthBytes = Math.min(step.sectors, VOLUME_SECTORS - step.sector) * SECTOR_BYTES;
    addressBytes += step.gapBytes;
    const write = { offsetBytes: step.sector * SECTOR_BYTES, lengthBytes, addressBytes, seq: index + 1 };
    addressBytes += lengthBytes;
    return write;
  });
});

function mapOf(writes: readonly Write[]): DeltaMap {
  const columns: WriteColumns = {
    offsetBytes: Float64Array.from(writes, (write) => write.offsetBytes),
    lengthBytes: Float64Array.from(writes, (write) => write.lengthBytes),
    addressBytes: Float64Array.from(writes, (write) => write.addressBytes),
    seq: Float64Array.from(writes, (write) => write.seq),
  };
  return DeltaMap.fromWrites(columns, { fromIndex: 0, toIndex: writes.length });
}

/** The oracle: the newest write's journal address and seq for every sector. */
function replay(writes: readonly Write[]): { addressBytes: number; seq: number }[] {
  const cells = Array.from({ length: VOLUME_SECTORS }, () => ({ addressBytes: HOLE, seq: -1 }));
  for (const write of writes) {
    for (let at = 0; at < write.lengthBytes; at += SECTOR_BYTES) {
      cells[(write.offsetBytes + at) / SECTOR_BYTES] = { addressBytes: write.addressBytes + at, seq: write.seq };
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

/** Resolves through the layers, checking that the pieces tile the range and holes are joined. */
function piecesThrough(layers: readonly DeltaMap[], offsetBytes: number, lengthBytes: number): Piece[] {
  const pieces: Piece[] = [];
  let expectedOffsetBytes = offsetBytes;
  resolveLayers(layers, offsetBytes, lengthBytes, (pieceOffsetBytes, pieceLengthBytes, addressBytes, seq) => {
    expect(pieceOffsetBytes).toBe(expectedOffsetBytes);
    expect(pieceLengthBytes).toBeGreaterThan(0);
    const previous = pieces[pieces.length - 1];
    if (addressBytes === HOLE) {
      expect(seq).toBe(-1);
      expect(previous?.addressBytes).not.toBe(HOLE);
    }
    expectedOffsetBytes += pieceLengthBytes;
    pieces.push({ offsetBytes: pieceOffsetBytes, lengthBytes: pieceLengthBytes, addressBytes, seq });
  });
  expect(expectedOffsetBytes).toBe(offsetBytes + lengthBytes);
  return pieces;
}

/** Per-byte view of pieces: the journal address (or HOLE) and seq at `byte`. */
function lookup(pieces: readonly Piece[], byte: number): { addressBytes: number; seq: number } {
  const piece = pieces.find((candidate) => candidate.offsetBytes <= byte && byte < candidate.offsetBytes + candidate.lengthBytes);
  if (piece === undefined) throw new Error(`No piece covers byte ${byte}`);
  const addressBytes = piece.addressBytes === HOLE ? HOLE : piece.addressBytes + (byte - piece.offsetBytes);
  return { addressBytes, seq: piece.seq };
}

const rangeArbitrary = fc.tuple(
  fc.integer({ min: 0, max: VOLUME_BYTES + 1024 }),
  fc.integer({ min: 0, max: VOLUME_BYTES + 1024 }),
);

/** Splits a stream at random points into consecutive slices (some empty), oldest first. */
const layeredStreamArbitrary = streamArbitrary.chain((writes) =>
  fc.tuple(
    fc.constant(writes),
    fc.array(fc.integer({ min: 0, max: writes.length }), { maxLength: 8 }).map((cuts) => {
      const sorted = [0, ...cuts.sort((a, b) => a - b), writes.length];
      return sorted.slice(1).map((end, index) => writes.slice(sorted[index], end));
    }),
  )
);

describe("resolveLayers", () => {
  it("reads a stack of layers like replaying the whole stream", () => {
    fc.assert(
      fc.property(layeredStreamArbitrary, rangeArbitrary, ([writes, slices], [offsetBytes, lengthBytes]) => {
        const layersNewestFirst = slices.map(mapOf).reverse();
        const pieces = piecesThrough(layersNewestFirst, offsetBytes, lengthBytes);
        const cells = replay(writes);
        // Check each sector the range touches, at its first byte inside the range.
        for (let byte = offsetBytes; byte < offsetBytes + lengthBytes; byte = (Math.floor(byte / SECTOR_BYTES) + 1) * SECTOR_BYTES) {
          const cell = cells[Math.floor(byte / SECTOR_BYTES)] ?? { addressBytes: HOLE, seq: -1 };
          const expected = cell.addressBytes === HOLE
            ? cell
            : { addressBytes: cell.addressBytes + byte % SECTOR_BYTES, seq: cell.seq };
          expect(lookup(pieces, byte)).toEqual(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("reads unrelated layers like their merge, at every byte where a piece starts or ends", () => {
    fc.assert(
      fc.property(fc.array(streamArbitrary, { maxLength: 6 }), rangeArbitrary, (streams, [offsetBytes, lengthBytes]) => {
        const oldestFirst = streams.map(mapOf);
        const merged = DeltaMap.mergeAll(oldestFirst);
        const pieces = piecesThrough(oldestFirst.slice().reverse(), offsetBytes, lengthBytes);
        const mergedPieces: Piece[] = [];
        merged.resolve(offsetBytes, lengthBytes, (pieceOffsetBytes, pieceLengthBytes, addressBytes, seq) => {
          mergedPieces.push({ offsetBytes: pieceOffsetBytes, lengthBytes: pieceLengthBytes, addressBytes, seq });
        });
        const edges = new Set<number>();
        for (const piece of [...pieces, ...mergedPieces]) {
          edges.add(piece.offsetBytes);
          edges.add(piece.offsetBytes + piece.lengthBytes - 1);
        }
        for (const byte of edges) expect(lookup(pieces, byte)).toEqual(lookup(mergedPieces, byte));
        // The stack can only split pieces the merge joins, never the other way round.
        expect(pieces.length).toBeGreaterThanOrEqual(mergedPieces.length);
      }),
      { numRuns: 1000 },
    );
  });

  it("visits one hole for a range no layer maps, and nothing for an empty range", () => {
    const layer = mapOf([{ offsetBytes: 0, lengthBytes: 512, addressBytes: 0, seq: 1 }]);
    const empties = [DeltaMap.empty(), DeltaMap.empty()];
    expect(piecesThrough([], 4096, 8192)).toEqual([{ offsetBytes: 4096, lengthBytes: 8192, addressBytes: HOLE, seq: -1 }]);
    expect(piecesThrough([...empties, layer, ...empties], 0, 4096)).toEqual([
      { offsetBytes: 0, lengthBytes: 512, addressBytes: 0, seq: 1 },
      { offsetBytes: 512, lengthBytes: 3584, addressBytes: HOLE, seq: -1 },
    ]);
    expect(piecesThrough([layer], 100, 0)).toEqual([]);
  });

  it("lets a visitor resolve again inside its own callback", () => {
    const older = mapOf([{ offsetBytes: 0, lengthBytes: 4096, addressBytes: 0, seq: 1 }]);
    const newer = mapOf([{ offsetBytes: 1024, lengthBytes: 512, addressBytes: 8192, seq: 2 }]);
    const outer: number[] = [];
    resolveLayers([newer, older], 0, 8192, (offsetBytes, lengthBytes) => {
      outer.push(offsetBytes);
      expect(piecesThrough([newer, older], offsetBytes, lengthBytes).length).toBe(1);
    });
    expect(outer).toEqual([0, 1024, 1536, 4096]);
  });

  it("rejects ranges outside [0, 2^53) and stacks above the layer limit with a RangeError", () => {
    const visit = () => {};
    expect(() => resolveLayers([], -512, 512, visit)).toThrow(RangeError);
    expect(() => resolveLayers([], 0, 0.5, visit)).toThrow(RangeError);
    expect(() => resolveLayers([], 2 ** 53 - 512, 1024, visit)).toThrow(RangeError);
    const tooMany = Array.from({ length: LAYER_COUNT_MAX + 1 }, () => DeltaMap.empty());
    expect(() => resolveLayers(tooMany, 0, 512, visit)).toThrow(RangeError);
  });
});
