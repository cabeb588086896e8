/**
 * The hierarchy of delta maps (seed 004 [0037]-[0039], figure 3; seed 000 claims 4-9):
 *
 * - level-0 maps, one per run of consecutive journal records (sealed every N writes or at a
 *   marker), built from the write index;
 * - level-k maps (k >= 1), each the merge of `fanOut` consecutive maps of level k-1, aligned
 *   (map j of level k covers level-0 maps [j*F^k, (j+1)*F^k));
 * - point maps: full maps from the base at level-0 boundaries, written when the level-0 runs
 *   since the previous point map reach max(pointMapRunsMin, previous point map's runs /
 *   pointMapGrowthDivisor), so their total size stays proportional to the history.
 *
 * The state after the first `count` level-0 maps is the newest point map at or before `count`
 * overlaid with an aligned decomposition of the rest: at most (F-1) maps per level, so
 * O(F log_F n) layers, never a replay of the log. This module is pure: it decides and
 * merges; the volume persists.
 *
 * Restore markers (seed 003 [0075]) need nothing here: their synthesized delta is part of the
 * level-0 map of the interval holding them (`DeltaMap.fromWrites` takes it from the write
 * index), so every merged map and point map above includes it, and its zero runs are real
 * mappings that win over older maps, newest first, like writes. A point map may hold zero
 * runs; they read as zeros, as its holes do.
 */
import { assert } from "../core/assert.ts";
import { DELTA_MAP_HEADER_BYTES, DELTA_MAP_RUN_BYTES, DeltaMap, type MapMerge } from "../core/delta_map.ts";

/** A sealed level-0 map and the records it covers. */
export interface LevelZeroMap {
  /** First write-index row covered. */
  readonly fromIndex: number;
  /** One past the last row covered. */
  readonly toIndex: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Journal address just past the last record covered (where recovery resumes). */
  readonly endAddressBytes: number;
  readonly map: DeltaMap;
}

/** Names a map of the hierarchy: a merged map (level >= 1) or a point map. */
export type MapKey =
  | { readonly kind: "merged"; readonly level: number; readonly index: number }
  | { readonly kind: "point"; readonly boundary: number };

/** Tuning of the hierarchy; see `limits.ts` for the defaults. */
export interface MapHierarchyOptions {
  readonly fanOut: number;
  readonly levelsMax: number;
  readonly pointMapRunsMin: number;
  readonly pointMapGrowthDivisor: number;
}

/** The maps of one volume and the rules that combine them. */
export class MapHierarchy {
  readonly options: MapHierarchyOptions;
  readonly levelZero: LevelZeroMap[] = [];
  /** merged[k][j]: map j of level k (index 0 unused). */
  readonly merged: DeltaMap[][] = [];
  /** Point maps by ascending boundary (number of level-0 maps they cover). */
  readonly points: { readonly boundary: number; readonly map: DeltaMap }[] = [];
  #runsSincePoint = 0;

  constructor(options: MapHierarchyOptions) {
    assert(options.fanOut >= 2, `Map fan-out must be at least 2, got ${options.fanOut}`);
    assert(options.levelsMax >= 1 && options.pointMapGrowthDivisor >= 1, "Bad hierarchy options");
    this.options = options;
    for (let level = 0; level <= options.levelsMax; level++) this.merged.push([]);
  }

  /** Level-0 maps sealed so far. */
  get levelZeroCount(): number {
    return this.levelZero.length;
  }

  /** Rows covered by sealed level-0 maps. */
  get sealedRows(): number {
    return this.levelZero.length === 0 ? 0 : this.levelZero[this.levelZero.length - 1].toIndex;
  }

  /**
   * Appends a sealed level-0 map and returns the keys of the maps now due: merged maps whose
   * children are complete and, if the policy says so, a point map at the new boundary.
   * The caller builds them with {@link build} (or loads them) and {@link install}s them.
   */
  addLevelZero(levelZero: LevelZeroMap): MapKey[] {
    assert(levelZero.fromIndex === this.sealedRows, "Level-0 maps must be contiguous");
    assert(levelZero.toIndex > levelZero.fromIndex, "A level-0 map covers at least one record");
    this.levelZero.push(levelZero);
    this.#runsSincePoint += levelZero.map.runCount;
    const count = this.levelZero.length;
    const due: MapKey[] = [];
    let span = 1;
    for (let level = 1; level <= this.options.levelsMax; level++) {
      span *= this.options.fanOut;
      if (count % span !== 0) break;
      due.push({ kind: "merged", level, index: count / span - 1 });
    }
    if (this.#runsSincePoint >= this.#pointThreshold()) due.push({ kind: "point", boundary: count });
    return due;
  }

  /**
   * The point map {@link addLevelZero} would have asked for after the newest point map
   * installed, had each map been installed at once: the first boundary since it where the
   * level-0 runs reach the policy's threshold, or undefined. For a caller that builds point
   * maps later than they fall due (and ignores the point keys `addLevelZero` returns while
   * one is on its way, which count from the older point): the boundaries come out the same.
   */
  nextPointDue(): { readonly kind: "point"; readonly boundary: number } | undefined {
    const previous = this.points.length === 0 ? undefined : this.points[this.points.length - 1];
    const threshold = this.#pointThreshold();
    let runs = 0;
    for (let index = previous?.boundary ?? 0; index < this.levelZero.length; index++) {
      runs += this.levelZero[index].map.runCount;
      if (runs >= threshold) return { kind: "point", boundary: index + 1 };
    }
    return undefined;
  }

  /** Level-0 runs since the newest point map that make the next one due. */
  #pointThreshold(): number {
    const previousRuns = this.points.length === 0 ? 0 : this.points[this.points.length - 1].map.runCount;
    return Math.max(this.options.pointMapRunsMin, Math.ceil(previousRuns / this.options.pointMapGrowthDivisor));
  }

  /** Computes a due map from the maps already installed (merged keys must come in level order). */
  build(key: MapKey): DeltaMap {
    const merge = this.startBuild(key);
    merge.step(Infinity);
    return merge.result;
  }

  /**
   * {@link build} as a merge to run in steps (`DeltaMap.startMerge`). Its inputs are taken
   * now: start it only once the maps it is built from are installed (a merged map's children;
   * for a point map, whatever is installed: its layers are the state at the boundary anyway).
   */
  startBuild(key: MapKey): MapMerge {
    if (key.kind === "merged") {
      const children = key.level === 1
        ? this.levelZero.slice(key.index * this.options.fanOut, (key.index + 1) * this.options.fanOut).map((l) => l.map)
        : this.merged[key.level - 1].slice(key.index * this.options.fanOut, (key.index + 1) * this.options.fanOut);
      if (children.length !== this.options.fanOut) assert(false, `Map ${key.level}/${key.index} is not due yet`);
      return DeltaMap.startMerge(children);
    }
    return DeltaMap.startMerge(this.layersFor(key.boundary).reverse());
  }

  /** Installs a built or loaded map under its key. */
  install(key: MapKey, map: DeltaMap): void {
    if (key.kind === "merged") {
      if (this.merged[key.level].length !== key.index) assert(false, `Map ${key.level}/${key.index} installed out of order`);
      this.merged[key.level].push(map);
      return;
    }
    if (key.boundary > this.levelZero.length) assert(false, `Point map at ${key.boundary} is past the sealed maps`);
    const last = this.points.length === 0 ? 0 : this.points[this.points.length - 1].boundary;
    if (key.boundary <= last) assert(false, `Point maps must be installed in order, got ${key.boundary} after ${last}`);
    this.points.push({ boundary: key.boundary, map });
    this.#runsSincePoint = 0;
    for (let i = key.boundary; i < this.levelZero.length; i++) this.#runsSincePoint += this.levelZero[i].map.runCount;
  }

  /**
   * The maps whose overlay is the state after the first `count` level-0 maps, NEWEST FIRST:
   * the aligned decomposition since the newest point map at or before `count`, then that
   * point map.
   */
  layersFor(count: number): DeltaMap[] {
    const point = this.#pointAtOrBefore(count);
    const layers = this.layersBetween(point === undefined ? 0 : point.boundary, count);
    if (point !== undefined) layers.push(point.map);
    return layers;
  }

  /** The maps whose overlay is the change made by level-0 maps [from, to), NEWEST FIRST. */
  layersBetween(from: number, to: number): DeltaMap[] {
    if (!(0 <= from && from <= to && to <= this.levelZero.length)) assert(false, `Bad map range [${from}, ${to})`);
    const oldestFirst: DeltaMap[] = [];
    let at = from;
    while (at < to) {
      let level = 0;
      let span = 1;
      while (level < this.options.levelsMax) {
        const nextSpan = span * this.options.fanOut;
        const nextIndex = at / nextSpan;
        if (at % nextSpan !== 0 || at + nextSpan > to || this.merged[level + 1].length <= nextIndex) break;
        level++;
        span = nextSpan;
      }
      oldestFirst.push(level === 0 ? this.levelZero[at].map : this.merged[level][at / span]);
      at += span;
    }
    return oldestFirst.reverse();
  }

  /** Number of level-0 maps whose rows all come before row `rowEnd` (exclusive bound). */
  levelZeroCountBefore(rowEnd: number): number {
    let low = 0;
    let high = this.levelZero.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.levelZero[middle].toIndex <= rowEnd) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Every map of the hierarchy: level-0, merged and point maps. */
  *maps(): IterableIterator<DeltaMap> {
    for (const levelZero of this.levelZero) yield levelZero.map;
    for (const level of this.merged) yield* level;
    for (const point of this.points) yield point.map;
  }

  /** Runs, memory and encoded size of all maps. */
  stats(): { maps: number; runs: number; memoryBytes: number; encodedBytes: number } {
    let maps = 0;
    let runs = 0;
    let memoryBytes = 0;
    for (const map of this.maps()) {
      maps++;
      runs += map.runCount;
      memoryBytes += map.byteLength;
    }
    return { maps, runs, memoryBytes, encodedBytes: runs * DELTA_MAP_RUN_BYTES + maps * DELTA_MAP_HEADER_BYTES };
  }

  #pointAtOrBefore(count: number): { boundary: number; map: DeltaMap } | undefined {
    let low = 0;
    let high = this.points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.points[middle].boundary <= count) low = middle + 1;
      else high = middle;
    }
    return low === 0 ? undefined : this.points[low - 1];
  }
}
