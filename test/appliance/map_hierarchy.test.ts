/**
 * Proves the map hierarchy is exact: a hierarchy built incrementally (level-0 maps sealed one
 * by one, merged maps and point maps built as they fall due) equals maps built from scratch
 * from the write index, and the layers for any prefix overlay to the from-scratch map of that
 * prefix. Equality is structural (canonical encodings byte for byte).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DeltaMap } from "../../src/core/delta_map.ts";
import { MapHierarchy } from "../../src/appliance/map_hierarchy.ts";
import { WriteIndex } from "../../src/appliance/write_index.ts";

function same(a: DeltaMap, b: DeltaMap): boolean {
  const x = a.encode();
  const y = b.encode();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe("map hierarchy", () => {
  it("a hierarchy built incrementally equals one built from scratch", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(255), fc.integer({ min: 1, max: 32 })), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 64 }),
        (writes, levelZeroRows, fanOut, pointMapRunsMin) => {
          const index = new WriteIndex();
          let address = 0;
          writes.forEach(([sector, sectors], i) => {
            index.push(1, i + 1, i, sector * 512, sectors * 512, address);
            address += sectors * 512 + 64;
          });
          const hierarchy = new MapHierarchy({ fanOut, levelsMax: 4, pointMapRunsMin, pointMapGrowthDivisor: 2 });
          for (let from = 0; from + levelZeroRows <= index.count; from += levelZeroRows) {
            const to = from + levelZeroRows;
            const map = DeltaMap.fromWrites(index, { fromIndex: from, toIndex: to });
            for (const key of hierarchy.addLevelZero({ fromIndex: from, toIndex: to, firstSeq: from + 1, lastSeq: to, endAddressBytes: 0, map })) {
              hierarchy.install(key, hierarchy.build(key));
            }
          }
          // Every merged map equals the map of the rows it covers.
          let span = 1;
          for (let level = 1; level <= 4; level++) {
            span *= fanOut;
            hierarchy.merged[level].forEach((map, j) => {
              const scratch = DeltaMap.fromWrites(index, { fromIndex: j * span * levelZeroRows, toIndex: (j + 1) * span * levelZeroRows });
              expect(same(map, scratch)).toBe(true);
            });
          }
          // Every point map equals the full map of its prefix.
          for (const point of hierarchy.points) {
            expect(same(point.map, DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: point.boundary * levelZeroRows }))).toBe(true);
          }
          // The layers of every prefix overlay to the prefix's map.
          for (let count = 0; count <= hierarchy.levelZeroCount; count++) {
            const merged = DeltaMap.mergeAll(hierarchy.layersFor(count).reverse());
            expect(same(merged, DeltaMap.fromWrites(index, { fromIndex: 0, toIndex: count * levelZeroRows }))).toBe(true);
          }
          // Layer counts stay logarithmic: at most F-1 per level below the top, what the top
          // level holds, and one point map.
          for (let count = 0; count <= hierarchy.levelZeroCount; count++) {
            const bound = (fanOut - 1) * 4 + Math.ceil(count / fanOut ** 4) + 1;
            expect(hierarchy.layersFor(count).length).toBeLessThanOrEqual(bound);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
