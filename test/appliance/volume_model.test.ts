/**
 * Proves guarantee 1 ("any point") and 2 ("nothing acknowledged is lost") for the engine:
 * fast-check generates write streams (overlapping, unaligned to regions, 512 B up to 4 MiB),
 * snapshots, flushes and crashes of the in-memory stores at random moments (each unsynced
 * write lost, kept or torn), and after every step compares images at random points — by seq,
 * by time, by snapshot, head — with a naive replay of every write, byte for byte. Small map
 * parameters (level-0 maps of a few writes, fan-out 2-4) make merges and point maps happen
 * within a few dozen writes. At the end of each run, diffs between points are checked against
 * the replay too. The seed of a failure is printed by fast-check.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Volume } from "../../src/appliance/volume.ts";
import { PointUnavailableError } from "../../src/appliance/errors.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { formatTimeUs } from "../../src/core/units.ts";
import { firstDifference, ReplayOracle } from "../support/replay_oracle.ts";

const SECTOR = 512;

type Op =
  | { kind: "write"; offsetSectors: number; lengthSectors: number; fill: number }
  | { kind: "snapshot" }
  | { kind: "flush" }
  | { kind: "crash"; seed: number }
  | { kind: "reopen" }
  | { kind: "check"; picks: number[] };

interface Config {
  readonly volumeSectors: number;
  readonly lengthSectorsMax: number;
  readonly segmentSizeBytes: number;
  readonly groupBytesMax: number;
}

function opArbitrary(config: Config): fc.Arbitrary<Op> {
  const write = fc.record({
    kind: fc.constant("write" as const),
    offsetSectors: fc.nat(config.volumeSectors - 1),
    lengthSectors: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 16 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: config.lengthSectorsMax }) },
    ),
    fill: fc.nat(255),
  });
  return fc.oneof(
    { weight: 20, arbitrary: write },
    { weight: 1, arbitrary: fc.constant({ kind: "snapshot" as const }) },
    { weight: 3, arbitrary: fc.constant({ kind: "flush" as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("crash" as const), seed: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("check" as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }) },
  );
}

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

async function runModel(
  config: Config,
  ops: Op[],
  options: { baseline: boolean; levelZero: number; fanOut: number; persistEvery: number; persistBytes?: number },
) {
  const sizeBytes = config.volumeSectors * SECTOR;
  const clock = new ManualClock();
  let journalStore = new MemorySegmentStore();
  let mapStore = new MemorySegmentStore();
  const logs: string[] = [];
  const open = () =>
    Volume.open({ journalStore, mapStore, clock, log: (line) => logs.push(line) }, {
      name: "vol",
      sizeBytes,
      segmentSizeBytes: config.segmentSizeBytes,
      groupBytesMax: config.groupBytesMax,
      levelZeroWritesMax: options.levelZero,
      mapPersistLevelZeroMin: options.persistEvery,
      mapPersistJournalBytesMin: options.persistBytes ?? 2 ** 40,
      mapFanOut: options.fanOut,
      mapLevelsMax: 4,
      pointMapRunsMin: 8,
      pointMapGrowthDivisor: 1,
    });
  let volume = await open();

  let base: Uint8Array | undefined;
  if (options.baseline) {
    base = new Uint8Array(sizeBytes);
    for (let i = 0; i < base.length; i += 4096) base[i] = (i / 4096) & 0xff;
    base[1] = 0xba;
    for (let at = 0; at < sizeBytes; at += 16 * 1024) {
      await volume.appendBaseline(at, base.subarray(at, Math.min(sizeBytes, at + 16 * 1024)));
    }
    // The initial copy completes durably before protection starts.
    await volume.flush();
  }
  const oracle = new ReplayOracle(sizeBytes, base);
  const times = new Map<number, number>(); // seq -> timeUs
  const snapshots = new Map<string, number>();
  let durableSeq = -1;
  const watch = (v: Volume) => v.onDurable((seq) => (durableSeq = Math.max(durableSeq, seq)));
  watch(volume);

  const check = async (pick: number) => {
    const head = volume.head.seq;
    const choice = pick % 4;
    let label: string;
    let expectedSeq: number;
    if (choice === 0 || head === 0) {
      const seq = pick % (head + 1);
      label = `seq:${seq}`;
      expectedSeq = seq;
    } else if (choice === 1 && times.size > 0) {
      const seqs = [...times.keys()].filter((s) => s <= head);
      const seq = seqs.length === 0 ? 0 : seqs[pick % seqs.length];
      label = seqs.length === 0 ? "head" : formatTimeUs(times.get(seq)!);
      expectedSeq = seqs.length === 0 ? head : seq;
    } else if (choice === 2 && snapshots.size > 0) {
      const names = [...snapshots.keys()];
      const name = names[pick % names.length];
      label = `snap:${name}`;
      expectedSeq = snapshots.get(name)!;
    } else {
      label = "head";
      expectedSeq = head;
    }
    const image = volume.openImage(label);
    expect(image.point.seq).toBe(expectedSeq);
    const bytes = new Uint8Array(sizeBytes);
    await image.read(0, bytes);
    const expected = oracle.imageAt(expectedSeq);
    const at = firstDifference(bytes, expected);
    if (at >= 0) throw new Error(`Image at ${label} (seq ${expectedSeq}) differs from the replay at byte ${at}`);
  };

  for (const op of ops) {
    switch (op.kind) {
      case "write": {
        const lengthSectors = Math.min(op.lengthSectors, config.volumeSectors - op.offsetSectors);
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
        const name = `s${volume.nextSeq}`;
        const entry = await volume.snapshot(name);
        snapshots.set(name, entry.seq);
        times.set(entry.seq, entry.timeUs);
        break;
      }
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
        // Guarantee 2: every write reported durable survives the crash.
        expect(volume.head.seq).toBeGreaterThanOrEqual(acknowledged);
        oracle.truncateAfter(volume.head.seq);
        for (const [name, seq] of snapshots) if (seq > volume.head.seq) snapshots.delete(name);
        for (const seq of times.keys()) if (seq > volume.head.seq) times.delete(seq);
        durableSeq = volume.head.seq;
        expect(volume.snapshots().map((s) => s.name).sort()).toEqual([...snapshots.keys()].sort());
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
  for (const pick of [0, 1, 2, 3, 5, 7, 11]) await check(pick);
  // diff(a, b) covers every byte that differs between the two images and nothing that was not
  // written between them.
  const head = volume.head.seq;
  for (const [a, b] of [[0, head], [head >> 1, head], [head, head >> 2], [head >> 2, head >> 1]]) {
    const { extents } = volume.diff(`seq:${a}`, `seq:${b}`);
    const inDiff = new Uint8Array(config.volumeSectors);
    for (const extent of extents) {
      for (let sector = extent.offsetBytes / SECTOR; sector < (extent.offsetBytes + extent.lengthBytes) / SECTOR; sector++) inDiff[sector] = 1;
    }
    const written = new Uint8Array(config.volumeSectors);
    for (const write of oracle.writes) {
      if (write.seq > Math.min(a, b) && write.seq <= Math.max(a, b)) {
        written.fill(1, write.offsetBytes / SECTOR, (write.offsetBytes + write.data.length) / SECTOR);
      }
    }
    const imageA = oracle.imageAt(a);
    const imageB = oracle.imageAt(b);
    for (let sector = 0; sector < config.volumeSectors; sector++) {
      const differs = firstDifference(imageA.subarray(sector * SECTOR, (sector + 1) * SECTOR), imageB.subarray(sector * SECTOR, (sector + 1) * SECTOR)) >= 0;
      if (differs && !inDiff[sector]) throw new Error(`diff(seq:${a}, seq:${b}) misses sector ${sector}`);
      if (inDiff[sector] && !written[sector]) throw new Error(`diff(seq:${a}, seq:${b}) reports unwritten sector ${sector}`);
    }
  }
  // Every seq, once, at the end of short runs: per-write granularity.
  if (volume.head.seq <= 40) for (let seq = 0; seq <= volume.head.seq; seq++) await check(seq * 4);
  await volume.close();
}

const smallConfig: Config = {
  volumeSectors: 256, // 128 KiB
  lengthSectorsMax: 64,
  segmentSizeBytes: 64 * 1024,
  groupBytesMax: 48 * 1024,
};

describe("volume engine against the replay oracle", () => {
  it("every image at every kind of point equals the replay, across crashes, merges and point maps", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArbitrary(smallConfig), { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(16 * 1024, 2 ** 40),
        async (ops, baseline, levelZero, fanOut, persistEvery, persistBytes) => {
          await runModel(smallConfig, ops, { baseline, levelZero, fanOut, persistEvery, persistBytes });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("large writes up to 4 MiB over an 8 MiB volume replay exactly", async () => {
    const config: Config = {
      volumeSectors: 16384,
      lengthSectorsMax: 8192,
      segmentSizeBytes: 8 * 1024 * 1024 + 64 * 1024,
      groupBytesMax: 4 * 1024 * 1024 + 64 * 1024,
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArbitrary(config), { minLength: 1, maxLength: 12 }),
        async (ops) => {
          await runModel(config, ops, { baseline: false, levelZero: 3, fanOut: 2, persistEvery: 2 });
        },
      ),
      { numRuns: 15 },
    );
  });

  it("a point outside the retained range names the available range", async () => {
    const volume = await Volume.open(
      { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock: new ManualClock() },
      { name: "vol", sizeBytes: 64 * 1024, segmentSizeBytes: 64 * 1024, groupBytesMax: 32 * 1024 },
    );
    await volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 0, data: new Uint8Array(512) });
    await volume.flush();
    expect(() => volume.resolvePoint("seq:5")).toThrow(PointUnavailableError);
    expect(() => volume.resolvePoint("seq:5")).toThrow(/seq:0 .* to seq:1/);
    expect(() => volume.resolvePoint("snap:nope")).toThrow(/does not exist/);
    expect(() => volume.resolvePoint("2001-01-01T00:00:00Z")).toThrow(PointUnavailableError);
    expect(() => volume.resolvePoint("seq:x")).toThrow(SyntaxError);
    await volume.close();
  });

  it("resolving a time reports the exact write it landed on", async () => {
    const clock = new ManualClock();
    const volume = await Volume.open(
      { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock },
      { name: "vol", sizeBytes: 64 * 1024, segmentSizeBytes: 64 * 1024, groupBytesMax: 32 * 1024 },
    );
    const t0 = clock.nowUs();
    for (let seq = 1; seq <= 5; seq++) {
      await volume.appendWrite({ seq, timeUs: t0 + seq * 1000, offsetBytes: 0, data: new Uint8Array(512).fill(seq) });
    }
    await volume.flush();
    const report = volume.resolvePoint(formatTimeUs(t0 + 3500));
    expect(report).toMatchObject({ seq: 3, timeUs: t0 + 3000, landedOn: "write" });
    // Relative points count back from the clock's now.
    clock.advanceUs(60_000_000);
    expect(volume.resolvePoint("-60s")).toMatchObject({ seq: 0, landedOn: "base" });
    expect(volume.resolvePoint("-59.996s")).toMatchObject({ seq: 4 });
    expect(volume.resolvePoint("-1s")).toMatchObject({ seq: 5 });
    expect(() => volume.resolvePoint("-1d")).toThrow(PointUnavailableError);
    await volume.close();
  });

  it("a restart loads the maps and scans only the journal tail", async () => {
    const clock = new ManualClock();
    const journalStore = new MemorySegmentStore();
    const mapStore = new MemorySegmentStore();
    const options = { name: "vol", sizeBytes: 1024 * 1024, segmentSizeBytes: 256 * 1024, groupBytesMax: 64 * 1024, levelZeroWritesMax: 16 };
    const volume = await Volume.open({ journalStore, mapStore, clock }, options);
    for (let seq = 1; seq <= 1000; seq++) {
      await volume.appendWrite({ seq, timeUs: clock.nowUs(), offsetBytes: (seq % 64) * 4096, data: new Uint8Array(4096).fill(seq) });
    }
    await volume.close();
    const readBefore = journalStore.stats.bytesRead;
    const reopened = await Volume.open({ journalStore, mapStore, clock }, options);
    const scannedBytes = journalStore.stats.bytesRead - readBefore;
    expect(reopened.head.seq).toBe(1000);
    // 1000 writes of 4 KiB = 4 MiB journaled in 16 segments; recovery reads the unsealed tail
    // (< 16 writes) and the rest of its segment and the next (to tell a torn tail from corruption).
    expect(scannedBytes).toBeLessThan(16 * 4200 + 2 * 256 * 1024);
    const image = reopened.openImage("seq:100");
    const sector = new Uint8Array(4096);
    await image.read((100 % 64) * 4096, sector);
    expect(sector[0]).toBe(100);
    await reopened.close();
  });
});

describe("the base", () => {
  it("the initial full copy of a device is the state at seq:0, and all-zero chunks are not journaled", async () => {
    const { MemoryBlockDevice } = await import("../../src/io/memory_block_device.ts");
    const sizeBytes = 4 * 1024 * 1024;
    const contents = new Uint8Array(sizeBytes);
    contents.fill(0x11, 0, 1024 * 1024); // chunk 0 has data; chunks 1 and 3 stay zero
    contents.fill(0x22, 2 * 1024 * 1024 + 512, 2 * 1024 * 1024 + 1024);
    const primary = new MemoryBlockDevice(sizeBytes, { contents });
    const clock = new ManualClock();
    const volume = await Volume.open(
      { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock },
      { name: "vol", sizeBytes, segmentSizeBytes: 8 * 1024 * 1024, groupBytesMax: 2 * 1024 * 1024 + 4096 },
    );
    const progress: number[] = [];
    const journaled = await volume.appendBaselineFrom(primary, { onProgress: (done) => progress.push(done) });
    expect(journaled).toBe(2 * 1024 * 1024);
    expect(progress[progress.length - 1]).toBe(sizeBytes);
    await volume.appendWrite({ seq: 1, timeUs: clock.nowUs(), offsetBytes: 0, data: new Uint8Array(512).fill(0x33) });
    await volume.flush();
    const base = new Uint8Array(sizeBytes);
    await volume.openImage("seq:0").read(0, base);
    expect(firstDifference(base, contents)).toBe(-1);
    const head = new Uint8Array(512);
    await volume.openImage("head").read(0, head);
    expect(head[0]).toBe(0x33);
    // The base is complete: no more baseline records once writes began.
    expect(() => volume.appendBaseline(0, new Uint8Array(512))).toThrow(/writes have started/);
    await expect(volume.appendBaselineFrom(new MemoryBlockDevice(512 * 8))).rejects.toThrow(RangeError);
    await volume.close();
  });

  it("without an initial copy, unwritten blocks read as zeros at every point", async () => {
    const volume = await Volume.open(
      { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock: new ManualClock() },
      { name: "vol", sizeBytes: 64 * 1024, segmentSizeBytes: 64 * 1024, groupBytesMax: 32 * 1024 },
    );
    await volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 4096, data: new Uint8Array(512).fill(7) });
    await volume.flush();
    const image = new Uint8Array(64 * 1024);
    await volume.openImage("seq:0").read(0, image);
    expect(image.every((b) => b === 0)).toBe(true);
    await volume.openImage("seq:1").read(0, image);
    expect(image[4096]).toBe(7);
    expect(image[4095]).toBe(0);
    expect(volume.resolvePoint("seq:0").landedOn).toBe("base");
    await volume.close();
  });

  it("bad writes are refused with a clear error and change nothing", async () => {
    const volume = await Volume.open(
      { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock: new ManualClock() },
      { name: "vol", sizeBytes: 64 * 1024, segmentSizeBytes: 64 * 1024, groupBytesMax: 32 * 1024 },
    );
    const data = new Uint8Array(512);
    expect(() => volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 64 * 1024, data })).toThrow(/past the end/);
    expect(() => volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 100, data })).toThrow(/multiple of 512/);
    expect(() => volume.appendWrite({ seq: 2, timeUs: 0, offsetBytes: 0, data })).toThrow(/next seq is 1/);
    expect(() => volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 0, data: new Uint8Array(0) })).toThrow(RangeError);
    await expect(volume.snapshot("bad name")).rejects.toThrow(SyntaxError);
    expect(volume.nextSeq).toBe(1);
    expect(volume.head.seq).toBe(0);
    await volume.snapshot("ok");
    await expect(volume.snapshot("ok")).rejects.toThrow(/exists/);
    await volume.removeSnapshot("ok");
    expect(volume.snapshots()).toEqual([]);
    await expect(volume.removeSnapshot("ok")).rejects.toThrow(/does not exist/);
    await volume.close();
  });
});
