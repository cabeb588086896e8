/**
 * The read path of point-in-time images: resolving a range through a stack of delta maps
 * without merging them first (seed 004 [0038]: a point is restored from "merged delta map
 * 204 t0-t3 and delta map 204 t3-t4" together; DESIGN.md, "Merge": a point touches O(log n)
 * stored maps plus part of one level-0 map).
 *
 * Zero runs (a restore's "reads as zeros here", see `delta_map.ts`) are mapped runs like any
 * other: they stop the fall-through and are visited with their zero address.
 *
 * @module
 */
import { DeltaMap, type Extent, HOLE, type PieceVisitor } from "./delta_map.ts";

/**
 * Most layers one lookup walks. A point needs about `mapLevelsMax × mapFanOut` maps (128 with
 * the defaults); the limit bounds the recursion depth, which is one frame per layer.
 */
export const LAYER_COUNT_MAX = 4096;

/**
 * Visits the consecutive pieces covering exactly [offsetBytes, offsetBytes + lengthBytes), in
 * ascending order. `layers` are ordered newest first: each piece resolves in the newest layer
 * that maps it, holes fall through to the next layer, and what falls through every layer is
 * visited as {@link HOLE} (seq -1). Adjacent holes are visited as one piece; adjacent mapped
 * pieces from different layers are not joined even if they happen to continue each other.
 *
 * Allocates nothing. Per layer a piece reaches: an O(1) coverage test
 * ({@link DeltaMap.mayMap}) that lets it fall through a sparse layer at once, else a binary
 * search. A piece lying in one hole of a layer goes down in a loop; only a piece that splits
 * recurses, one frame per layer at most. The pending hole is passed down and back as a number,
 * not kept in module state, so the function is reentrant (a visitor may itself resolve).
 *
 * @throws {RangeError} when the range is not within [0, 2^53) or there are too many layers.
 * @example
 * ```ts
 * import { resolveLayers } from "./layered_lookup.ts";
 * resolveLayers([levelZeroCut, levelOneMap, pointMap], 1 << 20, 4096, (offsetBytes, lengthBytes, addressBytes) => {
 *   // addressBytes === HOLE: never written (zeros); otherwise read the journal there.
 * });
 * ```
 */
export function resolveLayers(
  layers: readonly DeltaMap[],
  offsetBytes: number,
  lengthBytes: number,
  visit: PieceVisitor,
): void {
  if (
    !Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !Number.isSafeInteger(lengthBytes) ||
    lengthBytes < 0 || !(offsetBytes + lengthBytes <= Number.MAX_SAFE_INTEGER)
  ) {
    throw new RangeError(
      `Cannot resolve ${lengthBytes} bytes at offset ${offsetBytes}: not a range of non-negative integers below 2^53`,
    );
  }
  if (layers.length > LAYER_COUNT_MAX) {
    throw new RangeError(`Cannot resolve through ${layers.length} layers: at most ${LAYER_COUNT_MAX}`);
  }
  if (lengthBytes === 0) return;
  const endBytes = offsetBytes + lengthBytes;
  const holeStartBytes = resolveFrom(layers, 0, offsetBytes, endBytes, -1, visit);
  if (holeStartBytes >= 0) visit(holeStartBytes, endBytes - holeStartBytes, HOLE, -1);
}

/**
 * Resolves the non-empty range [offsetBytes, endBytes) in `layers[layerIndex]` and below.
 * `holeStartBytes` is where a not yet visited hole began (it always ends at `offsetBytes`), or
 * -1; the return value is the same for the end of the range, so holes found in separate layers
 * are visited as one piece.
 */
function resolveFrom(
  layers: readonly DeltaMap[],
  layerIndex: number,
  offsetBytes: number,
  endBytes: number,
  holeStartBytes: number,
  visit: PieceVisitor,
): number {
  // The common read lies inside one hole of a layer: go down without a call per layer.
  let layer: DeltaMap;
  let run: number;
  for (;; layerIndex++) {
    if (layerIndex === layers.length) return holeStartBytes >= 0 ? holeStartBytes : offsetBytes;
    layer = layers[layerIndex];
    if (!layer.mayMap(offsetBytes, endBytes - offsetBytes)) continue;
    run = layer.findRun(offsetBytes);
    if (run >= 0 && layer.addressBytes[run] !== HOLE) break;
    const starts = layer.startBytes;
    if (run + 1 < starts.length && starts[run + 1] < endBytes) break;
  }
  const starts = layer.startBytes;
  const addresses = layer.addressBytes;
  let positionBytes = offsetBytes;
  let pendingHoleBytes = holeStartBytes;
  while (positionBytes < endBytes) {
    const runEndBytes = run + 1 < starts.length ? starts[run + 1] : Infinity;
    const pieceEndBytes = runEndBytes < endBytes ? runEndBytes : endBytes;
    if (run < 0 || addresses[run] === HOLE) {
      pendingHoleBytes = resolveFrom(layers, layerIndex + 1, positionBytes, pieceEndBytes, pendingHoleBytes, visit);
    } else {
      if (pendingHoleBytes >= 0) {
        visit(pendingHoleBytes, positionBytes - pendingHoleBytes, HOLE, -1);
        pendingHoleBytes = -1;
      }
      visit(
        positionBytes,
        pieceEndBytes - positionBytes,
        addresses[run] + (positionBytes - starts[run]),
        layer.seq[run],
      );
    }
    positionBytes = pieceEndBytes;
    run++;
  }
  return pendingHoleBytes;
}

/**
 * The map that resolves like the stack `layers` (newest first) on `extents` and is a hole
 * everywhere else: the part of a point's state a restore compares (DESIGN.md, "Restore"),
 * without merging every layer in full. `extents` must be ascending and not overlapping.
 * O(pieces + extents × layers × log runs).
 *
 * @throws {RangeError} for extents out of order or out of range, or too many layers.
 * @example
 * ```ts
 * import { flattenLayers } from "./layered_lookup.ts";
 * const part = flattenLayers([levelZeroCut, levelOneMap, pointMap], [{ offsetBytes: 0, lengthBytes: 1 << 20 }]);
 * ```
 */
export function flattenLayers(layers: readonly DeltaMap[], extents: readonly Extent[]): DeltaMap {
  return DeltaMap.fromPieces((add) => {
    for (const extent of extents) resolveLayers(layers, extent.offsetBytes, extent.lengthBytes, add);
  });
}
