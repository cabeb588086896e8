/**
 * Proves batched map persistence (map_store.ts "Packs", volume.ts): sealed maps are written
 * as one pack and one catalogue replace per group, so a crash at any moment before that
 * loses no write (the journal is the source of truth and its tail is replayed), a restart
 * after a crash scans a journal tail bounded by the persistence limits (never the whole
 * journal), a pack that a crash left unnamed by the catalogue is removed, and a store laid
 * out before packs (a segment per map) still opens. Images are compared with a naive replay
 * of the writes; journal bytes read at open come from the in-memory store's counters. The
 * volume also hands its clock to the journal, so `journalCounters` times its group writes
 * and syncs.
 */
import { describe, expect, it } from "vitest";
import { mapSegmentId, MapStore } from "../../src/appliance/map_store.ts";
import { Volume } from "../../src/appliance/volume.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { SeededRandom } from "../../src/io/random.ts";
import type { SegmentStore } from "../../src/io/segment_store.ts";

const KiB = 1024;
const WRITE_BYTES = 4 * KiB;
const SLOTS = 64;
const LEVEL_ZERO_WRITES = 16;
const PERSIST_EVERY = 4;
const options = {
  name: "vol",
  sizeBytes: SLOTS * WRITE_BYTES,
  segmentSizeBytes: 256 * KiB,
  groupBytesMax: 64 * KiB,
  levelZeroWritesMax: LEVEL_ZERO_WRITES,
  mapPersistLevelZeroMin: PERSIST_EVERY,
  mapPersistJournalBytesMin: 2 ** 40,
  mapFanOut: 2,
  pointMapRunsMin: 32,
};

/** The write of `seq`: slot `seq * 7 % SLOTS`, every byte `seq & 0xff`, the seq in its first 4. */
function writeOf(seq: number) {
  const data = new Uint8Array(WRITE_BYTES).fill(seq & 0xff);
  new DataView(data.buffer).setUint32(0, seq, true);
  return { seq, timeUs: seq, offsetBytes: ((seq * 7) % SLOTS) * WRITE_BYTES, data };
}

/** The volume's bytes after writes 1..seq, by naive replay. */
function replay(seq: number): Uint8Array {
  const image = new Uint8Array(options.sizeBytes);
  for (let s = 1; s <= seq; s++) {
    const write = writeOf(s);
    image.set(write.data, write.offsetBytes);
  }
  return image;
}

async function expectReplay(volume: Volume, seqs: number[]): Promise<void> {
  for (const seq of seqs) {
    const bytes = new Uint8Array(options.sizeBytes);
    await volume.openImage(`seq:${seq}`).read(0, bytes);
    const expected = replay(seq);
    expect(bytes.every((byte, i) => byte === expected[i]), `image at seq:${seq}`).toBe(true);
  }
}

async function appendWrites(volume: Volume, fromSeq: number, toSeq: number): Promise<void> {
  for (let seq = fromSeq; seq <= toSeq; seq++) await volume.appendWrite(writeOf(seq));
}

async function catalogueOf(store: SegmentStore): Promise<{ levelZeroCount: number; packs?: number[] }> {
  return JSON.parse(new TextDecoder().decode((await store.readManifest())!));
}

/** A map store whose manifest replacements hang from `hang()` on (a crash comes first). */
class HangingManifestStore extends MemorySegmentStore {
  #hanging = false;
  hang(): void {
    this.#hanging = true;
  }
  override writeManifest(bytes: Uint8Array): Promise<void> {
    return this.#hanging ? new Promise(() => {}) : super.writeManifest(bytes);
  }
}

/** A journal store whose writes and syncs each take a fixed time on a manual clock. */
class TimedStore extends MemorySegmentStore {
  readonly #clock: ManualClock;
  constructor(clock: ManualClock) {
    super();
    this.#clock = clock;
  }
  override async write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void> {
    await super.write(segmentId, offsetBytes, source);
    this.#clock.advanceUs(100);
  }
  override async sync(segmentId: number): Promise<void> {
    await super.sync(segmentId);
    this.#clock.advanceUs(300);
  }
}

describe("journal counters", () => {
  it("count the volume's group writes and syncs and time them by the volume's clock", async () => {
    const clock = new ManualClock();
    const journalStore = new TimedStore(clock);
    const volume = await Volume.open({ journalStore, mapStore: new MemorySegmentStore(), clock }, options);
    const before = { ...journalStore.stats };
    const startUs = clock.nowUs();
    await appendWrites(volume, 1, 5);
    await volume.flush();
    const writes = journalStore.stats.writes - before.writes;
    const syncs = journalStore.stats.syncs - before.syncs;
    const elapsedUs = clock.nowUs() - startUs;
    expect(writes).toBeGreaterThan(0);
    // A write and a sync may overlap, so each stage's time holds at least its own calls' time
    // and at most all the time that passed (without the clock both would read 0).
    const { writeInFlightUs, syncInFlightUs } = volume.journalCounters;
    expect(writeInFlightUs).toBeGreaterThanOrEqual(100 * writes);
    expect(writeInFlightUs).toBeLessThanOrEqual(elapsedUs);
    expect(syncInFlightUs).toBeGreaterThanOrEqual(300 * syncs);
    expect(syncInFlightUs).toBeLessThanOrEqual(elapsedUs);
    expect(volume.journalCounters.groupWriteBytes).toBe(volume.journalBytes);
    await volume.close();
  });
});

/** A manual clock whose turns of the event loop (`nextTurn`) come only when the test says. */
class GatedTurnsClock extends ManualClock {
  readonly #waiting: (() => void)[] = [];
  override nextTurn(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  /** Lets the waiting turns through, and the work after them run. */
  async turn(): Promise<void> {
    for (const resolve of this.#waiting.splice(0)) resolve();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

describe("building merged and point maps", () => {
  it("happens between turns of the event loop, not in the seal, and images read right before and after", async () => {
    const clock = new GatedTurnsClock();
    const volume = await Volume.open({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock }, options);
    // Two level-0 maps: with a fan-out of 2 a merged map is due (and, past 32 runs, a point map).
    await appendWrites(volume, 1, 2 * LEVEL_ZERO_WRITES);
    await volume.flush();
    expect(volume.mapStats().maps).toBe(2); // sealed, merge not built yet
    await expectReplay(volume, [1, LEVEL_ZERO_WRITES, LEVEL_ZERO_WRITES + 3, 2 * LEVEL_ZERO_WRITES]);
    for (let i = 0; i < 20 && volume.mapStats().maps === 2; i++) await clock.turn();
    expect(volume.mapStats().maps).toBeGreaterThan(2);
    await expectReplay(volume, [1, LEVEL_ZERO_WRITES + 3, 2 * LEVEL_ZERO_WRITES]);
    await volume.close();
  });

  it("that fall a persistence group of seals behind are finished in the seal (no event-loop turn needed)", async () => {
    const mapStore = new MemorySegmentStore();
    const volume = await Volume.open({ journalStore: new MemorySegmentStore(), mapStore, clock: new GatedTurnsClock() }, options);
    await appendWrites(volume, 1, 2 * LEVEL_ZERO_WRITES);
    await volume.flush();
    expect(volume.mapStats().maps).toBe(2);
    // PERSIST_EVERY seals later, without a turn of the event loop, the merge due at 2 is built.
    await appendWrites(volume, 2 * LEVEL_ZERO_WRITES + 1, (2 + PERSIST_EVERY) * LEVEL_ZERO_WRITES);
    await volume.flush();
    expect(volume.mapStats().maps).toBeGreaterThan(2 + PERSIST_EVERY);
    await expectReplay(volume, [LEVEL_ZERO_WRITES, (2 + PERSIST_EVERY) * LEVEL_ZERO_WRITES]);
    // A pack waits for the maps due in it; settled() builds what is left and persists it all.
    await volume.settled();
    const catalogue = await catalogueOf(mapStore);
    expect(catalogue.levelZeroCount).toBe(2 + PERSIST_EVERY);
    await volume.close();
  });
});

describe("map persistence in packs", () => {
  it("sealed maps are persisted one pack and one catalogue per group, not per map", async () => {
    const journalStore = new MemorySegmentStore();
    const mapStore = new MemorySegmentStore();
    const volume = await Volume.open({ journalStore, mapStore, clock: new ManualClock() }, options);
    const writes = LEVEL_ZERO_WRITES * PERSIST_EVERY * 3 + LEVEL_ZERO_WRITES * 2 + 5;
    await appendWrites(volume, 1, writes);
    await volume.flush();
    await volume.settled();
    // settled() persists the two level-0 maps short of a group too.
    expect(await catalogueOf(mapStore)).toMatchObject({ levelZeroCount: PERSIST_EVERY * 3 + 2, packs: [0, 4, 8, 12] });
    expect(await mapStore.list()).toEqual([0, 4, 8, 12].map((first) => mapSegmentId({ kind: "pack", first })));
    await volume.close();
  });

  it("a crash after the journal synced but before the maps were persisted recovers every durable write", async () => {
    let journalStore = new MemorySegmentStore();
    let mapStore = new MemorySegmentStore();
    const clock = new ManualClock();
    const volume = await Volume.open({ journalStore, mapStore, clock }, options);
    // Five groups and three level-0 maps more: the last three are sealed, not persisted.
    const writes = LEVEL_ZERO_WRITES * (PERSIST_EVERY * 5 + 3) + 7;
    await appendWrites(volume, 1, writes);
    await volume.flush();
    await Promise.resolve();
    const random = new SeededRandom(7);
    journalStore = journalStore.crash(random);
    mapStore = mapStore.crash(random);
    const catalogue = await catalogueOf(mapStore);
    expect(catalogue.levelZeroCount).toBeLessThan(PERSIST_EVERY * 5 + 3);
    expect(catalogue.levelZeroCount % PERSIST_EVERY).toBe(0);
    const reopened = await Volume.open({ journalStore, mapStore, clock }, options);
    expect(reopened.head.seq).toBe(writes);
    await expectReplay(reopened, [1, 100, LEVEL_ZERO_WRITES * PERSIST_EVERY * 5 + 1, writes - 20, writes]);
    // Appending goes on from the recovered head, and the replayed maps are persisted too.
    await appendWrites(reopened, writes + 1, writes + 40);
    await reopened.close();
    const again = await Volume.open({ journalStore, mapStore, clock }, options);
    expect(again.head.seq).toBe(writes + 40);
    await expectReplay(again, [writes - 1, writes + 40]);
    await again.close();
  });

  it("a restart after a crash scans a journal tail bounded by the persistence limits, not the whole journal", async () => {
    let journalStore = new MemorySegmentStore();
    let mapStore = new MemorySegmentStore();
    const clock = new ManualClock();
    const volume = await Volume.open({ journalStore, mapStore, clock }, options);
    const writes = 2000; // ~8 MiB of journal in 32 segments
    await appendWrites(volume, 1, writes);
    await volume.flush();
    await Promise.resolve();
    const random = new SeededRandom(11);
    journalStore = journalStore.crash(random);
    mapStore = mapStore.crash(random);
    const readBefore = journalStore.stats.bytesRead;
    const reopened = await Volume.open({ journalStore, mapStore, clock }, options);
    const scannedBytes = journalStore.stats.bytesRead - readBefore;
    expect(reopened.head.seq).toBe(writes);
    // At most a group whose pack waits for a merge still being built (a build may lag a
    // group of seals), a group being persisted, a group filling and the unsealed writes, and
    // the rest of the tail's segment and the next (to tell a torn tail from corruption).
    const tailWritesMax = (3 * PERSIST_EVERY + 1) * LEVEL_ZERO_WRITES;
    expect(scannedBytes).toBeLessThan(tailWritesMax * (WRITE_BYTES + 64) + 2 * options.segmentSizeBytes);
    expect(scannedBytes).toBeLessThan((writes * WRITE_BYTES) / 4);
    await expectReplay(reopened, [writes - 100, writes]);
    await reopened.close();
  });

  it("a pack written but not yet named by the catalogue at a crash is removed at open, and its writes replayed", async () => {
    let journalStore = new MemorySegmentStore();
    const mapStore = new HangingManifestStore();
    const clock = new ManualClock();
    const logs: string[] = [];
    const volume = await Volume.open({ journalStore, mapStore, clock }, options);
    await appendWrites(volume, 1, LEVEL_ZERO_WRITES * PERSIST_EVERY);
    await volume.flush();
    await volume.settled();
    mapStore.hang();
    const writes = LEVEL_ZERO_WRITES * PERSIST_EVERY * 2 + 3;
    await appendWrites(volume, LEVEL_ZERO_WRITES * PERSIST_EVERY + 1, writes);
    await volume.flush();
    // The pack waits for its merged maps, which build between turns of the event loop.
    const pack = mapSegmentId({ kind: "pack", first: PERSIST_EVERY });
    for (let turn = 0; turn < 50 && !(await mapStore.list()).includes(pack); turn++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(await mapStore.list()).toContain(pack);
    const random = new SeededRandom(3);
    journalStore = journalStore.crash(random);
    const crashedMaps = mapStore.crash(random);
    expect(await catalogueOf(crashedMaps)).toMatchObject({ levelZeroCount: PERSIST_EVERY, packs: [0] });
    const reopened = await Volume.open({ journalStore, mapStore: crashedMaps, clock, log: (line) => logs.push(line) }, options);
    expect(logs.some((line) => /removed 1 map files/.test(line))).toBe(true);
    expect(reopened.head.seq).toBe(writes);
    await expectReplay(reopened, [PERSIST_EVERY * LEVEL_ZERO_WRITES + 2, writes]);
    await reopened.close();
  });

  it("a store with a segment per map (the layout before packs) opens, and later maps go into packs", async () => {
    const journalStore = new MemorySegmentStore();
    const packed = new MemorySegmentStore();
    const clock = new ManualClock();
    const volume = await Volume.open({ journalStore, mapStore: packed, clock }, options);
    const writes = LEVEL_ZERO_WRITES * PERSIST_EVERY * 2 + 9;
    await appendWrites(volume, 1, writes);
    await volume.close();
    // Rewrite the packs as one segment per map and a catalogue without packs.
    const catalogue = await catalogueOf(packed);
    const checksum = await createChecksum();
    const packedMaps = new MapStore(packed, checksum);
    const legacy = new MemorySegmentStore();
    const legacyMaps = new MapStore(legacy, checksum);
    const { packs: _packs, ...legacyCatalogue } = catalogue as { levelZeroCount: number; packs: number[] };
    const pointBoundaries: number[] = (catalogue as unknown as { pointBoundaries: number[] }).pointBoundaries;
    expect(pointBoundaries.length).toBeGreaterThan(0);
    let mergedMaps = 0;
    for (const first of catalogue.packs!) {
      const pack = await packedMaps.readPack(first);
      for (let index = first; index < Math.min(first + PERSIST_EVERY, catalogue.levelZeroCount); index++) {
        const { levelZero, rows } = pack.levelZero(index);
        await legacyMaps.writeLevelZero(index, levelZero, rows);
      }
      for (let level = 1; level <= 4; level++) {
        for (let index = 0; index < 64; index++) {
          const key = { kind: "merged" as const, level, index };
          if (!pack.ids.includes(mapSegmentId(key))) continue;
          await legacyMaps.writeMap(key, pack.map(key));
          mergedMaps++;
        }
      }
      for (const boundary of pointBoundaries) {
        const key = { kind: "point" as const, boundary };
        if (pack.ids.includes(mapSegmentId(key))) await legacyMaps.writeMap(key, pack.map(key));
      }
    }
    expect(mergedMaps).toBeGreaterThan(0);
    await legacy.writeManifest(new TextEncoder().encode(JSON.stringify(legacyCatalogue)));
    const readBefore = journalStore.stats.bytesRead;
    const reopened = await Volume.open({ journalStore, mapStore: legacy, clock }, options);
    expect(journalStore.stats.bytesRead - readBefore).toBeLessThan(LEVEL_ZERO_WRITES * (WRITE_BYTES + 64) + 2 * options.segmentSizeBytes);
    expect(reopened.head.seq).toBe(writes);
    await expectReplay(reopened, [3, LEVEL_ZERO_WRITES * 5 + 1, writes]);
    await appendWrites(reopened, writes + 1, writes + LEVEL_ZERO_WRITES * PERSIST_EVERY);
    await reopened.close();
    expect((await catalogueOf(legacy)).packs).toEqual([catalogue.levelZeroCount]);
    const again = await Volume.open({ journalStore, mapStore: legacy, clock }, options);
    await expectReplay(again, [writes, writes + LEVEL_ZERO_WRITES * PERSIST_EVERY]);
    await again.close();
  });

  it("a damaged pack is refused with a clear error, never used", async () => {
    const journalStore = new MemorySegmentStore();
    const mapStore = new MemorySegmentStore();
    const clock = new ManualClock();
    const volume = await Volume.open({ journalStore, mapStore, clock }, options);
    await appendWrites(volume, 1, LEVEL_ZERO_WRITES * PERSIST_EVERY);
    await volume.close();
    const pack = mapSegmentId({ kind: "pack", first: 0 });
    const byte = new Uint8Array(1);
    await mapStore.read(pack, 100, byte);
    byte[0] ^= 0xff;
    await mapStore.write(pack, 100, byte);
    await expect(Volume.open({ journalStore, mapStore, clock }, options)).rejects.toThrow(/map pack from level-0 map 0: checksum mismatch/);
  });
});
