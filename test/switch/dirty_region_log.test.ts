/**
 * Proves the DirtyRegionLog's contract case by case (the crash property test is in
 * `dirty_region_log_model.test.ts`): region geometry (partial last region, writes spanning
 * regions, boundaries, validation); a write to a clean region needs a persist and a write
 * to a durably dirty one does not, also when another writer's persist is still in flight;
 * persists coalesce (one cell write in flight, every caller during it served by at most one
 * more, which carries its bits); a failed cell write rejects exactly its waiters with
 * DirtyRegionLogError and keeps the bits; resets clear only settled regions, only in sync
 * (seed 003 [0051]); a corrupt or mismatched cell is a named error, never a clean DRL; and
 * the reset policy's timing rules. How: a MemoryDurableCell (counts writes, injects failures)
 * or a GatedDurableCell (holds writes in flight until the test finishes or fails them), and
 * the cell's bytes read back by opening a second DRL on them.
 */
import { describe, expect, test } from "vitest";
import { AssertionError } from "../../src/core/assert.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import {
  DirtyRegionLog,
  DirtyRegionLogCorruptError,
  DirtyRegionLogError,
  DirtyRegionLogGeometryError,
  type DirtyRegionLogOptions,
  ResetPolicy,
} from "../../src/switch/dirty_region_log.ts";
import { switchLimits } from "../../src/core/limits.ts";
import { GatedDurableCell, settle } from "./gated_durable_cell.ts";

const checksum = await createChecksum();
const deps = { checksum };
const KiB = 1024;
const MiB = 1024 * KiB;

/** 10 regions of 4 KiB and a last one of 1 KiB. */
const geometry: DirtyRegionLogOptions = { sizeBytes: 10 * 4 * KiB + KiB, regionBytes: 4 * KiB };

/** The dirty regions a cell's bytes hold, read by opening another DRL on them. */
async function persistedDirty(bytes: Uint8Array | null, options = geometry): Promise<number[]> {
  const drl = await DirtyRegionLog.open(new MemoryDurableCell(bytes), options, deps);
  return dirtyList(drl);
}

function dirtyList(drl: DirtyRegionLog): number[] {
  const regions: number[] = [];
  drl.forEachDirtyRegion((regionIndex) => regions.push(regionIndex));
  return regions;
}

/** Recomputes the trailing XXH64 after a test edits a persisted DRL. */
function reseal(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setBigUint64(bytes.length - 8, checksum.hash64(bytes.subarray(0, bytes.length - 8)), true);
  return bytes;
}

async function persistedBytes(options = geometry, dirty: number[] = [0]): Promise<Uint8Array> {
  const cell = new MemoryDurableCell();
  const drl = await DirtyRegionLog.open(cell, options, deps);
  for (const region of dirty) drl.beginWrite(region * drl.regionBytes, 512);
  await drl.persist();
  return (await cell.read())!;
}

describe("DirtyRegionLog geometry", () => {
  test("Regions default to 1 MiB and the last one may be partial", async () => {
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes: 3 * MiB + 512 }, deps);
    expect(drl.regionBytes).toBe(MiB);
    expect(drl.regionCount).toBe(4);
    drl.markAllDirty();
    const ranges: number[][] = [];
    drl.forEachDirtyRegion((regionIndex, offsetBytes, lengthBytes) => ranges.push([regionIndex, offsetBytes, lengthBytes]));
    expect(ranges).toEqual([[0, 0, MiB], [1, MiB, MiB], [2, 2 * MiB, MiB], [3, 3 * MiB, 512]]);
    expect(drl.dirtyCount).toBe(4);
  });

  test("A write touches every region it overlaps and no other", async () => {
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), geometry, deps);
    expect(drl.beginWrite(4 * KiB - 512, 4 * KiB + 1024)).toBe(true); // regions 1, 2 (and 0's last sector)
    expect(dirtyList(drl)).toEqual([0, 1, 2]);
    expect([0, 1, 2, 3].map((region) => drl.inFlightCount(region))).toEqual([1, 1, 1, 0]);
    expect(drl.beginWrite(8 * KiB, 4 * KiB)).toBe(true); // exactly region 2: ends on a boundary
    expect(drl.inFlightCount(2)).toBe(2);
    expect(drl.inFlightCount(3)).toBe(0);
    expect(drl.beginWrite(40 * KiB, KiB)).toBe(true); // the partial last region, to the volume's end
    expect(dirtyList(drl)).toEqual([0, 1, 2, 10]);
    expect(drl.regionIndexOf(41 * KiB - 1)).toBe(10);
  });

  test.each([
    [{ sizeBytes: 4096, regionBytes: 3 * 512 }, /power of two/],
    [{ sizeBytes: 4096, regionBytes: 256 }, /power of two/],
    [{ sizeBytes: 4096, regionBytes: 2 * switchLimits.drlRegionBytesMax }, /power of two/],
    [{ sizeBytes: 4096, regionBytes: 4096.5 }, /power of two/],
    [{ sizeBytes: 0 }, /positive multiple of 512/],
    [{ sizeBytes: 1000 }, /positive multiple of 512/],
    [{ sizeBytes: 2 ** 60 }, /positive multiple of 512/],
    [{ sizeBytes: 2 ** 40, regionBytes: 512 }, /more than 16777216; use larger regions/],
  ])("Geometry %o is refused with a RangeError", async (options, message) => {
    await expect(DirtyRegionLog.open(new MemoryDurableCell(), options, deps)).rejects.toThrow(RangeError);
    await expect(DirtyRegionLog.open(new MemoryDurableCell(), options, deps)).rejects.toThrow(message);
  });

  test("A region of one sector and the largest region are accepted", async () => {
    const small = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes: 4096, regionBytes: 512 }, deps);
    expect(small.regionCount).toBe(8);
    const large = await DirtyRegionLog.open(
      new MemoryDurableCell(),
      { sizeBytes: 4096, regionBytes: switchLimits.drlRegionBytesMax },
      deps,
    );
    expect(large.regionCount).toBe(1);
  });

  test("Writes outside the volume or empty are refused and change nothing", async () => {
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), geometry, deps);
    for (const [offsetBytes, lengthBytes] of [[-512, 512], [0, 0], [40 * KiB, 2 * KiB], [41 * KiB, 512], [0.5, 512]]) {
      expect(() => drl.beginWrite(offsetBytes, lengthBytes)).toThrow(RangeError);
      expect(() => drl.endWrite(offsetBytes, lengthBytes)).toThrow(RangeError);
    }
    expect(drl.dirtyCount).toBe(0);
    expect(() => drl.inFlightCount(11)).toThrow(RangeError);
    expect(() => drl.isDirty(-1)).toThrow(RangeError);
    expect(() => drl.regionIndexOf(41 * KiB)).toThrow(RangeError);
  });

  test("Ending a write that was not begun is an assertion failure and changes nothing", async () => {
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), geometry, deps);
    drl.beginWrite(0, 512);
    expect(() => drl.endWrite(0, 8 * KiB)).toThrow(AssertionError); // region 1 never began
    expect(drl.inFlightCount(0)).toBe(1);
    drl.endWrite(0, 512);
    expect(() => drl.endWrite(0, 512)).toThrow(AssertionError);
  });
});

describe("DirtyRegionLog persists before a write to a clean region is acknowledged", () => {
  test("A new cell starts clean and is not written until a bit is set", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    expect(drl.dirtyCount).toBe(0);
    await drl.persist();
    expect(cell.stats.writes).toBe(0);
    expect(await cell.read()).toBeNull();
  });

  test("A write to a clean region needs a persist; a write to a durably dirty one does not", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    expect(drl.beginWrite(4 * KiB, 512)).toBe(true);
    await drl.persist();
    expect(cell.stats.writes).toBe(1);
    expect(await persistedDirty(await cell.read())).toEqual([1]);
    expect(drl.beginWrite(4 * KiB + 512, 512)).toBe(false);
    await drl.persist();
    expect(cell.stats.writes).toBe(1);
    expect(drl.generation).toBe(1);
  });

  test("A region set by another writer whose persist is in flight still needs a persist", async () => {
    // Seed 003 [0050]: acknowledging the second write before the bit is durable would let a
    // crash lose the only record that the region changed.
    const cell = new GatedDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    expect(drl.beginWrite(0, 512)).toBe(true);
    const first = drl.persist();
    expect(drl.beginWrite(512, 512)).toBe(true);
    let secondDone = false;
    const second = drl.persist().then(() => (secondDone = true));
    // Its bit is in the write in flight, so it waits for that one write, not another.
    await cell.finishNext();
    await Promise.all([first, second]);
    expect(secondDone).toBe(true);
    expect(cell.written.length).toBe(1);
    expect(drl.beginWrite(1024, 512)).toBe(false);
  });

  test("Persists coalesce: callers during a write share the next one, which carries their bits", async () => {
    const cell = new GatedDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    const first = drl.persist();
    const order: string[] = [];
    first.then(() => order.push("first"));
    const later: Promise<void>[] = [];
    for (let region = 1; region <= 10; region++) {
      expect(drl.beginWrite(region * 4 * KiB, 512)).toBe(true);
      later.push(drl.persist().then(() => void order.push(`region ${region}`)));
    }
    await settle();
    expect(cell.pendingCount).toBe(1);
    expect(await persistedDirty(cell.written[0])).toEqual([0]);
    await cell.finishNext();
    expect(order).toEqual(["first"]); // the others wait for the next write, not this one
    expect(cell.pendingCount).toBe(1);
    expect(await persistedDirty(cell.written[1])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await cell.finishNext();
    await Promise.all(later);
    expect(order.length).toBe(11);
    expect(cell.written.length).toBe(2);
    expect(cell.inFlightMax).toBe(1);
  });

  test("N concurrent persists during one write make at most two cell writes", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    const persists: Promise<void>[] = [];
    for (let region = 0; region < 11; region++) {
      drl.beginWrite(region * 4 * KiB, 512);
      persists.push(drl.persist(), drl.persist());
    }
    await Promise.all(persists);
    expect(cell.stats.writes).toBe(2);
    expect(await persistedDirty(await cell.read())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test("A failed cell write rejects its waiters with DirtyRegionLogError and keeps the bits", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    cell.faults.failNextWrite = true;
    const waiters = [drl.persist(), drl.persist(), drl.persist()];
    for (const waiter of waiters) {
      const error = await waiter.then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(DirtyRegionLogError);
      expect((error as Error).message).toMatch(/Cannot persist the dirty region log \(generation 1\): Injected/);
      expect((error as Error).cause).toBeInstanceOf(Error);
    }
    expect(drl.isDirty(0)).toBe(true);
    expect(await cell.read()).toBeNull();
    // The bit is not known durable: another write to the region must still wait for a persist.
    expect(drl.beginWrite(512, 512)).toBe(true);
    await drl.persist();
    expect(await persistedDirty(await cell.read())).toEqual([0]);
    expect(drl.beginWrite(1024, 512)).toBe(false);
  });

  test("A failed write fails only its own waiters; those waiting for the next write still succeed", async () => {
    const cell = new GatedDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    const first = drl.persist().then(() => "resolved", (error: unknown) => error);
    drl.beginWrite(4 * KiB, 512);
    const second = drl.persist().then(() => "resolved", (error: unknown) => error);
    await cell.failNext();
    expect(await first).toBeInstanceOf(DirtyRegionLogError);
    // The next write started when the failed one settled, and carries both bits.
    expect(cell.pendingCount).toBe(1);
    expect(await persistedDirty(cell.written[1])).toEqual([0, 1]);
    await cell.finishNext();
    expect(await second).toBe("resolved");
  });

  test("A cell write that throws synchronously is a DirtyRegionLogError too", async () => {
    const cell = {
      read: () => Promise.resolve(null),
      write: (): Promise<void> => {
        throw new TypeError("Synchronous failure");
      },
    };
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    await expect(drl.persist()).rejects.toThrow(DirtyRegionLogError);
    expect(drl.isDirty(0)).toBe(true);
  });
});

describe("DirtyRegionLog resets clear settled regions, only in sync", () => {
  test("A DRL opens with resets disabled: reset does nothing and writes nothing", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    await drl.persist();
    drl.endWrite(0, 512);
    expect(drl.resetsEnabled).toBe(false);
    expect(await drl.reset()).toBe(0);
    expect(drl.dirtyCount).toBe(1);
    expect(cell.stats.writes).toBe(1);
  });

  test("In sync, a reset clears regions with no write in flight and persists; out of sync it stops", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 12 * KiB); // regions 0, 1, 2
    drl.beginWrite(4 * KiB, 512); // region 1 again
    await drl.persist();
    drl.endWrite(0, 12 * KiB); // region 1 still has one write in flight
    drl.setInSync(true);
    expect(await drl.reset()).toBe(2);
    expect(dirtyList(drl)).toEqual([1]);
    expect(await persistedDirty(await cell.read())).toEqual([1]);
    drl.setInSync(false);
    drl.endWrite(4 * KiB, 512);
    expect(await drl.reset()).toBe(0);
    expect(dirtyList(drl)).toEqual([1]);
    drl.setInSync(true);
    expect(await drl.reset()).toBe(1);
    expect(await persistedDirty(await cell.read())).toEqual([]);
    expect(cell.stats.writes).toBe(3);
    expect(await drl.reset()).toBe(0); // nothing to clear: no cell write
    expect(cell.stats.writes).toBe(3);
  });

  test("A failed reset persist is a DirtyRegionLogError and the cell keeps the bits (safe)", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    await drl.persist();
    drl.endWrite(0, 512);
    drl.setInSync(true);
    cell.faults.failNextWrite = true;
    await expect(drl.reset()).rejects.toThrow(DirtyRegionLogError);
    expect(drl.dirtyCount).toBe(0);
    expect(await persistedDirty(await cell.read())).toEqual([0]);
    await drl.persist(); // the clear is retried by the next persist
    expect(await persistedDirty(await cell.read())).toEqual([]);
  });

  test("A write to a region a reset is clearing needs a persist again", async () => {
    const cell = new GatedDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(0, 512);
    const persisted = drl.persist();
    await cell.finishNext();
    await persisted;
    drl.endWrite(0, 512);
    drl.setInSync(true);
    const reset = drl.reset();
    expect(cell.pendingCount).toBe(1); // the reset's write, with region 0 clear, is in flight
    expect(drl.beginWrite(0, 512)).toBe(true);
    const again = drl.persist();
    await cell.finishNext();
    expect(await reset).toBe(1);
    expect(await persistedDirty(cell.value)).toEqual([]);
    await cell.finishNext();
    await again;
    expect(await persistedDirty(cell.value)).toEqual([0]);
  });

  test("markAllDirty sets every region and no bit past the last", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.markAllDirty();
    expect(drl.dirtyCount).toBe(11);
    expect(drl.beginWrite(0, 512)).toBe(true); // set, but not durable yet
    await drl.persist();
    expect(await persistedDirty(await cell.read())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    drl.markAllDirty();
    await drl.persist();
    expect(cell.stats.writes).toBe(1);
  });
});

describe("DirtyRegionLog reopens what it persisted and refuses anything else", () => {
  test("Reopening loads the persisted bits and generation, with resets disabled", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.open(cell, geometry, deps);
    drl.beginWrite(8 * KiB, 512);
    drl.beginWrite(40 * KiB, 512);
    await drl.persist();
    drl.beginWrite(16 * KiB, 512);
    await drl.persist();
    const reopened = await DirtyRegionLog.open(cell.crash(), geometry, deps);
    expect(dirtyList(reopened)).toEqual([2, 4, 10]);
    expect(reopened.dirtyCount).toBe(3);
    expect(reopened.generation).toBe(2);
    expect(reopened.resetsEnabled).toBe(false);
    expect(reopened.beginWrite(8 * KiB, 512)).toBe(false); // loaded bits are durable
    expect(reopened.inFlightCount(2)).toBe(1);
  });

  test("Every truncation and every changed byte is a DirtyRegionLogCorruptError", async () => {
    const bytes = await persistedBytes(geometry, [0, 3, 10]);
    for (let lengthBytes = 0; lengthBytes < bytes.length; lengthBytes++) {
      await expect(persistedDirty(bytes.slice(0, lengthBytes))).rejects.toThrow(DirtyRegionLogCorruptError);
    }
    const extended = new Uint8Array(bytes.length + 1);
    extended.set(bytes);
    await expect(persistedDirty(extended)).rejects.toThrow(DirtyRegionLogCorruptError);
    for (let index = 0; index < bytes.length; index++) {
      const changed = bytes.slice();
      changed[index] ^= 1 << (index % 8);
      await expect(persistedDirty(changed)).rejects.toThrow(DirtyRegionLogCorruptError);
    }
  });

  test.each([
    ["magic", (view: DataView) => view.setUint32(0, 0x4c524442, true), /magic 0x4c524442/],
    ["version", (view: DataView) => view.setUint16(4, 2, true), /version 2; this build reads version 1/],
    ["reserved bits", (view: DataView) => view.setUint16(6, 1, true), /reserved/],
    ["bits past the last region", (view: DataView) => view.setUint8(32 + 1, 0b1000), /past the last region/],
    ["region count", (view: DataView) => view.setUint32(12, 12, true), /claims 12 regions/],
    ["region size zero", (view: DataView) => view.setUint32(8, 0, true), /claims 11 regions of 0 bytes/],
    ["size", (view: DataView) => view.setFloat64(16, Number.NaN, true), /invalid size/],
    ["generation", (view: DataView) => view.setFloat64(24, -1, true), /generation \(-1\)/],
  ])("A checksummed cell with a bad %s is a DirtyRegionLogCorruptError", async (_field, edit, message) => {
    const bytes = await persistedBytes();
    edit(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const error = await persistedDirty(reseal(bytes)).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(DirtyRegionLogCorruptError);
    expect(error).toBeInstanceOf(DirtyRegionLogError);
    expect((error as Error).message).toMatch(message);
  });

  test("A cell with a length that does not match its region count is corrupt", async () => {
    // 11 regions take 2 bitmap bytes; claim a volume of 17 regions (3 bytes) with the same length.
    const bytes = await persistedBytes();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.setFloat64(16, 17 * 4 * KiB, true);
    view.setUint32(12, 17, true);
    await expect(persistedDirty(reseal(bytes))).rejects.toThrow(/holds 42 bytes; 17 regions take 43/);
  });

  test.each([
    ["volume size", { sizeBytes: 10 * 4 * KiB + 1536, regionBytes: 4 * KiB }],
    ["region size", { sizeBytes: 10 * 4 * KiB + KiB, regionBytes: 8 * KiB }],
    ["volume size with the same region count", { sizeBytes: 10 * 4 * KiB + 512, regionBytes: 4 * KiB }],
  ])("A valid DRL of another %s is a DirtyRegionLogGeometryError", async (_what, options) => {
    const bytes = await persistedBytes();
    const error = await persistedDirty(bytes, options).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(DirtyRegionLogGeometryError);
    expect(error).toBeInstanceOf(DirtyRegionLogError);
    expect((error as Error).message).toMatch(/written for a 41984-byte volume in 4096-byte regions/);
  });

  test("recreateAllDirty replaces a corrupt cell with every region dirty, persisted", async () => {
    const cell = new MemoryDurableCell(new Uint8Array([1, 2, 3]));
    await expect(DirtyRegionLog.open(cell, geometry, deps)).rejects.toThrow(DirtyRegionLogCorruptError);
    const drl = await DirtyRegionLog.recreateAllDirty(cell, geometry, deps);
    expect(drl.dirtyCount).toBe(11);
    expect(await persistedDirty(await cell.read())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(drl.beginWrite(0, 512)).toBe(false);
  });

  test("recreateAllDirty reports a failed write as a DirtyRegionLogError", async () => {
    const cell = new MemoryDurableCell();
    cell.faults.failNextWrite = true;
    await expect(DirtyRegionLog.recreateAllDirty(cell, geometry, deps)).rejects.toThrow(DirtyRegionLogError);
  });

  test("A cell that cannot be read is a DirtyRegionLogError with the cause", async () => {
    const cause = new Error("Injected read failure");
    const cell = { read: () => Promise.reject(cause), write: () => Promise.resolve() };
    const error = await DirtyRegionLog.open(cell, geometry, deps).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(DirtyRegionLogError);
    expect((error as Error).message).toMatch(/reading the cell failed: Injected read failure/);
    expect((error as Error).cause).toBe(cause);
  });

  test("open without a checksum dependency instantiates the shared one", async () => {
    const bytes = await persistedBytes();
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(bytes), geometry);
    expect(dirtyList(drl)).toEqual([0]);
  });
});

describe("ResetPolicy decides when a reset is due", () => {
  const policy = new ResetPolicy({ intervalUs: 10_000_000, intervalUsMin: 1_000_000, dirtyFractionMax: 0.5 });
  const state = { nowUs: 0, lastResetUs: 0, dirtyCount: 1, regionCount: 100 };

  test("A reset is due once the interval has passed, and never with nothing dirty", () => {
    expect(policy.isDue({ ...state, nowUs: 9_999_999 })).toBe(false);
    expect(policy.isDue({ ...state, nowUs: 10_000_000 })).toBe(true);
    expect(policy.isDue({ ...state, nowUs: 10_000_000, dirtyCount: 0 })).toBe(false);
  });

  test("A dirty fraction past the threshold makes it due early, but not before the minimum interval", () => {
    expect(policy.isDue({ ...state, nowUs: 999_999, dirtyCount: 60 })).toBe(false);
    expect(policy.isDue({ ...state, nowUs: 1_000_000, dirtyCount: 50 })).toBe(true);
    expect(policy.isDue({ ...state, nowUs: 1_000_000, dirtyCount: 49 })).toBe(false);
  });

  test("A clock that went backwards makes a reset due", () => {
    expect(policy.isDue({ ...state, nowUs: 5, lastResetUs: 10 })).toBe(true);
  });

  test("Defaults come from switchLimits", () => {
    const defaults = new ResetPolicy();
    expect(defaults.intervalUs).toBe(switchLimits.drlResetIntervalUsDefault);
    expect(defaults.intervalUsMin).toBe(switchLimits.drlResetIntervalUsMin);
    expect(defaults.dirtyFractionMax).toBe(switchLimits.drlResetDirtyFractionDefault);
    expect(new ResetPolicy({ intervalUs: 500 }).intervalUsMin).toBe(500);
  });

  test.each([
    [{ intervalUs: 0 }, /reset interval 0/],
    [{ intervalUs: 1.5 }, /reset interval 1.5/],
    [{ intervalUs: 10, intervalUsMin: 11 }, /minimum reset interval 11/],
    [{ intervalUsMin: -1 }, /minimum reset interval -1/],
    [{ dirtyFractionMax: 0 }, /dirty fraction 0/],
    [{ dirtyFractionMax: 1.5 }, /dirty fraction 1.5/],
    [{ dirtyFractionMax: Number.NaN }, /dirty fraction NaN/],
  ])("Options %o are refused with a RangeError", (options, message) => {
    expect(() => new ResetPolicy(options)).toThrow(RangeError);
    expect(() => new ResetPolicy(options)).toThrow(message);
  });

  test("createClean persists a clean DRL, so the next open knows the volume was seen", async () => {
    const cell = new MemoryDurableCell();
    const drl = await DirtyRegionLog.createClean(cell, { sizeBytes: 4 * 1024 * 1024, regionBytes: 1024 * 1024 });
    expect(drl.dirtyCount).toBe(0);
    expect(await cell.read()).not.toBeNull();
    expect((await DirtyRegionLog.open(cell, { sizeBytes: 4 * 1024 * 1024, regionBytes: 1024 * 1024 })).dirtyCount).toBe(0);
  });
});
