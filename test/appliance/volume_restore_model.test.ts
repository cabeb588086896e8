/**
 * Proves restore (seed 003 [0075]; DESIGN.md, "Restore") at map level: fast-check generates
 * write streams, snapshots, restore markers — back to random earlier points, forward to points
 * after a previous restore's target (even after that restore's own marker), by seq, snapshot,
 * time or raw `{toSeq}` marker, sometimes to a record not yet durable — flushes, and crashes
 * (each unsynced write of both in-memory stores lost, kept or torn) and reopens at random
 * moments. After steps it compares images at random points and at, just before and just after
 * every restore marker with the replay oracle (a restore replays as "state := state after
 * toSeq"), byte for byte; runs without an initial copy make zeros-after-restore common (a
 * block unwritten at the target but written later must read zero). At the end: diff(a, b)
 * covers every sector that differs and only sectors a write or a restore between them changed;
 * and a volume reopened from the journal alone (fresh map store: every level-0 map, merge,
 * point map and restore delta rebuilt from scratch) writes the same map files byte for byte as
 * the one built incrementally across restores, crashes and reopens (each map compared by
 * its bytes inside the packs, which split differently when crashes and reopens fall
 * differently). The seed of a failure is
 * printed by fast-check.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ConflictError, PointUnavailableError } from "../../src/appliance/errors.ts";
import { mapSegmentId, MapStore } from "../../src/appliance/map_store.ts";
import { RecordKind, Volume } from "../../src/appliance/volume.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { formatTimeUs } from "../../src/core/units.ts";
import { firstDifference, ReplayOracle } from "../support/replay_oracle.ts";

const SECTOR = 512;
const VOLUME_SECTORS = 256; // 128 KiB
const SIZE_BYTES = VOLUME_SECTORS * SECTOR;

/** How a restore names its target. */
type RestoreForm = "seq" | "snapshot" | "time" | "marker";

type Op =
  | { kind: "write"; offsetSectors: number; lengthSectors: number; fill: number }
  | { kind: "snapshot" }
  | { kind: "restore"; direction: "back" | "forward"; form: RestoreForm; pick: number }
  | { kind: "flush" }
  | { kind: "crash"; seed: number }
  | { kind: "reopen" }
  | { kind: "check"; picks: number[] };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 16,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      offsetSectors: fc.nat(VOLUME_SECTORS - 1),
      lengthSectors: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: 1, max: 16 }) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }) },
      ),
      fill: fc.nat(255),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "snapshot" as const }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("restore" as const),
      direction: fc.constantFrom("back" as const, "forward" as const),
      form: fc.constantFrom<RestoreForm>("seq", "seq", "snapshot", "time", "marker"),
      pick: fc.nat(),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ kind: "flush" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("crash" as const), seed: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("check" as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }),
  },
);

/** Data whose every sector says which write and sector it is, so a misplaced sector shows. */
function writeData(seq: number, lengthSectors: number, fill: number): Uint8Array {
  const data = new Uint8Array(lengthSectors * SECTOR);
  const view = new DataView(data.buffer);
  for (let sector = 0; sector < lengthSectors; sector++) {
    data.fill((fill + sector) & 0xff, sector * SECTOR, (sector + 1) * SECTOR);
    view.setUint32(sector * SECTOR, seq, true);
    view.setUint32(sector * SECTOR + 4, sector, true);
  }
  return data;
}

interface RunOptions {
  readonly baseline: boolean;
  readonly levelZero: number;
  readonly fanOut: number;
  /** Level-0 maps per pack (the journal-bytes limit is left out of reach). */
  readonly persistEvery: number;
}

function volumeOptions(options: RunOptions) {
  return {
    name: "vol",
    sizeBytes: SIZE_BYTES,
    segmentSizeBytes: 64 * 1024,
    groupBytesMax: 48 * 1024,
    levelZeroWritesMax: options.levelZero,
    mapPersistLevelZeroMin: options.persistEvery,
    mapPersistJournalBytesMin: 2 ** 40,
    mapFanOut: options.fanOut,
    mapLevelsMax: 4,
    pointMapRunsMin: 8,
    pointMapGrowthDivisor: 1,
  };
}

/** The oracle's states by seq, while the history does not change (the final checks). */
type States = (seq: number) => Uint8Array;

function statesOf(oracle: ReplayOracle): States {
  const states = new Map<number, Uint8Array>();
  return (seq) => {
    let state = states.get(seq);
    if (state === undefined) states.set(seq, state = oracle.imageAt(seq));
    return state;
  };
}

async function expectImage(volume: Volume, stateAt: States, label: string, expectedSeq: number): Promise<void> {
  const image = volume.openImage(label);
  expect(image.point.seq, label).toBe(expectedSeq);
  const bytes = new Uint8Array(SIZE_BYTES);
  await image.read(0, bytes);
  const expected = stateAt(expectedSeq);
  if (sameBytes(bytes, expected)) return;
  const at = firstDifference(bytes, expected);
  throw new Error(`Image at ${label} (seq ${expectedSeq}) differs from the replay at byte ${at}`);
}

/**
 * Every map of a map store by the segment id it would have on its own, with its bytes (a
 * pack's entries, so stores whose packs split differently compare equal), and the
 * catalogue's map counts.
 */
async function mapFiles(store: MemorySegmentStore): Promise<{ files: Map<number, Uint8Array>; catalogue: unknown }> {
  const maps = new MapStore(store, await createChecksum());
  const files = new Map<number, Uint8Array>();
  const manifest = await store.readManifest();
  const parsed = manifest === null ? null : JSON.parse(new TextDecoder().decode(manifest));
  const packs: number[] = parsed?.packs ?? [];
  for (const id of await store.list()) {
    if (id === mapSegmentId({ kind: "pack", first: id % 2 ** 40 }) && packs.includes(id % 2 ** 40)) {
      const pack = await maps.readPack(id % 2 ** 40);
      for (const entryId of pack.ids) files.set(entryId, pack.bodyOf(entryId)!);
      continue;
    }
    const bytes = new Uint8Array(await store.sizeOf(id));
    await store.read(id, 0, bytes);
    files.set(id, bytes);
  }
  const sorted = new Map([...files].sort((x, y) => x[0] - y[0]));
  return { files: sorted, catalogue: parsed === null ? null : { levelZeroCount: parsed.levelZeroCount, pointBoundaries: parsed.pointBoundaries } };
}

async function runModel(ops: Op[], options: RunOptions): Promise<void> {
  const clock = new ManualClock();
  let journalStore = new MemorySegmentStore();
  let mapStore = new MemorySegmentStore();
  const open = () => Volume.open({ journalStore, mapStore, clock }, volumeOptions(options));
  let volume = await open();

  let base: Uint8Array | undefined;
  if (options.baseline) {
    // Every base sector differs from every write's (those start with their seq, never 0), so
    // a restore to the base changes exactly the sectors written since.
    base = new Uint8Array(SIZE_BYTES).fill(0xb0);
    for (let at = 0; at < base.length; at += SECTOR) base.fill(0, at, at + 4);
    for (let at = 0; at < SIZE_BYTES; at += 16 * 1024) await volume.appendBaseline(at, base.subarray(at, at + 16 * 1024));
    await volume.flush();
  }
  const oracle = new ReplayOracle(SIZE_BYTES, base);
  const times = new Map<number, number>(); // seq -> timeUs, for every record appended
  const snapshots = new Map<string, number>();
  let lastTarget = 0; // toSeq of the newest restore
  let durableSeq = -1;
  const watch = (v: Volume) => v.onDurable((seq) => (durableSeq = Math.max(durableSeq, seq)));
  watch(volume);

  const forgetAfter = (seqMax: number) => {
    oracle.truncateAfter(seqMax);
    for (const [name, seq] of snapshots) if (seq > seqMax) snapshots.delete(name);
    for (const seq of times.keys()) if (seq > seqMax) times.delete(seq);
    const restores = oracle.restores;
    lastTarget = restores.length === 0 ? 0 : restores[restores.length - 1].toSeq;
  };

  /** Checks images at a pick: a random seq, a restore marker and its neighbours, a snapshot, head. */
  const check = async (pick: number, stateAt: States = (seq) => oracle.imageAt(seq)) => {
    const head = volume.head.seq;
    const restores = oracle.restores.filter((r) => r.seq <= head);
    const choice = pick % 5;
    if (choice === 1 && restores.length > 0) {
      const restore = restores[(pick >>> 3) % restores.length];
      expect(volume.resolvePoint(`seq:${restore.seq}`).landedOn).toBe("restore");
      for (const seq of [restore.seq - 1, restore.seq, restore.seq + 1]) {
        if (seq >= 0 && seq <= head) await expectImage(volume, stateAt, `seq:${seq}`, seq);
      }
    } else if (choice === 2 && snapshots.size > 0) {
      const names = [...snapshots.keys()];
      const name = names[(pick >>> 3) % names.length];
      await expectImage(volume, stateAt, `snap:${name}`, snapshots.get(name)!);
    } else if (choice === 3) {
      await expectImage(volume, stateAt, "head", head);
    } else {
      const seq = (pick >>> 3) % (head + 1);
      await expectImage(volume, stateAt, `seq:${seq}`, seq);
    }
  };

  const restore = async (op: Extract<Op, { kind: "restore" }>) => {
    // Targets named by POINT resolve among durable records; a raw marker may name any record
    // appended before it.
    if (op.form !== "marker") await volume.flush();
    const seq = volume.nextSeq;
    const newest = op.form === "marker" ? seq - 1 : volume.head.seq;
    const low = op.direction === "forward" && lastTarget < newest ? lastTarget + 1 : 0;
    let toSeq = low + (op.pick % (newest - low + 1));
    clock.advanceUs(1 + (op.pick % 5));
    const timeUs = clock.nowUs();
    if (op.form === "marker") {
      await volume.appendMarker({ seq, timeUs, kind: RecordKind.restore, payload: { toSeq } });
    } else if (op.form === "snapshot" && snapshots.size > 0) {
      const names = [...snapshots.keys()];
      const name = names[(op.pick >>> 4) % names.length];
      toSeq = snapshots.get(name)!;
      await volume.appendRestore({ seq, timeUs, toPoint: `snap:${name}` });
    } else if (op.form === "time" && times.has(toSeq)) {
      await volume.appendRestore({ seq, timeUs, toPoint: formatTimeUs(times.get(toSeq)!) });
    } else {
      await volume.appendRestore({ seq, timeUs, toPoint: `seq:${toSeq}` });
    }
    oracle.restore(seq, toSeq);
    times.set(seq, timeUs);
    lastTarget = toSeq;
  };

  for (const op of ops) {
    switch (op.kind) {
      case "write": {
        const lengthSectors = Math.min(op.lengthSectors, VOLUME_SECTORS - op.offsetSectors);
        const seq = volume.nextSeq;
        const data = writeData(seq, lengthSectors, op.fill);
        clock.advanceUs(1 + (op.fill % 7));
        const timeUs = clock.nowUs();
        await volume.appendWrite({ seq, timeUs, offsetBytes: op.offsetSectors * SECTOR, data });
        oracle.writes.push({ seq, offsetBytes: op.offsetSectors * SECTOR, data });
        times.set(seq, timeUs);
        break;
      }
      case "snapshot": {
        clock.advanceUs(3);
        const entry = await volume.snapshot(`s${volume.nextSeq}`);
        snapshots.set(entry.name, entry.seq);
        times.set(entry.seq, entry.timeUs);
        break;
      }
      case "restore":
        await restore(op);
        break;
      case "flush":
        await volume.flush();
        break;
      case "crash": {
        const acknowledged = durableSeq;
        const random = new SeededRandom(op.seed);
        journalStore = journalStore.crash(random);
        mapStore = mapStore.crash(random);
        volume = await open();
        watch(volume);
        expect(volume.head.seq).toBeGreaterThanOrEqual(acknowledged);
        forgetAfter(volume.head.seq);
        durableSeq = volume.head.seq;
        break;
      }
      case "reopen": {
        await volume.close();
        const headBefore = volume.head.seq;
        volume = await open();
        watch(volume);
        expect(volume.head.seq).toBe(headBefore);
        break;
      }
      case "check":
        await volume.flush();
        for (const pick of op.picks) await check(pick);
        break;
    }
  }
  await volume.flush();
  await volume.settled();
  const head = volume.head.seq;
  const stateAt = statesOf(oracle);
  // Every seq once on short runs, else every restore marker and its neighbours.
  if (head <= 48) {
    for (let seq = 0; seq <= head; seq++) await expectImage(volume, stateAt, `seq:${seq}`, seq);
  } else {
    for (let i = 0; i < oracle.restores.length; i++) await check(1 + 5 * (i << 3), stateAt);
    for (const pick of [0, 3, 5, 8, 13, 21]) await check(pick * 8, stateAt);
  }
  checkDiffs(volume, oracle, stateAt);

  // A hierarchy built incrementally across restores, crashes and reopens equals one built from
  // scratch: reopen from the journal alone and compare every map file.
  await volume.close();
  const incremental = await mapFiles(mapStore);
  const scratchStore = new MemorySegmentStore();
  const scratch = await Volume.open({ journalStore, mapStore: scratchStore, clock }, volumeOptions(options));
  await scratch.settled();
  expect(scratch.head.seq).toBe(head);
  const rebuilt = await mapFiles(scratchStore);
  expect(rebuilt.catalogue).toEqual(incremental.catalogue);
  expect([...rebuilt.files.keys()]).toEqual([...incremental.files.keys()]);
  for (const [id, bytes] of incremental.files) {
    if (firstDifference(bytes, rebuilt.files.get(id)!) >= 0) throw new Error(`Map file ${id} differs when rebuilt from scratch`);
  }
  // The tail after the last sealed map (its restore deltas rebuilt by the tail replay).
  for (const seq of [head, head - 1, head - 2]) if (seq >= 0) await expectImage(scratch, stateAt, `seq:${seq}`, seq);
  await scratch.close();
}

/**
 * diff(a, b) covers every sector whose bytes differ between the two points, and reports only
 * sectors that a write between them wrote or a restore between them changed.
 */
function checkDiffs(volume: Volume, oracle: ReplayOracle, stateAt: States): void {
  const head = volume.head.seq;
  const picks: [number, number][] = [[0, head], [head >> 1, head], [head, head >> 2], [head >> 2, head >> 1]];
  for (const restore of oracle.restores) {
    picks.push([restore.seq - 1, restore.seq], [restore.toSeq, restore.seq], [restore.seq, head]);
  }
  for (const [a, b] of picks) {
    const { extents } = volume.diff(`seq:${a}`, `seq:${b}`);
    const inDiff = new Uint8Array(VOLUME_SECTORS);
    for (const extent of extents) inDiff.fill(1, extent.offsetBytes / SECTOR, (extent.offsetBytes + extent.lengthBytes) / SECTOR);
    const low = Math.min(a, b);
    const high = Math.max(a, b);
    const touched = new Uint8Array(VOLUME_SECTORS);
    for (const write of oracle.writes) {
      if (write.seq > low && write.seq <= high) {
        touched.fill(1, write.offsetBytes / SECTOR, (write.offsetBytes + write.data.length) / SECTOR);
      }
    }
    for (const restore of oracle.restores) {
      if (restore.seq <= low || restore.seq > high) continue;
      markDifferent(touched, stateAt(restore.seq - 1), stateAt(restore.seq));
    }
    const differs = new Uint8Array(VOLUME_SECTORS);
    markDifferent(differs, stateAt(a), stateAt(b));
    for (let sector = 0; sector < VOLUME_SECTORS; sector++) {
      if (differs[sector] && !inDiff[sector]) throw new Error(`diff(seq:${a}, seq:${b}) misses sector ${sector}`);
      if (inDiff[sector] && !touched[sector]) {
        throw new Error(`diff(seq:${a}, seq:${b}) reports sector ${sector}, which nothing between them changed`);
      }
    }
  }
}

/** Marks the sectors where whole images `a` and `b` differ (word by word: this runs often). */
function markDifferent(marks: Uint8Array, a: Uint8Array, b: Uint8Array): void {
  const aWords = new Uint32Array(a.buffer, a.byteOffset, SIZE_BYTES / 4);
  const bWords = new Uint32Array(b.buffer, b.byteOffset, SIZE_BYTES / 4);
  const sectorWords = SECTOR / 4;
  for (let word = 0; word < aWords.length; word++) {
    if (aWords[word] !== bWords[word]) {
      const sector = Math.floor(word / sectorWords);
      marks[sector] = 1;
      word = (sector + 1) * sectorWords - 1;
    }
  }
}

/** Whether two whole images are equal, word by word. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const aWords = new Uint32Array(a.buffer, a.byteOffset, SIZE_BYTES / 4);
  const bWords = new Uint32Array(b.buffer, b.byteOffset, SIZE_BYTES / 4);
  for (let word = 0; word < aWords.length; word++) if (aWords[word] !== bWords[word]) return false;
  return true;
}

describe("restore against the replay oracle", () => {
  it("images before, at and after restore markers equal the replay, across restores back and forward, crashes and reopens", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArbitrary, { minLength: 1, maxLength: 60, size: "medium" }),
        fc.boolean(),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        async (ops, baseline, levelZero, fanOut, persistEvery) => {
          await runModel(ops, { baseline, levelZero, fanOut, persistEvery });
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("restore", () => {
  async function freshVolume(options: { levelZeroWritesMax?: number } = {}) {
    const clock = new ManualClock();
    const journalStore = new MemorySegmentStore();
    const mapStore = new MemorySegmentStore();
    const volumeOptionsUsed = {
      name: "vol",
      sizeBytes: 64 * 1024,
      segmentSizeBytes: 64 * 1024,
      groupBytesMax: 32 * 1024,
      levelZeroWritesMax: options.levelZeroWritesMax ?? 4,
    };
    const volume = await Volume.open({ journalStore, mapStore, clock }, volumeOptionsUsed);
    const reopen = () => Volume.open({ journalStore, mapStore, clock }, volumeOptionsUsed);
    return { volume, clock, reopen };
  }

  async function readSector(volume: Volume, point: string, sector: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(SECTOR);
    await volume.openImage(point).read(sector * SECTOR, bytes);
    return bytes;
  }

  it("a block unwritten at the point restored to reads zeros after the restore, though older maps hold a write", async () => {
    const { volume, clock, reopen } = await freshVolume();
    await volume.appendWrite({ seq: 1, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(SECTOR).fill(1) });
    await volume.appendWrite({ seq: 2, timeUs: clock.nowUs(), offsetBytes: 4096, data: new Uint8Array(SECTOR).fill(2) });
    await volume.flush();
    await volume.appendRestore({ seq: 3, timeUs: clock.nowUs(), toPoint: "seq:1" });
    await volume.appendWrite({ seq: 4, timeUs: clock.nowUs(), offsetBytes: 8192, data: new Uint8Array(SECTOR).fill(4) });
    await volume.flush();
    expect((await readSector(volume, "head", 8)).every((b) => b === 0)).toBe(true);
    expect((await readSector(volume, "seq:2", 8))[0]).toBe(2);
    expect((await readSector(volume, "head", 0))[0]).toBe(1);
    expect((await readSector(volume, "head", 16))[0]).toBe(4);
    expect(volume.resolvePoint("seq:3")).toMatchObject({ seq: 3, landedOn: "restore" });
    expect(volume.diff("seq:2", "seq:3").extents).toEqual([{ offsetBytes: 4096, lengthBytes: SECTOR }]);
    expect(volume.markers().map((m) => [m.kind, m.detail.toSeq])).toEqual([["restore", 1]]);
    await volume.close();
    // Sealed (levels of 4 records): the delta comes back from the level-0 file.
    const reopened = await reopen();
    expect((await readSector(reopened, "head", 8)).every((b) => b === 0)).toBe(true);
    expect((await readSector(reopened, "seq:2", 8))[0]).toBe(2);
    await reopened.close();
  });

  it("restores forward past the first restore's own marker, and back again", async () => {
    const { volume, clock } = await freshVolume({ levelZeroWritesMax: 3 });
    const write = (seq: number, fill: number) =>
      volume.appendWrite({ seq, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(SECTOR).fill(fill) });
    await write(1, 10);
    await write(2, 20);
    await write(3, 30);
    await volume.flush();
    await volume.appendRestore({ seq: 4, timeUs: clock.nowUs(), toPoint: "seq:1" }); // 10
    await write(5, 50);
    await volume.flush();
    await volume.appendRestore({ seq: 6, timeUs: clock.nowUs(), toPoint: "seq:4" }); // 10 again
    await volume.flush();
    await volume.appendRestore({ seq: 7, timeUs: clock.nowUs(), toPoint: "seq:5" }); // forward: 50
    await volume.flush();
    await volume.appendRestore({ seq: 8, timeUs: clock.nowUs(), toPoint: "seq:3" }); // back: 30
    await volume.flush();
    const expected = [0, 10, 20, 30, 10, 50, 10, 50, 30];
    for (let seq = 0; seq <= 8; seq++) expect((await readSector(volume, `seq:${seq}`, 0))[0], `seq:${seq}`).toBe(expected[seq]);
    // Restoring to where the volume already is changes nothing.
    await volume.appendRestore({ seq: 9, timeUs: clock.nowUs(), toPoint: "seq:3" });
    await volume.flush();
    expect(volume.diff("seq:8", "seq:9").extents).toEqual([]);
    await volume.close();
  });

  it("refuses a target outside the retained range, after the marker or missing, and changes nothing", async () => {
    const { volume, clock } = await freshVolume();
    await volume.appendWrite({ seq: 1, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(SECTOR).fill(1) });
    await volume.flush();
    const timeUs = clock.nowUs();
    expect(() => volume.appendRestore({ seq: 2, timeUs, toPoint: "seq:5" })).toThrow(PointUnavailableError);
    expect(() => volume.appendRestore({ seq: 2, timeUs, toPoint: "snap:nope" })).toThrow(PointUnavailableError);
    expect(() => volume.appendRestore({ seq: 2, timeUs, toPoint: "seq:x" })).toThrow(SyntaxError);
    expect(() => volume.appendRestore({ seq: 3, timeUs, toPoint: "seq:0" })).toThrow(ConflictError);
    const marker = (payload: unknown) => volume.appendMarker({ seq: 2, timeUs, kind: RecordKind.restore, payload });
    expect(() => marker({ toSeq: 2 })).toThrow(RangeError);
    expect(() => marker({ toSeq: 7 })).toThrow(/must come before the marker/);
    expect(() => marker({ toSeq: -1 })).toThrow(PointUnavailableError);
    expect(() => marker({ toSeq: 0.5 })).toThrow(RangeError);
    expect(() => marker({})).toThrow(/needs toSeq/);
    expect(() => marker(undefined)).toThrow(RangeError);
    expect(volume.nextSeq).toBe(2);
    await volume.flush();
    expect(volume.head.seq).toBe(1);
    expect(volume.markers()).toEqual([]);
    await volume.close();
  });

  it("a restore in the journal tail gets its delta back when the volume reopens", async () => {
    const { volume, clock, reopen } = await freshVolume({ levelZeroWritesMax: 100 });
    await volume.appendWrite({ seq: 1, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(SECTOR).fill(1) });
    await volume.appendWrite({ seq: 2, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(SECTOR).fill(2) });
    await volume.appendMarker({ seq: 3, timeUs: clock.nowUs(), kind: RecordKind.restore, payload: { toSeq: 1 } });
    await volume.flush();
    expect((await readSector(volume, "head", 0))[0]).toBe(1);
    await volume.close();
    const reopened = await reopen();
    expect((await readSector(reopened, "head", 0))[0]).toBe(1);
    expect((await readSector(reopened, "seq:2", 0))[0]).toBe(2);
    expect(reopened.diff("seq:0", "head").extents).toEqual([{ offsetBytes: 0, lengthBytes: SECTOR }]);
    await reopened.close();
  });
});
