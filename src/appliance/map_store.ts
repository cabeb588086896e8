/**
 * Persists a volume's delta maps and catalogue in a {@link SegmentStore} (one segment per
 * map, the catalogue in the store's atomically replaced manifest), so a restart reloads the
 * maps instead of scanning the journal (seed 004 [0037]: "The delta maps ... are stored on
 * the secondary volume").
 *
 * Segment ids are derived from a map's place in the hierarchy, so the catalogue only needs
 * counts: level-k map j is segment `k * 2^40 + j`; point map at boundary b is
 * `15 * 2^40 + b`. Every blob ends with an XXH64 of what precedes it; a blob that fails it
 * is reported, never used.
 *
 * **Packs.** A volume persists its maps in groups: one pack segment (`14 * 2^40 + i`) holds
 * the level-0 maps from index i on, in order, and every merged and point map that became due
 * at their seals; the catalogue lists each pack's first index (`packs`). One pack costs one
 * segment create, one sync and one catalogue replace where a file per map cost that per map
 * (measured with 300k writes of 4 KiB: 152 map files, 231 fdatasyncs and 152 directory syncs
 * beside the journal's 152 syncs, before packs). Level-0 maps before the first pack, written
 * by earlier releases, are still read from their own segments; a store with packs cannot be
 * read by a release without them.
 *
 * Blob layout (little-endian):
 * | bytes | level-0 blob | merged / point blob |
 * | --- | --- | --- |
 * | 0-3 | magic `AML0` | magic `AMMP` |
 * | 4-7 | version 1, or 2 with restore deltas | version 1 |
 * | 8-15 | rows (u32), restore deltas R (u32; 0 in version 1) | — |
 * | 16-47 | fromIndex, firstSeq, lastSeq, endAddressBytes (f64) | — |
 * | 48- | columns seq, timeUs, offsetBytes, lengthBytes, addressBytes (f64 × rows), kind (u8 × rows, padded to 8) | — |
 * | then | the encoded {@link DeltaMap} | the encoded {@link DeltaMap} (from byte 8) |
 * | then | R × (row within the blob (f64), the encoded delta of that restore row) | — |
 * | last 8 | XXH64 of all before | XXH64 of all before |
 *
 * A pack: magic `AMPK` (0-3), version 1 (4-7), entries E (u32, 8-11), 0 (12-15), then E ×
 * (segment id the entry would have on its own (f64), body bytes B (f64), the body: a blob as
 * above without its checksum, zero-padded to 8), then the XXH64 of all before.
 *
 * A restore marker's delta (seed 003 [0075]) is stored with the level-0 map of its interval
 * because the write index needs it to cut points inside that interval, and recomputing it at
 * start-up would need the maps of the point restored to. Version 1 is still written when a
 * level-0 map holds no restore, so those files stay readable by the previous release; both
 * versions are read. Encoded maps with zero runs carry their own version (see `delta_map.ts`).
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { DeltaMap, type MapRecord } from "../core/delta_map.ts";
import type { SegmentStore } from "../io/segment_store.ts";
import { journalRecordKinds } from "./journal_record.ts";
import type { LevelZeroMap, MapKey } from "./map_hierarchy.ts";
import type { TimelineMarker } from "./volume_timeline.ts";
import type { WriteIndexSlice } from "./write_index.ts";

const LEVEL_ZERO_MAGIC = 0x304c4d41; // "AML0"
const MERGED_MAGIC = 0x504d4d41; // "AMMP"
const PACK_MAGIC = 0x4b504d41; // "AMPK"
const PACK_HEADER_BYTES = 16;
const PACK_ENTRY_HEADER_BYTES = 16;
const VERSION = 1;
/** Level-0 blobs with restore deltas. */
const LEVEL_ZERO_VERSION_RESTORES = 2;
const LEVEL_ZERO_HEADER_BYTES = 48;
const CHECKSUM_BYTES = 8;
/** Bytes a pack encodes between turns of the event loop. */
const packEncodeSliceBytes = 1024 * 1024;
const LEVEL_STRIDE = 2 ** 40;
const POINT_LEVEL = 15;
const PACK_LEVEL = 14;

assert(new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f, "Map blobs assume a little-endian host");

/** What the catalogue (manifest) of a volume's map store holds. */
export interface VolumeCatalogue {
  readonly version: 1;
  readonly name: string;
  readonly sizeBytes: number;
  readonly createdTimeUs: number;
  readonly levelZeroWritesMax: number;
  readonly mapFanOut: number;
  readonly mapLevelsMax: number;
  readonly segmentSizeBytes: number;
  readonly levelZeroCount: number;
  readonly pointBoundaries: readonly number[];
  readonly snapshots: readonly SnapshotEntry[];
  /** The timeline's markers up to the last sealed map (absent in catalogues of version 0.1). */
  readonly markers?: readonly TimelineMarker[];
  /** The retention policy as set (absent: the default). */
  readonly retention?: { readonly window: string; readonly keep: string };
  /**
   * The first level-0 index of each pack, ascending; the packs hold every level-0 map from
   * the first one to `levelZeroCount` (absent: none; earlier maps have a segment each).
   */
  readonly packs?: readonly number[];
}

/** A snapshot marker: a name for a seq (SPEC: no data moved). */
export interface SnapshotEntry {
  readonly name: string;
  readonly seq: number;
  readonly timeUs: number;
}

/** The segment id of a map key (level-0 maps are `{kind: "merged", level: 0}`). */
export function mapSegmentId(key: MapKey | { kind: "levelZero"; index: number } | { kind: "pack"; first: number }): number {
  if (key.kind === "levelZero") return key.index;
  if (key.kind === "pack") return PACK_LEVEL * LEVEL_STRIDE + key.first;
  if (key.kind === "merged") return key.level * LEVEL_STRIDE + key.index;
  return POINT_LEVEL * LEVEL_STRIDE + key.boundary;
}

/** Reads and writes map blobs and the catalogue. */
export class MapStore {
  readonly #store: SegmentStore;
  readonly #checksum: Checksum;
  readonly #nextTurn: () => Promise<void>;

  /**
   * `nextTurn` (the `Clock` seam's) is awaited between slices of a pack's encoding; without
   * it a pack is encoded in one go.
   */
  constructor(store: SegmentStore, checksum: Checksum, options: { nextTurn?: () => Promise<void> } = {}) {
    this.#store = store;
    this.#checksum = checksum;
    this.#nextTurn = options.nextTurn ?? (() => Promise.resolve());
  }

  async readCatalogue(): Promise<VolumeCatalogue | null> {
    const bytes = await this.#store.readManifest();
    if (bytes === null) return null;
    let catalogue: VolumeCatalogue;
    try {
      catalogue = JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new SyntaxError(`Cannot read the map catalogue: ${(error as Error).message}`);
    }
    if (catalogue.version !== 1 || typeof catalogue.levelZeroCount !== "number") {
      throw new SyntaxError(`Cannot read the map catalogue: unknown version ${catalogue.version}`);
    }
    return catalogue;
  }

  writeCatalogue(catalogue: VolumeCatalogue): Promise<void> {
    return this.#store.writeManifest(new TextEncoder().encode(JSON.stringify(catalogue)));
  }

  /** Writes one level-0 map to its own segment (the layout before packs). */
  async writeLevelZero(index: number, levelZero: LevelZeroMap, rows: WriteIndexSlice): Promise<void> {
    await this.#writeBlob(mapSegmentId({ kind: "levelZero", index }), withChecksumRoom(encodeLevelZero(levelZero, rows)));
  }

  /** Reads a level-0 map from its own segment (the layout before packs). */
  async readLevelZero(index: number): Promise<{ levelZero: LevelZeroMap; rows: WriteIndexSlice }> {
    const what = `level-0 map ${index}`;
    return decodeLevelZero(await this.#readBlob(mapSegmentId({ kind: "levelZero", index }), what), what);
  }

  /** Writes a merged or point map to its own segment (the layout before packs). */
  async writeMap(key: MapKey, map: DeltaMap): Promise<void> {
    await this.#writeBlob(mapSegmentId(key), withChecksumRoom(encodeMap(map)));
  }

  /** Reads a merged or point map from its own segment (the layout before packs). */
  async readMap(key: MapKey): Promise<DeltaMap> {
    const what = mapName(key);
    return decodeMap(await this.#readBlob(mapSegmentId(key), what), what);
  }

  /**
   * Writes a pack (module doc) starting at level-0 map `first`: `levelZero` in index order
   * from `first` on, and the merged and point maps due at their seals. Synced when it
   * resolves; the caller then names it in the catalogue.
   */
  async writePack(first: number, contents: { levelZero: readonly PackLevelZero[]; maps: readonly PackMap[] }): Promise<void> {
    const bodies: { id: number; body: Uint8Array }[] = [];
    // A turn of the event loop after every `packEncodeSliceBytes` encoded: a pack of merged
    // and point maps takes tens of milliseconds to encode, and the appliance's ingest runs
    // on the same loop.
    let sliceBytes = 0;
    const encoded = async (id: number, body: Uint8Array) => {
      bodies.push({ id, body });
      sliceBytes += body.length;
      if (sliceBytes < packEncodeSliceBytes) return;
      sliceBytes = 0;
      await this.#nextTurn();
    };
    for (let i = 0; i < contents.levelZero.length; i++) {
      const entry = contents.levelZero[i];
      if (entry.index !== first + i) assert(false, `Level-0 map ${entry.index} is not at place ${i} of the pack from ${first}`);
      await encoded(mapSegmentId({ kind: "levelZero", index: entry.index }), encodeLevelZero(entry.levelZero, entry.rows));
    }
    for (const { key, map } of contents.maps) await encoded(mapSegmentId(key), encodeMap(map));
    let total = PACK_HEADER_BYTES + CHECKSUM_BYTES;
    for (const { body } of bodies) total += PACK_ENTRY_HEADER_BYTES + align8(body.length);
    const blob = new Uint8Array(total);
    const view = new DataView(blob.buffer);
    view.setUint32(0, PACK_MAGIC, true);
    view.setUint32(4, VERSION, true);
    view.setUint32(8, bodies.length, true);
    let at = PACK_HEADER_BYTES;
    for (const { id, body } of bodies) {
      view.setFloat64(at, id, true);
      view.setFloat64(at + 8, body.length, true);
      blob.set(body, at + PACK_ENTRY_HEADER_BYTES);
      at += PACK_ENTRY_HEADER_BYTES + align8(body.length);
    }
    assert(at === total - CHECKSUM_BYTES, "Pack entries fill the pack");
    await this.#writeBlob(mapSegmentId({ kind: "pack", first }), blob);
  }

  /** Reads the pack starting at level-0 map `first`; its maps decode on demand. */
  async readPack(first: number): Promise<MapPack> {
    const what = `the map pack from level-0 map ${first}`;
    const blob = await this.#readBlob(mapSegmentId({ kind: "pack", first }), what);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    if (blob.length < PACK_HEADER_BYTES || view.getUint32(0, true) !== PACK_MAGIC) {
      throw new SyntaxError(`Cannot read ${what}: bad magic`);
    }
    if (view.getUint32(4, true) !== VERSION) {
      throw new SyntaxError(`Cannot read ${what}: version ${view.getUint32(4, true)} is not ${VERSION}`);
    }
    const entries = new Map<number, Uint8Array>();
    const count = view.getUint32(8, true);
    let at = PACK_HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      if (at + PACK_ENTRY_HEADER_BYTES > blob.length) throw new SyntaxError(`Cannot read ${what}: entry ${i} does not fit`);
      const id = view.getFloat64(at, true);
      const lengthBytes = view.getFloat64(at + 8, true);
      const from = at + PACK_ENTRY_HEADER_BYTES;
      if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0 || from + align8(lengthBytes) > blob.length) {
        throw new SyntaxError(`Cannot read ${what}: entry ${i} of ${lengthBytes} bytes does not fit`);
      }
      if (entries.has(id)) throw new SyntaxError(`Cannot read ${what}: segment id ${id} appears twice`);
      entries.set(id, blob.subarray(from, from + lengthBytes));
      at = from + align8(lengthBytes);
    }
    if (at !== blob.length) throw new SyntaxError(`Cannot read ${what}: ${blob.length - at} bytes follow its entries`);
    return new MapPack(what, entries);
  }

  /** Removes blobs a crash left behind that the catalogue does not name. */
  async removeExcept(keep: ReadonlySet<number>): Promise<number> {
    let removed = 0;
    for (const id of await this.#store.list()) {
      if (!keep.has(id)) {
        await this.#store.remove(id);
        removed++;
      }
    }
    return removed;
  }

  /** Writes a blob with its trailing checksum into a fresh segment and syncs it. */
  async #writeBlob(segmentId: number, blob: Uint8Array): Promise<void> {
    const body = blob.subarray(0, blob.length - CHECKSUM_BYTES);
    new DataView(blob.buffer).setBigUint64(blob.length - CHECKSUM_BYTES, this.#checksum.hash64(body), true);
    // Blobs a crash left unfinished were removed at open (removeExcept), so the id is free.
    await this.#store.create(segmentId, blob.length);
    await this.#store.write(segmentId, 0, blob);
    await this.#store.sync(segmentId);
  }

  async #readBlob(segmentId: number, what: string): Promise<Uint8Array> {
    const sizeBytes = await this.#store.sizeOf(segmentId);
    if (sizeBytes < CHECKSUM_BYTES + 8) throw new SyntaxError(`Cannot read ${what}: only ${sizeBytes} bytes`);
    const blob = new Uint8Array(sizeBytes);
    await this.#store.read(segmentId, 0, blob);
    const body = blob.subarray(0, sizeBytes - CHECKSUM_BYTES);
    const stored = new DataView(blob.buffer).getBigUint64(sizeBytes - CHECKSUM_BYTES, true);
    if (stored !== this.#checksum.hash64(body)) {
      throw new SyntaxError(`Cannot read ${what}: checksum mismatch (the map file is corrupt)`);
    }
    return body;
  }
}

/** A level-0 map as a pack takes it. */
export interface PackLevelZero {
  readonly index: number;
  readonly levelZero: LevelZeroMap;
  readonly rows: WriteIndexSlice;
}

/** A merged or point map as a pack takes it. */
export interface PackMap {
  readonly key: MapKey;
  readonly map: DeltaMap;
}

/** A pack read back: its maps by key, decoded when asked for. */
export class MapPack {
  readonly #what: string;
  readonly #entries: ReadonlyMap<number, Uint8Array>;

  constructor(what: string, entries: ReadonlyMap<number, Uint8Array>) {
    this.#what = what;
    this.#entries = entries;
  }

  /** Segment ids of the entries (what each would be on its own), in pack order. */
  get ids(): number[] {
    return [...this.#entries.keys()];
  }

  /** The body of an entry (a blob without its checksum), for byte comparisons in tests. */
  bodyOf(id: number): Uint8Array | undefined {
    return this.#entries.get(id);
  }

  levelZero(index: number): { levelZero: LevelZeroMap; rows: WriteIndexSlice } {
    const what = `level-0 map ${index} in ${this.#what}`;
    return decodeLevelZero(this.#body(mapSegmentId({ kind: "levelZero", index }), what), what);
  }

  map(key: MapKey): DeltaMap {
    const what = `${mapName(key)} in ${this.#what}`;
    return decodeMap(this.#body(mapSegmentId(key), what), what);
  }

  #body(id: number, what: string): Uint8Array {
    const body = this.#entries.get(id);
    if (body === undefined) throw new SyntaxError(`Cannot read ${what}: the pack does not hold it`);
    return body;
  }
}

function mapName(key: MapKey): string {
  return key.kind === "merged" ? `level-${key.level} map ${key.index}` : `point map at ${key.boundary}`;
}

/** A blob with room for its trailing checksum. */
function withChecksumRoom(body: Uint8Array): Uint8Array {
  const blob = new Uint8Array(body.length + CHECKSUM_BYTES);
  blob.set(body);
  return blob;
}

/** The level-0 blob of the module doc, without its checksum. */
function encodeLevelZero(levelZero: LevelZeroMap, rows: WriteIndexSlice): Uint8Array {
  const rowCount = rows.seq.length;
  const kindBytes = align8(rowCount);
  const mapBytes = levelZero.map.encode();
  const deltas = rows.restoreDeltas.map((record) => ({ row: record.index, bytes: record.map.encode() }));
  let deltaBytes = 0;
  for (const delta of deltas) {
    if (!(delta.row >= 0 && delta.row < rowCount)) assert(false, `Restore delta of row ${delta.row} lies in the blob's rows`);
    deltaBytes += 8 + delta.bytes.length;
  }
  const total = LEVEL_ZERO_HEADER_BYTES + rowCount * 40 + kindBytes + mapBytes.length + deltaBytes;
  const blob = new Uint8Array(total);
  const view = new DataView(blob.buffer);
  view.setUint32(0, LEVEL_ZERO_MAGIC, true);
  view.setUint32(4, deltas.length === 0 ? VERSION : LEVEL_ZERO_VERSION_RESTORES, true);
  view.setUint32(8, rowCount, true);
  view.setUint32(12, deltas.length, true);
  view.setFloat64(16, levelZero.fromIndex, true);
  view.setFloat64(24, levelZero.firstSeq, true);
  view.setFloat64(32, levelZero.lastSeq, true);
  view.setFloat64(40, levelZero.endAddressBytes, true);
  let at = LEVEL_ZERO_HEADER_BYTES;
  for (const column of [rows.seq, rows.timeUs, rows.offsetBytes, rows.lengthBytes, rows.addressBytes]) {
    blob.set(new Uint8Array(column.buffer, column.byteOffset, column.byteLength), at);
    at += column.byteLength;
  }
  blob.set(rows.kind, at);
  at += kindBytes;
  blob.set(mapBytes, at);
  at += mapBytes.length;
  // Encoded maps are 16 + 24n bytes, so every field here stays 8-byte aligned.
  for (const delta of deltas) {
    view.setFloat64(at, delta.row, true);
    blob.set(delta.bytes, at + 8);
    at += 8 + delta.bytes.length;
  }
  assert(at === total, "Level-0 blob fields fill the blob");
  return blob;
}

/** Decodes a level-0 blob body (checksum already checked and cut off). */
function decodeLevelZero(blob: Uint8Array, what: string): { levelZero: LevelZeroMap; rows: WriteIndexSlice } {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < LEVEL_ZERO_HEADER_BYTES || view.getUint32(0, true) !== LEVEL_ZERO_MAGIC) {
    throw new SyntaxError(`Cannot read ${what}: bad magic`);
  }
  const version = view.getUint32(4, true);
  if (version !== VERSION && version !== LEVEL_ZERO_VERSION_RESTORES) {
    throw new SyntaxError(`Cannot read ${what}: version ${version} is not ${VERSION} or ${LEVEL_ZERO_VERSION_RESTORES}`);
  }
  const rowCount = view.getUint32(8, true);
  const deltaCount = view.getUint32(12, true);
  if (version === VERSION && deltaCount !== 0) {
    throw new SyntaxError(`Cannot read ${what}: version ${version} has no restore deltas, but it counts ${deltaCount}`);
  }
  const kindBytes = align8(rowCount);
  const mapFrom = LEVEL_ZERO_HEADER_BYTES + rowCount * 40 + kindBytes;
  if (mapFrom > blob.length) throw new SyntaxError(`Cannot read ${what}: ${rowCount} rows do not fit`);
  const column = (i: number) =>
    new Float64Array(blob.slice(LEVEL_ZERO_HEADER_BYTES + i * rowCount * 8, LEVEL_ZERO_HEADER_BYTES + (i + 1) * rowCount * 8).buffer);
  const kind = blob.slice(LEVEL_ZERO_HEADER_BYTES + rowCount * 40, LEVEL_ZERO_HEADER_BYTES + rowCount * 40 + rowCount);
  // Version 1 holds one map to the end; version 2 says how long each map is in its header.
  const mapTo = version === VERSION ? blob.length : mapFrom + DeltaMap.encodedLengthOf(blob.subarray(mapFrom));
  if (mapTo > blob.length) throw new SyntaxError(`Cannot read ${what}: its map does not fit`);
  const map = DeltaMap.decode(blob.subarray(mapFrom, mapTo));
  const restoreDeltas = decodeRestoreDeltas(blob.subarray(mapTo), { what, deltaCount, kind });
  const rows: WriteIndexSlice = {
    seq: column(0),
    timeUs: column(1),
    offsetBytes: column(2),
    lengthBytes: column(3),
    addressBytes: column(4),
    kind,
    restoreDeltas,
  };
  const fromIndex = view.getFloat64(16, true);
  const levelZero: LevelZeroMap = {
    fromIndex,
    toIndex: fromIndex + rowCount,
    firstSeq: view.getFloat64(24, true),
    lastSeq: view.getFloat64(32, true),
    endAddressBytes: view.getFloat64(40, true),
    map,
  };
  return { levelZero, rows };
}

/** The merged / point blob of the module doc, without its checksum. */
function encodeMap(map: DeltaMap): Uint8Array {
  const mapBytes = map.encode();
  const blob = new Uint8Array(8 + mapBytes.length);
  const view = new DataView(blob.buffer);
  view.setUint32(0, MERGED_MAGIC, true);
  view.setUint32(4, VERSION, true);
  blob.set(mapBytes, 8);
  return blob;
}

function decodeMap(blob: Uint8Array, what: string): DeltaMap {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 8 || view.getUint32(0, true) !== MERGED_MAGIC) {
    throw new SyntaxError(`Cannot read ${what}: bad magic`);
  }
  return DeltaMap.decode(blob.subarray(8));
}

/**
 * Decodes the restore deltas that follow a level-0 blob's map: exactly `deltaCount` of them,
 * filling `bytes`, each for a restore row of `kind` (ascending).
 */
function decodeRestoreDeltas(
  bytes: Uint8Array,
  options: { what: string; deltaCount: number; kind: Uint8Array },
): MapRecord[] {
  const { what, deltaCount, kind } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: MapRecord[] = [];
  let at = 0;
  for (let i = 0; i < deltaCount; i++) {
    if (at + 8 > bytes.length) throw new SyntaxError(`Cannot read ${what}: restore delta ${i} does not fit`);
    const row = view.getFloat64(at, true);
    const previous = records.length === 0 ? -1 : records[records.length - 1].index;
    if (!Number.isSafeInteger(row) || row <= previous || row >= kind.length || kind[row] !== journalRecordKinds.restore) {
      throw new SyntaxError(`Cannot read ${what}: restore delta ${i} names row ${row}, not a later restore row`);
    }
    const length = DeltaMap.encodedLengthOf(bytes.subarray(at + 8));
    if (at + 8 + length > bytes.length) throw new SyntaxError(`Cannot read ${what}: restore delta ${i} does not fit`);
    records.push({ index: row, map: DeltaMap.decode(bytes.subarray(at + 8, at + 8 + length)) });
    at += 8 + length;
  }
  if (at !== bytes.length) throw new SyntaxError(`Cannot read ${what}: ${bytes.length - at} bytes follow its maps`);
  return records;
}

function align8(bytes: number): number {
  return Math.ceil(bytes / 8) * 8;
}
