/**
 * One protected volume on the appliance: its journal, write index, delta-map hierarchy,
 * snapshots and images (seed 004 figure 7; seed 000 claims 1-9).
 *
 * Ingest: records arrive in seq order (the switch assigns seqs; the base copy is seq 0, before
 * seq 1), are appended to the journal (group commit) and indexed at once; they become visible
 * to images when the journal reports them durable. Every `levelZeroWritesMax` durable records
 * seal a level-0 map; the hierarchy then merges and writes point maps; all maps are persisted
 * with a catalogue, so a restart loads maps and scans only the journal tail.
 *
 * Map persistence is batched (`map_store.ts`, "Packs"): sealed maps wait in memory until
 * `mapPersistLevelZeroMin` level-0 maps or `mapPersistJournalBytesMin` journal bytes are
 * unpersisted, then go out as one pack and one catalogue replace, in the background. The
 * journal is the source of truth, so a crash before that loses no write: a restart replays
 * the journal from the end of the last persisted level-0 map, which bounds the tail it scans
 * by about three times those limits (a pack may wait for a merge being built, another be in
 * flight, while the next fills), never the whole journal. Measured before packs (300k writes
 * of 4 KiB on the Node target): the map store made 231 fdatasyncs and 152 directory syncs
 * beside the journal's 152 syncs. `settled` and `close` build and persist everything sealed.
 *
 * Building maps: sealing a level-0 map is cheap (its records, sorted), but the merged and
 * point maps it makes due are merges of up to millions of runs, and a pack encodes and hashes
 * megabytes. Done in the seal, they held the appliance's one event loop: measured with 4 KiB
 * writes through the real switch (`npm run bench -- wire`, CPU profiles), each level-1 merge
 * (65,536 writes over 1 GiB) and its pack stopped the ingest for 120-200 ms every ~1.3 s, the
 * acknowledgements stopped with it, and the switch's copy buffer filled. So the due maps wait
 * in `#builds`, in due order, and are built in the background: `limits.mapBuildStepRuns` runs
 * of a merge (`DeltaMap.startMerge`) per turn of the event loop, and a pack's encoding yields
 * a turn every MiB. Until a map is installed, images overlay the maps it merges (the
 * hierarchy's decomposition uses what is installed), so they read the same, a little slower.
 * Point maps come out at the same boundaries as in a build done at once
 * (`MapHierarchy.nextPointDue`), so the maps on disk do not depend on the builds' pace. A pack
 * waits for the maps due in its range; a build left behind by `mapPersistLevelZeroMin` seals
 * (or with more than `limits.mapBuildsQueuedMax` queued) is finished in the seal, in line:
 * the bound on memory and on the tail a restart replays.
 *
 * Restore (seed 003 [0075]: "roll forward changes ... at the user's preference"; DESIGN.md,
 * "Restore") is a marker that moves no data: "from here the state is the state after seq
 * toSeq". When the marker becomes durable its delta is synthesized from the maps — for every
 * extent where the state just before the marker and the state at toSeq read differently, a
 * run pointing where the state at toSeq reads, or a zero run where it reads zeros — and kept
 * with the marker's row of the write index, so the level-0 map of the interval holding it,
 * every merged and point map above, every cut inside the interval and every diff include it
 * like a write. The journal keeps all history, so a later restore may go back again or
 * forward (even to a point after this marker); every point before the marker stays as it was.
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { createChecksum } from "../core/checksum.ts";
import { DeltaMap, type Extent, type MapMerge, ZERO_ADDRESS_BASE_BYTES } from "../core/delta_map.ts";
import { flattenLayers } from "../core/layered_lookup.ts";
import { limits } from "../core/limits.ts";
import { checkSnapshotName, parsePoint, type Point } from "../core/point.ts";
import { formatTimeUs } from "../core/units.ts";
import { assertBlockRange, type BlockDevice } from "../io/block_device.ts";
import type { Clock } from "../io/clock.ts";
import type { SegmentStore } from "../io/segment_store.ts";
import { ConflictError, NotFoundError, PointUnavailableError } from "./errors.ts";
import { ImageDevice, type ResolvedPoint } from "./image.ts";
import { Journal, type JournalCounters } from "./journal.ts";
import { journalRecordKindName, journalRecordKinds as RecordKind } from "./journal_record.ts";
import { type LevelZeroMap, MapHierarchy, type MapKey } from "./map_hierarchy.ts";
import { type MapPack, mapSegmentId, MapStore, type PackLevelZero, type SnapshotEntry, type VolumeCatalogue } from "./map_store.ts";
import { type MarkerDetail, type TimelineInterval, type TimelineMarker, VolumeTimeline } from "./volume_timeline.ts";
import { WriteIndex, type WriteIndexSlice } from "./write_index.ts";

/** What a volume needs from outside. */
export interface VolumeDeps {
  readonly journalStore: SegmentStore;
  readonly mapStore: SegmentStore;
  readonly clock: Clock;
  readonly log?: (line: string) => void;
}

/** How a volume is created (sizes are fixed at creation; later opens use the catalogue's). */
export interface VolumeOptions {
  readonly name: string;
  readonly sizeBytes: number;
  readonly segmentSizeBytes?: number;
  readonly groupBytesMax?: number;
  readonly levelZeroWritesMax?: number;
  /** Unpersisted level-0 maps that start a pack; default `limits.mapPersistLevelZeroMin`. */
  readonly mapPersistLevelZeroMin?: number;
  /** Journal bytes under unpersisted level-0 maps that start a pack; default `limits.mapPersistJournalBytesMin`. */
  readonly mapPersistJournalBytesMin?: number;
  readonly mapFanOut?: number;
  readonly mapLevelsMax?: number;
  readonly pointMapRunsMin?: number;
  readonly pointMapGrowthDivisor?: number;
}

/** A write as the switch sends it. */
export interface WriteInput {
  readonly seq: number;
  readonly timeUs: number;
  readonly offsetBytes: number;
  readonly data: Uint8Array;
  /** XXH64 computed at the switch (end-to-end check); computed here when absent. */
  readonly checksum?: bigint;
  /** The caller already verified `checksum` against `data` (see `JournalRecordInput`). */
  readonly checksumVerified?: boolean;
}

/** A resolved point with the record it landed on, as reported to users. */
export interface PointReport extends ResolvedPoint {
  /** `write`, `baseline`, `snapshot`, ... or `base` when nothing but the base is included. */
  readonly landedOn: string;
}


const emptyPayload = new Uint8Array(0);

// A restore's zero runs sit at 2^52 + primary offset (delta_map.ts), so every offset of the
// largest volume must stay below 2^52.
assert(limits.volumeBytesMax <= ZERO_ADDRESS_BASE_BYTES, "Volumes fit below the zero addresses of delta maps");

/** A protected volume's history on the appliance. */
export class Volume {
  readonly name: string;
  readonly sizeBytes: number;
  readonly #deps: VolumeDeps;
  readonly #journal: Journal;
  readonly #maps: MapStore;
  readonly #index: WriteIndex;
  readonly #hierarchy: MapHierarchy;
  readonly #levelZeroWritesMax: number;
  readonly #catalogueBase: Omit<VolumeCatalogue, "levelZeroCount" | "pointBoundaries" | "snapshots" | "packs">;
  readonly #persistLevelZeroMin: number;
  readonly #persistJournalBytesMin: number;
  /** Level-0 maps the catalogue on disk names. */
  #persistedLevelZeroCount: number;
  /** Level-0 maps handed to a persist task (persisted, or on their way). */
  #queuedLevelZeroCount: number;
  /** First level-0 index of each pack the catalogue on disk names. */
  readonly #packs: number[];
  /** Point-map boundaries the catalogue on disk names. */
  readonly #persistedPointBoundaries: number[];
  /** Merged and point maps built at seals, not yet handed to a persist task, oldest first. */
  readonly #unqueuedMaps: { key: MapKey; map: DeltaMap; dueAtLevelZeroCount: number }[] = [];
  /**
   * Merged and point maps due but not built yet, oldest first (module doc, "Building maps"):
   * the head's merge runs a step at a time between turns of the event loop.
   */
  readonly #builds: { key: MapKey; dueAtLevelZeroCount: number; merge: MapMerge | null }[] = [];
  /** Whether the loop that runs `#builds` is scheduled. */
  #building = false;
  /** The persist task waiting for the builds of its pack's maps (`#builtThrough`). */
  #builtWaiter: { levelZeroCount: number; resolve: () => void; reject: (error: unknown) => void } | null = null;
  readonly #snapshots = new Map<string, SnapshotEntry>();
  readonly #timeline = new VolumeTimeline();
  #retention: { window: string; keep: string } | undefined;
  /** Markers whose payload matters once durable: row index → payload. */
  readonly #pendingMarkers = new Map<number, { kind: number; payload: Uint8Array }>();
  #durableRows = 0;
  /** Data bytes of the durable records (writes and baseline chunks). */
  #bytesIngested = 0;
  /** The one record object handed to the journal on the fast path (no allocation per write). */
  readonly #record: {
    kind: number;
    seq: number;
    timeUs: number;
    offsetBytes: number;
    payload: Uint8Array;
    payloadChecksum: bigint | undefined;
    payloadChecksumVerified: boolean;
  } = {
    kind: 0,
    seq: 0,
    timeUs: 0,
    offsetBytes: 0,
    payload: emptyPayload,
    payloadChecksum: undefined,
    payloadChecksumVerified: false,
  };
  #lastTimeUs: number;
  #nextSeq: number;
  #persistChain: Promise<void> = Promise.resolve();
  #persistError: unknown = undefined;
  #closed = false;

  private constructor(init: {
    deps: VolumeDeps;
    journal: Journal;
    maps: MapStore;
    index: WriteIndex;
    hierarchy: MapHierarchy;
    catalogue: VolumeCatalogue;
    options: VolumeOptions;
  }) {
    this.#deps = init.deps;
    this.#journal = init.journal;
    this.#maps = init.maps;
    this.#index = init.index;
    this.#hierarchy = init.hierarchy;
    const { levelZeroCount, pointBoundaries, snapshots, markers, retention, packs, ...base } = init.catalogue;
    this.#catalogueBase = base;
    this.#persistLevelZeroMin = init.options.mapPersistLevelZeroMin ?? limits.mapPersistLevelZeroMin;
    this.#persistJournalBytesMin = init.options.mapPersistJournalBytesMin ?? limits.mapPersistJournalBytesMin;
    assert(this.#persistLevelZeroMin >= 1 && this.#persistJournalBytesMin >= 0, "Bad map persistence options");
    this.#persistedLevelZeroCount = this.#queuedLevelZeroCount = levelZeroCount;
    this.#packs = [...(packs ?? [])];
    this.#persistedPointBoundaries = [...pointBoundaries];
    this.name = base.name;
    this.sizeBytes = base.sizeBytes;
    this.#levelZeroWritesMax = base.levelZeroWritesMax;
    for (const snapshot of snapshots) this.#snapshots.set(snapshot.name, snapshot);
    for (const marker of markers ?? []) this.#timeline.add(marker);
    this.#retention = retention;
    this.#durableRows = init.index.count;
    for (let row = 0; row < init.index.count; row++) this.#bytesIngested += init.index.lengthBytes[row];
    const last = init.index.count - 1;
    this.#lastTimeUs = last >= 0 ? init.index.timeUs[last] : base.createdTimeUs;
    this.#nextSeq = last >= 0 ? init.index.seq[last] + 1 : 1;
    this.#journal.onDurable((_seq, addressBytes) => this.#onDurable(addressBytes));
  }

  /**
   * Opens a volume's stores: creates the volume when the map store has no catalogue, else
   * loads the maps and replays only the journal tail after the last sealed level-0 map.
   */
  static async open(deps: VolumeDeps, options: VolumeOptions): Promise<Volume> {
    const checksum = await createChecksum();
    const maps = new MapStore(deps.mapStore, checksum, { nextTurn: () => deps.clock.nextTurn() });
    let catalogue = await maps.readCatalogue();
    if (catalogue === null) {
      catalogue = Volume.#newCatalogue(deps, options);
      await maps.writeCatalogue(catalogue);
    } else if (catalogue.sizeBytes !== options.sizeBytes || catalogue.name !== options.name) {
      throw new ConflictError(
        `Cannot open volume "${options.name}" of ${options.sizeBytes} bytes: the store holds ` +
          `volume "${catalogue.name}" of ${catalogue.sizeBytes} bytes`,
      );
    }
    const hierarchy = new MapHierarchy({
      fanOut: catalogue.mapFanOut,
      levelsMax: catalogue.mapLevelsMax,
      pointMapRunsMin: options.pointMapRunsMin ?? limits.pointMapRunsMin,
      pointMapGrowthDivisor: options.pointMapGrowthDivisor ?? limits.pointMapGrowthDivisor,
    });
    const index = new WriteIndex();
    const keep = await Volume.#loadMaps(maps, catalogue, hierarchy, index);
    const removed = await maps.removeExcept(keep);
    if (removed > 0) deps.log?.(`Volume ${catalogue.name}: removed ${removed} map files a crash left unfinished`);

    const lastLevelZero = hierarchy.levelZero[hierarchy.levelZeroCount - 1];
    const pendingMarkers: { row: number; kind: number; payload: Uint8Array }[] = [];
    const journal = await Journal.open({ store: deps.journalStore, log: deps.log, clock: deps.clock }, {
      segmentSizeBytes: catalogue.segmentSizeBytes,
      groupBytesMax: options.groupBytesMax,
      recoverFromAddressBytes: lastLevelZero?.endAddressBytes,
      recoverFromSeq: lastLevelZero?.lastSeq,
      onRecord: (record) => {
        const isWrite = record.kind === RecordKind.write || record.kind === RecordKind.baseline;
        const row = index.push(
          record.kind,
          record.seq,
          record.timeUs,
          isWrite ? record.offsetBytes : record.payload.length,
          isWrite ? record.payload.length : 0,
          record.payloadAddressBytes,
        );
        if (!isWrite) pendingMarkers.push({ row, kind: record.kind, payload: record.payload.slice() });
      },
    });
    const volume = new Volume({ deps, journal, maps, index, hierarchy, catalogue, options });
    for (const marker of pendingMarkers) volume.#applyMarker(marker.row, marker.kind, marker.payload);
    volume.#sealDue();
    return volume;
  }

  static #newCatalogue(deps: VolumeDeps, options: VolumeOptions): VolumeCatalogue {
    if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0 || options.sizeBytes % 512 !== 0) {
      throw new RangeError(`Cannot create volume "${options.name}": size ${options.sizeBytes} is not a positive multiple of 512 bytes`);
    }
    if (options.sizeBytes > limits.volumeBytesMax) {
      throw new RangeError(`Cannot create volume "${options.name}": ${options.sizeBytes} bytes is over the ${limits.volumeBytesMax}-byte limit`);
    }
    return {
      version: 1,
      name: options.name,
      sizeBytes: options.sizeBytes,
      createdTimeUs: deps.clock.nowUs(),
      levelZeroWritesMax: options.levelZeroWritesMax ?? limits.levelZeroWritesMax,
      mapFanOut: options.mapFanOut ?? limits.mapFanOut,
      mapLevelsMax: options.mapLevelsMax ?? limits.mapLevelsMax,
      segmentSizeBytes: options.segmentSizeBytes ?? limits.journalSegmentBytes,
      levelZeroCount: 0,
      pointBoundaries: [],
      snapshots: [],
      packs: [],
    };
  }

  /**
   * Loads every catalogued map into the hierarchy (from packs, or from a segment each before
   * the first pack); returns the segment ids in use.
   */
  static async #loadMaps(
    maps: MapStore,
    catalogue: VolumeCatalogue,
    hierarchy: MapHierarchy,
    index: WriteIndex,
  ): Promise<Set<number>> {
    const keep = new Set<number>();
    const points = new Set(catalogue.pointBoundaries);
    const packs = catalogue.packs ?? [];
    for (let i = 0; i < packs.length; i++) {
      if (!Number.isSafeInteger(packs[i]) || packs[i] < (i === 0 ? 0 : packs[i - 1] + 1) || packs[i] >= catalogue.levelZeroCount) {
        throw new SyntaxError(
          `Cannot read the map catalogue: pack ${i} starts at level-0 map ${packs[i]}, not after the previous pack ` +
            `and before the ${catalogue.levelZeroCount} level-0 maps`,
        );
      }
    }
    let pack: MapPack | undefined;
    let packsRead = 0;
    for (let i = 0; i < catalogue.levelZeroCount; i++) {
      if (packsRead < packs.length && packs[packsRead] === i) {
        pack = await maps.readPack(i);
        keep.add(mapSegmentId({ kind: "pack", first: i }));
        packsRead++;
      }
      const readMap = async (key: MapKey) => {
        if (pack !== undefined) return pack.map(key);
        keep.add(mapSegmentId(key));
        return await maps.readMap(key);
      };
      let levelZero: { levelZero: LevelZeroMap; rows: WriteIndexSlice };
      if (pack !== undefined) {
        levelZero = pack.levelZero(i);
      } else {
        levelZero = await maps.readLevelZero(i);
        keep.add(mapSegmentId({ kind: "levelZero", index: i }));
      }
      index.pushSlice(levelZero.rows);
      for (const key of hierarchy.addLevelZero(levelZero.levelZero)) {
        if (key.kind === "merged") hierarchy.install(key, await readMap(key));
      }
      if (points.has(i + 1)) {
        const key: MapKey = { kind: "point", boundary: i + 1 };
        hierarchy.install(key, await readMap(key));
      }
    }
    return keep;
  }

  // ---- Ingest ------------------------------------------------------------------------------

  /** The seq the next write or marker must carry. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Appends a chunk of the initial full copy (seq 0; only before any seq >= 1). */
  appendBaseline(offsetBytes: number, data: Uint8Array): Promise<number> {
    if (this.#nextSeq !== 1) {
      throw new ConflictError(`Cannot append to the base of volume "${this.name}": writes have started`);
    }
    this.#checkWrite(offsetBytes, data);
    return this.#append(RecordKind.baseline, { seq: 0, timeUs: this.#deps.clock.nowUs(), offsetBytes, data });
  }

  /**
   * Journals the initial full copy of `source` (seed 004 [0048]: without it the volume cannot
   * be shown as it was at time zero) as baseline records, and resolves when it is durable.
   * Chunks that are all zeros are skipped: a never-written block reads as zeros anyway.
   *
   * @returns the bytes journaled (what was not zero).
   */
  async appendBaselineFrom(
    source: BlockDevice,
    options: { chunkBytes?: number; onProgress?: (doneBytes: number, totalBytes: number) => void } = {},
  ): Promise<number> {
    if (source.sizeBytes !== this.sizeBytes) {
      throw new RangeError(
        `Cannot copy a ${source.sizeBytes}-byte device into volume "${this.name}" of ${this.sizeBytes} bytes`,
      );
    }
    const chunkBytes = options.chunkBytes ?? 1024 * 1024;
    assert(chunkBytes % 512 === 0 && chunkBytes <= limits.writeBytesMax, `Bad baseline chunk of ${chunkBytes} bytes`);
    const chunk = new Uint8Array(chunkBytes);
    let journaledBytes = 0;
    for (let offsetBytes = 0; offsetBytes < this.sizeBytes; offsetBytes += chunkBytes) {
      const view = chunk.subarray(0, Math.min(chunkBytes, this.sizeBytes - offsetBytes));
      await source.read(offsetBytes, view);
      if (!isAllZero(view)) {
        await this.appendBaseline(offsetBytes, view);
        journaledBytes += view.length;
      }
      options.onProgress?.(offsetBytes + view.length, this.sizeBytes);
    }
    await this.flush();
    return journaledBytes;
  }

  /**
   * Appends a host write. Resolves when it is in the journal's group buffer (not yet
   * durable: see {@link onDurable} and {@link flush}).
   *
   * @throws {RangeError} or {@link ConflictError} synchronously for a bad write or seq; nothing
   * is appended.
   */
  appendWrite(write: WriteInput): Promise<number> {
    this.#checkSeq(write.seq);
    this.#checkWrite(write.offsetBytes, write.data);
    return this.#append(RecordKind.write, write);
  }

  /**
   * Appends a host write now, without a promise: the journal address of its data, or -1 when
   * the journal's group buffers are full (then nothing was appended: retry with
   * {@link appendWrite}). The receive loop of the appliance uses this for whole batches.
   *
   * @throws {RangeError} or {@link ConflictError} for a bad write or seq; nothing is appended.
   */
  tryAppendWrite(write: WriteInput): number {
    this.#checkSeq(write.seq);
    this.#checkWrite(write.offsetBytes, write.data);
    return this.#tryAppend(RecordKind.write, write);
  }

  /**
   * Appends a marker (snapshot, gap, ...) with a small JSON payload. A `restore` marker's
   * payload is `{toSeq}` (see {@link appendRestore}); `toSeq` may name a record appended but
   * not yet durable, since the marker cannot become durable before it.
   *
   * @throws {ConflictError} for a seq that is not the next, {@link PointUnavailableError} for
   * a restore to a seq before the retained range, RangeError for a payload over the limit or
   * a restore without an integer `toSeq` before the marker; nothing is appended.
   */
  appendMarker(marker: { seq: number; timeUs: number; kind: number; payload?: unknown }): Promise<number> {
    this.#checkSeq(marker.seq);
    assert(marker.kind !== RecordKind.write && marker.kind !== RecordKind.baseline, "A marker is not a write");
    if (marker.kind === RecordKind.restore) this.#checkRestoreTarget(marker.seq, marker.payload);
    const payload = new TextEncoder().encode(JSON.stringify(marker.payload ?? {}));
    if (payload.length > limits.markerPayloadBytesMax) {
      throw new RangeError(`Cannot append a marker of ${payload.length} bytes: the limit is ${limits.markerPayloadBytesMax}`);
    }
    return this.#append(marker.kind, { seq: marker.seq, timeUs: marker.timeUs, offsetBytes: 0, data: payload });
  }

  /**
   * Appends a restore marker at `seq`: from it on the volume's state is the state at `toPoint`
   * (resolved now, among durable points), and later writes land on that state. No data is
   * copied: the marker's delta is synthesized from the maps when it becomes durable (module
   * docs). Resolves, like {@link appendMarker}, when the marker is in the journal's buffer;
   * {@link flush} makes it durable. The payload records `{toSeq}` and, for text, the POINT.
   *
   * @throws {ConflictError} for a seq that is not the next, SyntaxError for text that is not
   * a POINT, {@link PointUnavailableError} for a point outside the retained range; nothing
   * is appended.
   * @example
   * ```ts
   * await volume.appendRestore({ seq: volume.nextSeq, timeUs: clock.nowUs(), toPoint: "snap:before-upgrade" });
   * await volume.flush();
   * volume.openImage("head"); // reads as snap:before-upgrade did
   * ```
   */
  appendRestore(restore: { seq: number; timeUs: number; toPoint: Point | string }): Promise<number> {
    this.#checkSeq(restore.seq);
    const target = this.resolvePoint(restore.toPoint);
    const payload = typeof restore.toPoint === "string"
      ? { toSeq: target.seq, point: restore.toPoint }
      : { toSeq: target.seq };
    return this.appendMarker({ seq: restore.seq, timeUs: restore.timeUs, kind: RecordKind.restore, payload });
  }

  /**
   * Takes a snapshot: a marker at the next seq (SPEC: no data moved). Resolves when the marker
   * is durable, with the snapshot as recorded.
   */
  async snapshot(name: string): Promise<SnapshotEntry> {
    checkSnapshotName(name);
    if (this.#snapshots.has(name)) throw new ConflictError(`Snapshot "${name}" of volume "${this.name}" exists`);
    const seq = this.#nextSeq;
    await this.appendMarker({ seq, timeUs: this.#deps.clock.nowUs(), kind: RecordKind.snapshot, payload: { name } });
    await this.flush();
    const entry = this.#snapshots.get(name);
    assert(entry !== undefined && entry.seq === seq, `Snapshot "${name}" was not recorded`);
    return entry;
  }

  /** Removes a snapshot name (a marker; the state stays reachable while in the window). */
  async removeSnapshot(name: string): Promise<void> {
    if (!this.#snapshots.has(name)) throw new NotFoundError(`Snapshot "${name}" of volume "${this.name}" does not exist`);
    await this.appendMarker({
      seq: this.#nextSeq,
      timeUs: this.#deps.clock.nowUs(),
      kind: RecordKind.snapshotRemoved,
      payload: { name },
    });
    await this.flush();
  }

  /** Snapshots, oldest first. */
  snapshots(): SnapshotEntry[] {
    return [...this.#snapshots.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Resolves when everything appended so far is durable (and indexed). */
  async flush(): Promise<void> {
    await this.#journal.flush();
    this.#throwIfPersistFailed();
  }

  /**
   * Registers a listener told the highest durable seq after each group commit (what the
   * appliance acknowledges to the switch). Returns a function that unregisters it.
   */
  onDurable(listener: (seq: number) => void): () => void {
    return this.#journal.onDurable((seq) => listener(seq));
  }

  #checkSeq(seq: number): void {
    if (seq !== this.#nextSeq) {
      throw new ConflictError(`Cannot append seq ${seq} to volume "${this.name}": the next seq is ${this.#nextSeq}`);
    }
  }

  /** A restore marker at `seq` must name an integer `toSeq` in the retained range before it. */
  #checkRestoreTarget(seq: number, payload: unknown): void {
    const toSeq = payload !== null && typeof payload === "object" ? (payload as { toSeq?: unknown }).toSeq : undefined;
    if (typeof toSeq !== "number" || !Number.isSafeInteger(toSeq)) {
      throw new RangeError(
        `Cannot append a restore marker at seq ${seq} to volume "${this.name}": its payload needs toSeq, ` +
          `the integer seq to restore to (got ${JSON.stringify(toSeq) ?? "nothing"})`,
      );
    }
    if (toSeq >= seq) {
      throw new RangeError(
        `Cannot restore volume "${this.name}" to seq:${toSeq} at seq ${seq}: the point restored to must come before the marker`,
      );
    }
    if (toSeq < this.window().from.seq) throw this.#pointUnavailable(`seq:${toSeq}`);
  }

  #checkWrite(offsetBytes: number, data: Uint8Array): void {
    if (this.#closed) throw new Error(`Cannot write to volume "${this.name}": it is closed`);
    if (data.length === 0 || data.length > limits.writeBytesMax) {
      throw new RangeError(`Cannot journal a write of ${data.length} bytes: the limit is 1 to ${limits.writeBytesMax}`);
    }
    assertBlockRange(this.sizeBytes, offsetBytes, data.length);
  }

  /**
   * Fast path: appends now or returns -1 when the journal's buffers are full. `record` is a
   * write as the caller passed it (no copy, no allocation); for markers `data` is the payload.
   */
  #tryAppend(kind: number, record: WriteInput): number {
    // SPEC: timestamps are non-decreasing per volume; a switch clock that steps back is clamped.
    const clampedTimeUs = Math.max(record.timeUs, this.#lastTimeUs);
    const input = this.#record;
    input.kind = kind;
    input.seq = record.seq;
    input.timeUs = clampedTimeUs;
    input.offsetBytes = record.offsetBytes;
    input.payload = record.data;
    input.payloadChecksum = record.checksum;
    input.payloadChecksumVerified = record.checksumVerified ?? false;
    let addressBytes: number;
    try {
      addressBytes = this.#journal.tryAppend(input);
    } finally {
      input.payload = emptyPayload;
    }
    if (addressBytes >= 0) this.#indexRecord(kind, record, clampedTimeUs, addressBytes);
    return addressBytes;
  }

  async #append(kind: number, record: WriteInput): Promise<number> {
    const fastAddressBytes = this.#tryAppend(kind, record);
    if (fastAddressBytes >= 0) return fastAddressBytes;
    // Slow path: wait for buffer space. Seq and time are taken now, so a caller may pipeline
    // the next seq while this one waits; the journal keeps waiters in order.
    const clampedTimeUs = Math.max(record.timeUs, this.#lastTimeUs);
    this.#lastTimeUs = clampedTimeUs;
    if (kind !== RecordKind.baseline) this.#nextSeq = record.seq + 1;
    const addressBytes = await this.#journal.append({
      kind,
      seq: record.seq,
      timeUs: clampedTimeUs,
      offsetBytes: record.offsetBytes,
      payload: record.data,
      payloadChecksum: record.checksum,
      payloadChecksumVerified: record.checksumVerified ?? false,
    });
    this.#indexRecord(kind, record, clampedTimeUs, addressBytes);
    return addressBytes;
  }

  /**
   * Adds an appended record to the write index (journal order). Positional arguments on
   * purpose: this runs once per write, and an options object would allocate each time.
   */
  #indexRecord(kind: number, record: WriteInput, timeUs: number, addressBytes: number): void {
    const isWrite = kind === RecordKind.write || kind === RecordKind.baseline;
    const row = this.#index.push(
      kind,
      record.seq,
      timeUs,
      isWrite ? record.offsetBytes : record.data.length,
      isWrite ? record.data.length : 0,
      addressBytes,
    );
    if (!isWrite) this.#pendingMarkers.set(row, { kind, payload: record.data.slice() });
    if (timeUs > this.#lastTimeUs) this.#lastTimeUs = timeUs;
    if (kind !== RecordKind.baseline && record.seq >= this.#nextSeq) this.#nextSeq = record.seq + 1;
  }

  #onDurable(durableAddressBytes: number): void {
    const index = this.#index;
    let rows = this.#durableRows;
    while (rows < index.count && index.addressBytes[rows] < durableAddressBytes) {
      this.#bytesIngested += index.lengthBytes[rows]; // 0 for markers
      const marker = this.#pendingMarkers.get(rows);
      if (marker !== undefined) {
        this.#pendingMarkers.delete(rows);
        this.#applyMarker(rows, marker.kind, marker.payload);
      }
      rows++;
    }
    this.#durableRows = rows;
    this.#sealDue();
  }

  #applyMarker(row: number, kind: number, payload: Uint8Array): void {
    const detail = parseMarkerDetail(payload);
    if (kind === RecordKind.restore) this.#index.setRestoreDelta(row, this.#restoreDeltaOfRow(row, detail.toSeq));
    this.#timeline.add({
      seq: this.#index.seq[row],
      timeUs: this.#index.timeUs[row],
      kind: journalRecordKindName(kind) ?? `kind ${kind}`,
      detail,
    });
    if (kind !== RecordKind.snapshot && kind !== RecordKind.snapshotRemoved) return;
    const name = detail.name;
    if (typeof name !== "string") {
      this.#deps.log?.(`Volume ${this.name}: ignoring a snapshot marker without a name at seq ${this.#index.seq[row]}`);
      return;
    }
    if (kind === RecordKind.snapshot) {
      this.#snapshots.set(name, { name, seq: this.#index.seq[row], timeUs: this.#index.timeUs[row] });
    } else {
      this.#snapshots.delete(name);
    }
  }

  /**
   * The delta of the restore marker at `row` (module docs). Only the extents changed between
   * the point restored to and the marker can differ, so only those are resolved in both
   * states; the rest of the volume is not looked at. `appendMarker` checked `toSeq`; a record
   * that fails the check anyway (journaled before restores took effect) changes nothing.
   */
  #restoreDeltaOfRow(row: number, toSeq: unknown): DeltaMap {
    const index = this.#index;
    const seq = index.seq[row];
    if (typeof toSeq !== "number" || !Number.isSafeInteger(toSeq) || toSeq < 0 || toSeq >= seq) {
      this.#deps.log?.(`Volume ${this.name}: the restore marker at seq ${seq} names no earlier seq (${String(toSeq)}); it changes nothing`);
      return DeltaMap.empty();
    }
    const targetRowEnd = index.lastIndexAtOrBeforeSeq(toSeq, row) + 1;
    const changed = this.#changedExtents(targetRowEnd, row);
    if (changed.length === 0) return DeltaMap.empty();
    const target = flattenLayers(this.#layersForRowEnd(targetRowEnd), changed);
    const current = flattenLayers(this.#layersForRowEnd(row), changed);
    return DeltaMap.restoreDelta(current, target, { seq });
  }

  /**
   * Seals full level-0 maps from durable rows, queues the maps that become due to be built
   * (in the background, `#buildSteps`), and queues persistence when due.
   */
  #sealDue(): void {
    while (this.#durableRows - this.#hierarchy.sealedRows >= this.#levelZeroWritesMax) {
      const fromIndex = this.#hierarchy.sealedRows;
      const toIndex = fromIndex + this.#levelZeroWritesMax;
      const levelZero: LevelZeroMap = {
        fromIndex,
        toIndex,
        firstSeq: this.#index.seq[fromIndex],
        lastSeq: this.#index.seq[toIndex - 1],
        endAddressBytes: this.#endAddressOfRow(toIndex - 1),
        map: DeltaMap.fromWrites(this.#index, { fromIndex, toIndex }),
      };
      const dueAtLevelZeroCount = this.#hierarchy.levelZeroCount + 1;
      for (const key of this.#hierarchy.addLevelZero(levelZero)) {
        // One point map on its way at a time: the policy counts runs since the newest point
        // map installed, so while one is being built its answer is stale. The next point is
        // found once that one is installed (`nextPointDue`, in `#buildSteps`).
        if (key.kind === "point" && this.#builds.some((build) => build.key.kind === "point")) continue;
        this.#builds.push({ key, dueAtLevelZeroCount, merge: null });
      }
      // Backpressure: a build left behind by a persistence group of seals (or too many
      // queued) is finished here, in line. A pack waits for the maps due in it, so this
      // bounds the journal tail a restart replays: a group more than without builds.
      const lagged = this.#hierarchy.levelZeroCount - this.#persistLevelZeroMin;
      while (this.#builds.length > 0 && (this.#builds[0].dueAtLevelZeroCount <= lagged || this.#builds.length > limits.mapBuildsQueuedMax)) {
        this.#buildSteps(limits.mapBuildStepRuns);
      }
    }
    if (this.#builds.length > 0 && !this.#building && !this.#closed) {
      this.#building = true;
      void this.#buildInBackground();
    }
    this.#persistDue(false);
  }

  /** Runs the queued builds a step each turn of the event loop, until none is left. */
  async #buildInBackground(): Promise<void> {
    try {
      while (this.#builds.length > 0 && !this.#closed) {
        await this.#deps.clock.nextTurn();
        if (this.#closed) break;
        this.#buildSteps(limits.mapBuildStepRuns);
      }
    } catch (error) {
      // A merge only fails on a broken invariant: stop persisting, as a failed write would
      // (the pack waiting for the maps fails with it, and so do settled() and close()).
      this.#persistError ??= error;
      this.#deps.log?.(`Volume ${this.name}: cannot build maps: ${(error as Error).message}`);
      const waiter = this.#builtWaiter;
      this.#builtWaiter = null;
      waiter?.reject(error);
    } finally {
      this.#building = false;
    }
  }

  /**
   * Does about `budgetRuns` runs of the queued builds, oldest first: installs each map built
   * (images use it from then on; until then they overlay the maps it merges) and queues its
   * persistence.
   */
  #buildSteps(budgetRuns: number): void {
    let budget = budgetRuns;
    while (this.#builds.length > 0 && budget > 0) {
      const build = this.#builds[0];
      // Started only now: its inputs (the maps below it) are installed by the builds before it.
      const merge = build.merge ??= this.#hierarchy.startBuild(build.key);
      const chunk = Math.min(budget, limits.mapBuildStepRuns);
      budget -= chunk;
      if (!merge.step(chunk)) continue;
      this.#builds.shift();
      this.#hierarchy.install(build.key, merge.result);
      this.#unqueuedMaps.push({ key: build.key, map: merge.result, dueAtLevelZeroCount: build.dueAtLevelZeroCount });
      if (build.key.kind === "point") this.#queueNextPoint();
    }
    const waiter = this.#builtWaiter;
    if (waiter !== null && (this.#builds.length === 0 || this.#builds[0].dueAtLevelZeroCount > waiter.levelZeroCount)) {
      this.#builtWaiter = null;
      waiter.resolve();
    }
  }

  /**
   * After a point map is installed: queues the next one if the level-0 maps sealed while it
   * was built already make one due, where a build in line would have put it (so the
   * boundaries, and the maps on disk, do not depend on how fast the builds ran). `#builds`
   * stays in due order: none behind the head has started, so the new one may go before them.
   */
  #queueNextPoint(): void {
    const key = this.#hierarchy.nextPointDue();
    if (key === undefined) return;
    let at = this.#builds.length;
    while (at > 0 && this.#builds[at - 1].dueAtLevelZeroCount > key.boundary) at--;
    assert(at > 0 || this.#builds.length === 0 || this.#builds[0].merge === null, "Only unstarted builds move back");
    this.#builds.splice(at, 0, { key, dueAtLevelZeroCount: key.boundary, merge: null });
  }

  /**
   * Hands sealed maps not yet queued to persist tasks, one pack each (module doc): all of
   * them when `all`, else only once they reach the persistence limits.
   */
  #persistDue(all: boolean): void {
    const hierarchy = this.#hierarchy;
    while (this.#queuedLevelZeroCount < hierarchy.levelZeroCount) {
      const first = this.#queuedLevelZeroCount;
      const sealed = hierarchy.levelZeroCount;
      const fromAddressBytes = first === 0 ? 0 : hierarchy.levelZero[first - 1].endAddressBytes;
      const coveredBytes = hierarchy.levelZero[sealed - 1].endAddressBytes - fromAddressBytes;
      if (!all && sealed - first < this.#persistLevelZeroMin && coveredBytes < this.#persistJournalBytesMin) return;
      const end = Math.min(sealed, first + limits.mapPackLevelZeroMax);
      const levelZero: PackLevelZero[] = [];
      for (let index = first; index < end; index++) {
        const map = hierarchy.levelZero[index];
        levelZero.push({ index, levelZero: map, rows: this.#index.slice(map.fromIndex, map.toIndex) });
      }
      this.#queuedLevelZeroCount = end;
      this.#persist(async () => {
        // A pack holds the maps due inside its level-0 range (the loader reads them from it):
        // it waits for those still being built.
        await this.#builtThrough(end);
        let taken = 0;
        while (taken < this.#unqueuedMaps.length && this.#unqueuedMaps[taken].dueAtLevelZeroCount <= end) taken++;
        const maps = this.#unqueuedMaps.splice(0, taken);
        await this.#maps.writePack(first, { levelZero, maps });
        // Named in the catalogue only once the pack is durable; a crash before the catalogue
        // replace leaves a pack that the next open removes (and replays the journal instead).
        this.#packs.push(first);
        this.#persistedLevelZeroCount = end;
        for (const { key } of maps) if (key.kind === "point") this.#persistedPointBoundaries.push(key.boundary);
        await this.#maps.writeCatalogue(this.#catalogue());
      });
    }
  }

  /** Resolves once no map due at or before `levelZeroCount` level-0 maps is left to build. */
  #builtThrough(levelZeroCount: number): Promise<void> {
    if (this.#builds.length === 0 || this.#builds[0].dueAtLevelZeroCount > levelZeroCount) return Promise.resolve();
    // Persist tasks run one at a time, so one of them waits at most.
    assert(this.#builtWaiter === null, "One persist task waits for builds at a time");
    return new Promise((resolve, reject) => {
      this.#builtWaiter = { levelZeroCount, resolve, reject };
    });
  }

  /**
   * Journal address just past the record of a row (where a tail scan would resume): records
   * are 8-byte aligned, so it is the payload's end rounded up. Marker rows keep their payload
   * length in `offsetBytes` (see {@link WriteIndex}).
   */
  #endAddressOfRow(row: number): number {
    const index = this.#index;
    const payloadBytes = index.lengthBytes[row] > 0 ? index.lengthBytes[row] : index.offsetBytes[row];
    return Math.ceil((index.addressBytes[row] + payloadBytes) / 8) * 8;
  }

  /**
   * Queues a persistence task. After a failure later tasks do nothing: a catalogue must not
   * name a pack written after one that is missing.
   */
  #persist(task: () => Promise<void>): void {
    const run = () => (this.#persistError === undefined ? task() : undefined);
    this.#persistChain = this.#persistChain.then(run).catch((error) => {
      this.#persistError ??= error;
      this.#deps.log?.(`Volume ${this.name}: cannot persist maps: ${(error as Error).message}`);
    });
  }

  #throwIfPersistFailed(): void {
    if (this.#persistError !== undefined) {
      throw new Error(`Volume "${this.name}" cannot persist its maps`, { cause: this.#persistError });
    }
  }

  /** The catalogue of what is on disk (call it inside a persist task, when it is written). */
  #catalogue(): VolumeCatalogue {
    return {
      ...this.#catalogueBase,
      levelZeroCount: this.#persistedLevelZeroCount,
      pointBoundaries: [...this.#persistedPointBoundaries],
      packs: [...this.#packs],
      snapshots: this.snapshots(),
      markers: this.#timeline.markers,
      retention: this.#retention,
    };
  }

  // ---- Points and images -------------------------------------------------------------------

  /** The newest durable state. */
  get head(): { seq: number; timeUs: number } {
    const last = this.#durableRows - 1;
    if (last < 0) return { seq: 0, timeUs: this.#catalogueBase.createdTimeUs };
    return { seq: this.#index.seq[last], timeUs: this.#index.timeUs[last] };
  }

  /** The range of points that can be opened. */
  window(): { from: { seq: number; timeUs: number }; to: { seq: number; timeUs: number } } {
    const baseTimeUs = this.#durableRows > 0 && this.#index.seq[0] === 0
      ? this.#index.timeUs[0]
      : this.#catalogueBase.createdTimeUs;
    return { from: { seq: 0, timeUs: Math.min(baseTimeUs, this.#catalogueBase.createdTimeUs) }, to: this.head };
  }

  /** Durable records so far (rows of the write index). */
  get durableRecords(): number {
    return this.#durableRows;
  }

  /** Data bytes journaled durably (writes and baseline chunks; markers carry none). */
  get bytesIngested(): number {
    return this.#bytesIngested;
  }

  /** Journal bytes in use. */
  get journalBytes(): number {
    return this.#journal.endAddressBytes;
  }

  /** The journal's group writes and syncs since the volume opened (`JournalCounters`). */
  get journalCounters(): JournalCounters {
    return this.#journal.counters;
  }

  // ---- Timeline, gaps, suspect intervals, retention policy ---------------------------------

  /** Durable markers with `fromSeq <= seq <= toSeq` (at most `limit`), oldest first. */
  markers(options: { fromSeq?: number; toSeq?: number; limit?: number } = {}): TimelineMarker[] {
    return this.#timeline.between(options.fromSeq ?? 0, options.toSeq ?? Infinity, options.limit ?? Infinity);
  }

  /** Intervals whose writes were missed (SPEC guarantee 3), oldest first. */
  gaps(): TimelineInterval[] {
    return this.#timeline.gaps((seq) => {
      const row = this.#index.lastIndexAtOrBeforeSeq(seq - 1, this.#durableRows);
      return row < 0 ? this.window().from : { seq: this.#index.seq[row], timeUs: this.#index.timeUs[row] };
    });
  }

  /** States that open only with a warning: from each gap to the fix-up that repaired it. */
  suspectIntervals(): TimelineInterval[] {
    return this.#timeline.suspectIntervals();
  }

  /**
   * Why the image at a resolved point is suspect, or undefined: by its seq, and by the time
   * the POINT asked for when it was a time or relative (`requestedTimeUs`, which
   * {@link resolvePoint} sets): a time inside a gap resolves to a write that is not what the
   * primary held then.
   */
  suspectReason(point: { readonly seq: number; readonly requestedTimeUs?: number }): string | undefined {
    return this.#timeline.suspectReason(point.seq, point.requestedTimeUs);
  }

  /** The retention policy as set, or undefined for the default. */
  get retention(): { window: string; keep: string } | undefined {
    return this.#retention;
  }

  /** Records a retention policy (validated by the caller) durably in the catalogue. */
  async setRetention(policy: { window: string; keep: string }): Promise<void> {
    this.#retention = { window: policy.window, keep: policy.keep };
    this.#persist(() => this.#maps.writeCatalogue(this.#catalogue()));
    await this.settled();
  }

  /** Maps, runs and bytes of the delta-map hierarchy, and the write index's memory. */
  mapStats(): { maps: number; runs: number; memoryBytes: number; encodedBytes: number; indexBytes: number } {
    return { ...this.#hierarchy.stats(), indexBytes: this.#index.byteLength };
  }

  /**
   * Resolves a POINT (text or parsed) to the exact record it names.
   *
   * @throws {SyntaxError} for text that is not a POINT.
   * @throws {PointUnavailableError} for a point outside the retained range or an unknown snapshot.
   */
  resolvePoint(point: Point | string): PointReport {
    const parsed = typeof point === "string" ? parsePoint(point) : point;
    const window = this.window();
    switch (parsed.kind) {
      case "head":
        return this.#reportForRowEnd(this.#durableRows);
      case "seq":
        if (parsed.seq < window.from.seq || parsed.seq > window.to.seq) throw this.#pointUnavailable(`seq:${parsed.seq}`);
        return this.#reportForSeq(parsed.seq);
      case "snapshot": {
        const snapshot = this.#snapshots.get(parsed.name);
        if (snapshot === undefined) {
          const names = this.snapshots().map((s) => s.name);
          throw new PointUnavailableError(
            `Snapshot "${parsed.name}" of volume "${this.name}" does not exist` +
              (names.length > 0 ? `; snapshots: ${names.join(", ")}` : "; it has no snapshots"),
            { from: `seq:${window.from.seq}`, to: `seq:${window.to.seq}` },
          );
        }
        return this.#reportForSeq(snapshot.seq);
      }
      case "time":
      case "relative": {
        const timeUs = parsed.kind === "time" ? parsed.timeUs : this.#deps.clock.nowUs() - parsed.agoUs;
        if (timeUs < window.from.timeUs || timeUs > this.#deps.clock.nowUs() + 1_000_000) {
          throw this.#pointUnavailable(formatTimeUs(timeUs));
        }
        const row = this.#index.lastIndexAtOrBeforeTime(timeUs, this.#durableRows);
        return { ...this.#reportForSeq(row < 0 ? 0 : this.#index.seq[row]), requestedTimeUs: timeUs };
      }
    }
  }

  /** The error for a point outside the retained range, naming the range. */
  #pointUnavailable(what: string): PointUnavailableError {
    const window = this.window();
    return new PointUnavailableError(
      `Point ${what} of volume "${this.name}" is outside the retained range ` +
        `seq:${window.from.seq} (${formatTimeUs(window.from.timeUs)}) to seq:${window.to.seq} (${formatTimeUs(window.to.timeUs)})`,
      { from: `seq:${window.from.seq}`, to: `seq:${window.to.seq}` },
    );
  }

  #reportForSeq(seq: number): PointReport {
    return this.#reportForRowEnd(this.#index.lastIndexAtOrBeforeSeq(seq, this.#durableRows) + 1);
  }

  #reportForRowEnd(rowEnd: number): PointReport {
    if (rowEnd === 0) {
      return { seq: 0, timeUs: this.window().from.timeUs, rowEnd: 0, landedOn: "base" };
    }
    const row = rowEnd - 1;
    return {
      seq: this.#index.seq[row],
      timeUs: this.#index.timeUs[row],
      rowEnd,
      landedOn: journalRecordKindName(this.#index.kind[row]) ?? "record",
    };
  }

  /**
   * Opens the image at a point: a read-only BlockDevice, no data copied.
   *
   * @throws {PointUnavailableError} when the point is not retained.
   */
  openImage(point: Point | string): ImageDevice {
    const resolved = this.resolvePoint(point);
    return new ImageDevice((addressBytes, target) => this.#journal.read(addressBytes, target), {
      sizeBytes: this.sizeBytes,
      layers: this.#layersForRowEnd(resolved.rowEnd),
      point: resolved,
    });
  }

  /** Maps whose overlay is the state after rows [0, rowEnd), newest first. */
  #layersForRowEnd(rowEnd: number): DeltaMap[] {
    const sealed = this.#hierarchy.levelZeroCountBefore(rowEnd);
    const layers = this.#hierarchy.layersFor(sealed);
    const cutFrom = sealed === 0 ? 0 : this.#hierarchy.levelZero[sealed - 1].toIndex;
    if (cutFrom < rowEnd) layers.unshift(DeltaMap.fromWrites(this.#index, { fromIndex: cutFrom, toIndex: rowEnd }));
    return layers;
  }

  /**
   * The extents written between two points: what differs between their images (a superset
   * when a later write put back the same bytes). Ascending, merged. A restore marker between
   * them counts with the extents its delta changed.
   */
  diff(from: Point | string, to: Point | string): { from: PointReport; to: PointReport; extents: Extent[] } {
    const a = this.resolvePoint(from);
    const b = this.resolvePoint(to);
    const [low, high] = a.rowEnd <= b.rowEnd ? [a.rowEnd, b.rowEnd] : [b.rowEnd, a.rowEnd];
    return { from: a, to: b, extents: this.#changedExtents(low, high) };
  }

  /** The extents rows [low, high) changed (writes and restore deltas), ascending, merged. */
  #changedExtents(low: number, high: number): Extent[] {
    const changed = DeltaMap.mergeAll(this.#layersBetweenRows(low, high).reverse());
    const extents: Extent[] = [];
    changed.forEachRun((offsetBytes, lengthBytes, addressBytes) => {
      if (addressBytes < 0) return;
      const last = extents[extents.length - 1];
      if (last !== undefined && last.offsetBytes + last.lengthBytes === offsetBytes) last.lengthBytes += lengthBytes;
      else extents.push({ offsetBytes, lengthBytes });
    });
    return extents;
  }

  /** Maps whose overlay is the change made by rows [low, high), newest first. */
  #layersBetweenRows(low: number, high: number): DeltaMap[] {
    const hierarchy = this.#hierarchy;
    const before = hierarchy.levelZeroCountBefore(low);
    const straddles = before < hierarchy.levelZeroCount && hierarchy.levelZero[before].fromIndex < low;
    const startFull = straddles ? before + 1 : before;
    const endFull = hierarchy.levelZeroCountBefore(high);
    const cut = (fromIndex: number, toIndex: number) => DeltaMap.fromWrites(this.#index, { fromIndex, toIndex });
    if (endFull <= startFull) return low < high ? [cut(low, high)] : [];
    const layers: DeltaMap[] = [];
    const tailFrom = hierarchy.levelZero[endFull - 1].toIndex;
    if (tailFrom < high) layers.push(cut(tailFrom, high));
    layers.push(...hierarchy.layersBetween(startFull, endFull));
    const headTo = hierarchy.levelZero[startFull].fromIndex;
    if (low < headTo) layers.push(cut(low, headTo));
    return layers;
  }

  // ---- Lifecycle ---------------------------------------------------------------------------

  /** Flushes the journal, persists every sealed map, closes the stores' users. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#journal.flush();
    this.#buildSteps(Infinity);
    this.#persistDue(true);
    await this.#persistChain;
    this.#closed = true;
    await this.#journal.close();
    this.#throwIfPersistFailed();
  }

  /** Builds and persists every sealed map and waits for it (tests, benchmarks). */
  async settled(): Promise<void> {
    this.#buildSteps(Infinity);
    this.#persistDue(true);
    await this.#persistChain;
    this.#throwIfPersistFailed();
  }
}

/** True when every byte is zero (word-wise where the view is aligned). */
function isAllZero(bytes: Uint8Array): boolean {
  const words = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) : undefined;
  let i = 0;
  if (words !== undefined) {
    for (; i < words.length; i++) if (words[i] !== 0) return false;
    i *= 4;
  }
  for (; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** A marker's JSON payload as an object of scalars; anything else is kept as `{raw}` text. */
function parseMarkerDetail(payload: Uint8Array): MarkerDetail {
  const text = new TextDecoder().decode(payload);
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      const detail: { [key: string]: string | number | boolean | null } = {};
      for (const [key, value] of Object.entries(parsed)) {
        if (value === null || ["string", "number", "boolean"].includes(typeof value)) {
          detail[key] = value as string | number | boolean | null;
        }
      }
      return detail;
    }
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  return { raw: text.slice(0, 256) };
}

export { RecordKind };
