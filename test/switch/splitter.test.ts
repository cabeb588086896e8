/**
 * Proves the splitter's write path (seed 004 [0043]-[0046], seed 003 [0049]-[0051], SPEC.md
 * guarantees 2, 3, 5): writes reach the primary and the copy stream in seq order; a write to a
 * clean region is not acknowledged before the DRL cell write resolved (a gated cell); for
 * overlapping concurrent writes the primary's content equals the copy stream replayed in seq
 * order (fast-check, with primary writes completing in random order); a full buffer drops to
 * marking (DRL out of sync, a gap marker later) or holds writers until acknowledgements free
 * room; a primary failure reaches the host and queues a primaryWriteError marker; bad ranges
 * change nothing; the copy buffer never grows. The splitter is driven directly; the link is
 * played by calls to `resume` / `acknowledge`.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createChecksum } from "../../src/core/checksum.ts";
import type { BlockDevice, WriteOptions } from "../../src/io/block_device.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { DirtyRegionLogError } from "../../src/switch/dirty_region_log.ts";
import { PrimaryWriteError, Splitter, SplitterClosedError, SplitterError } from "../../src/switch/splitter.ts";
import { GatedDurableCell, settle } from "./gated_durable_cell.ts";

const volumeBytes = 1024 * 1024;
const regionBytes = 64 * 1024;

async function openSplitter(options: { bufferBytes?: number; onFull?: "mark" | "wait"; primary?: BlockDevice; cell?: GatedDurableCell | MemoryDurableCell } = {}) {
  const primary = options.primary ?? new MemoryBlockDevice(volumeBytes);
  const drlCell = options.cell ?? new MemoryDurableCell();
  const clock = new ManualClock();
  const splitter = await Splitter.open(
    { primary, drlCell, clock, checksum: await createChecksum() },
    { name: "db", regionBytes, bufferBytes: options.bufferBytes ?? 256 * 1024, onFull: options.onFull },
  );
  return { splitter, primary, drlCell, clock };
}

function filled(lengthBytes: number, value: number): Uint8Array {
  return new Uint8Array(lengthBytes).fill(value);
}

/** Every held write as {seq, offsetBytes, data copy}. */
function copies(splitter: Splitter) {
  const result: { seq: number; offsetBytes: number; data: Uint8Array }[] = [];
  const oldest = splitter.copyBuffer.oldestSeq;
  if (oldest !== undefined) {
    splitter.copyBuffer.forEachFrom(oldest, (entry) => {
      result.push({ seq: entry.seq, offsetBytes: entry.offsetBytes, data: entry.data.slice() });
    });
  }
  return result;
}

/** A primary whose writes each wait a chosen number of microtask turns (completion order scrambled). */
class DelayedDevice implements BlockDevice {
  readonly next: MemoryBlockDevice;
  readonly delays: number[];
  #call = 0;
  constructor(next: MemoryBlockDevice, delays: number[]) {
    this.next = next;
    this.delays = delays;
  }
  get sizeBytes() {
    return this.next.sizeBytes;
  }
  get capabilities() {
    return this.next.capabilities;
  }
  read(offsetBytes: number, target: Uint8Array) {
    return this.next.read(offsetBytes, target);
  }
  async write(offsetBytes: number, source: Uint8Array, options?: WriteOptions) {
    const turns = this.delays[this.#call++ % this.delays.length];
    for (let i = 0; i < turns * 4; i++) await Promise.resolve();
    return this.next.write(offsetBytes, source, options);
  }
  flush() {
    return this.next.flush();
  }
  close() {
    return this.next.close();
  }
}

describe("Splitter", () => {
  it("sends writes to the primary and to the copy stream in seq order", async () => {
    const { splitter, primary } = await openSplitter();
    expect(splitter.state).toBe("protecting");
    await splitter.write(0, filled(4096, 1));
    await splitter.write(8192, filled(512, 2));
    await splitter.write(0, filled(1024, 3));
    expect(copies(splitter).map((c) => [c.seq, c.offsetBytes, c.data.length, c.data[0]])).toEqual([
      [1, 0, 4096, 1],
      [2, 8192, 512, 2],
      [3, 0, 1024, 3],
    ]);
    expect(splitter.nextSeq).toBe(4);
    const mem = primary as MemoryBlockDevice;
    expect(mem.bytes()[0]).toBe(3);
    expect(mem.bytes()[2048]).toBe(1);
    expect(mem.bytes()[8192]).toBe(2);
    expect(splitter.unacknowledgedCount).toBe(3);
    expect(splitter.oldestUnacknowledgedTimeUs).toBeTypeOf("number");
    const target = new Uint8Array(512);
    await splitter.read(8192, target);
    expect(target[0]).toBe(2);
  });

  it("acknowledgements release the copies and end the DRL holds", async () => {
    const { splitter } = await openSplitter();
    await splitter.write(0, filled(4096, 1));
    await splitter.write(regionBytes * 3, filled(4096, 2));
    const drl = splitter.dirtyRegionLog;
    expect(drl.inFlightCount(0)).toBe(1); // the copy hold; the primary hold ended
    splitter.acknowledge(1);
    expect(drl.inFlightCount(0)).toBe(0);
    expect(drl.inFlightCount(3)).toBe(1);
    expect(splitter.copyBuffer.entryCount).toBe(1);
    splitter.acknowledge(2);
    expect(drl.inFlightCount(3)).toBe(0);
    expect(splitter.copyBuffer.usedBytes).toBe(0);
    expect(splitter.unacknowledgedCount).toBe(0);
    expect(await drl.reset()).toBe(2); // in sync: settled bits can be cleared
  });

  it("maintain resets settled DRL bits when the policy says so, and never while out of sync", async () => {
    const { splitter, clock } = await openSplitter({ bufferBytes: 8192 });
    splitter.resume(0);
    await splitter.write(0, filled(4096, 1));
    await splitter.write(regionBytes * 2, filled(4096, 2));
    expect(await splitter.maintain()).toBe(0); // not due yet (default policy: every 30 s)
    clock.advanceUs(31_000_000);
    expect(await splitter.maintain()).toBe(0); // due, but both writes are unacknowledged
    expect(splitter.dirtyRegionCount).toBe(2);
    splitter.acknowledge(1);
    clock.advanceUs(31_000_000);
    expect(await splitter.maintain()).toBe(1); // region 0 settled; region 2 still in flight
    expect(splitter.dirtyRegionLog.isDirty(2)).toBe(true);
    // Out of sync (a full buffer drops to marking): resets stop, so the DRL keeps every bit.
    await splitter.write(regionBytes * 4, filled(4096, 3));
    await splitter.write(regionBytes * 6, filled(4096, 4)); // does not fit
    expect(splitter.state).toBe("marking");
    splitter.acknowledge(3);
    clock.advanceUs(31_000_000);
    expect(await splitter.maintain()).toBe(0);
    expect(splitter.dirtyRegionLog.isDirty(6)).toBe(true);
  });

  it("does not acknowledge a write to a clean region before the DRL cell write resolved", async () => {
    const cell = new GatedDurableCell();
    const { splitter, primary } = await openSplitter({ cell });
    let acknowledged = false;
    const write = splitter.write(0, filled(4096, 7)).then(() => (acknowledged = true));
    await settle();
    expect(cell.pendingCount).toBe(1);
    expect(acknowledged).toBe(false);
    expect((primary as MemoryBlockDevice).bytes()[0]).toBe(0); // not even issued
    await cell.finishNext();
    await write;
    expect(acknowledged).toBe(true);
    // A second write to the now durable region needs no persist.
    await splitter.write(4096, filled(512, 8));
    expect(cell.pendingCount).toBe(0);
  });

  it("a failed DRL persist fails the host write and changes neither primary nor copy stream", async () => {
    const cell = new GatedDurableCell();
    const { splitter, primary } = await openSplitter({ cell });
    const outcome = splitter.write(0, filled(4096, 7)).then(() => null, (error: unknown) => error);
    await settle();
    await cell.failNext();
    expect(await outcome).toBeInstanceOf(DirtyRegionLogError);
    expect((primary as MemoryBlockDevice).bytes()[0]).toBe(0);
    expect(splitter.copyBuffer.entryCount).toBe(0);
    expect(splitter.nextSeq).toBe(1);
    expect(splitter.dirtyRegionLog.inFlightCount(0)).toBe(0);
    expect(splitter.dirtyRegionLog.isDirty(0)).toBe(true); // a set bit may be stale
  });

  it("overlapping concurrent writes: the primary equals the copy stream replayed in seq order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ sector: fc.integer({ min: 0, max: 31 }), sectors: fc.integer({ min: 1, max: 8 }) }), {
          minLength: 1,
          maxLength: 24,
        }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
        async (writes, delays) => {
          const memory = new MemoryBlockDevice(64 * 512);
          const primary = new DelayedDevice(memory, delays);
          const splitter = await Splitter.open(
            { primary, drlCell: new MemoryDurableCell(), clock: new ManualClock(), checksum: await createChecksum() },
            { name: "db", regionBytes: 4096, bufferBytes: 1024 * 1024 },
          );
          await Promise.all(writes.map((w, i) => splitter.write(w.sector * 512, filled(w.sectors * 512, i + 1))));
          const replay = new Uint8Array(64 * 512);
          const held = copies(splitter);
          expect(held.map((c) => c.seq)).toEqual(writes.map((_, i) => i + 1));
          for (const copy of held) replay.set(copy.data, copy.offsetBytes);
          expect(memory.bytes()).toEqual(replay);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("onFull mark: a full buffer drops to marking, DRL out of sync, then a gap marker", async () => {
    const { splitter } = await openSplitter({ bufferBytes: 8192 });
    splitter.resume(0);
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(4096, 2));
    await splitter.write(8192, filled(4096, 3)); // does not fit
    expect(splitter.state).toBe("marking");
    expect(splitter.needsResync).toBe(true);
    expect(splitter.dirtyRegionLog.resetsEnabled).toBe(false);
    expect(splitter.nextSeq).toBe(3); // no seq for the uncopied write
    await splitter.write(regionBytes * 5, filled(512, 4)); // still marking: the DRL covers it
    expect(splitter.dirtyRegionLog.isDirty(5)).toBe(true);
    expect(() => splitter.snapshot("inside-gap")).toThrow(SplitterError);
    splitter.acknowledge(2);
    expect(splitter.state).toBe("protecting");
    const gap = splitter.markerAt(3);
    expect(gap?.kind).toBe("gap");
    expect(gap?.detail).toMatchObject({ reason: "marking mode", afterSeq: 2, missedWrites: 2 });
    expect(splitter.dirtyRegionLog.resetsEnabled).toBe(false); // needs resync
    await splitter.write(0, filled(512, 5));
    expect(copies(splitter).map((c) => c.seq)).toEqual([4]);
  });

  it("onFull mark: a write larger than the whole buffer drops to marking, the host's write succeeds", async () => {
    const { splitter, primary } = await openSplitter({ bufferBytes: 8192 });
    splitter.resume(0);
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(16384, 2)); // larger than the buffer: cannot be copied
    expect(splitter.state).toBe("marking");
    expect(splitter.nextSeq).toBe(2);
    expect(splitter.dirtyRegionLog.isDirty(0)).toBe(true);
    const back = new Uint8Array(16384);
    await primary.read(4096, back);
    expect(back).toEqual(filled(16384, 2));
    splitter.acknowledge(1);
    expect(splitter.markerAt(2)).toMatchObject({ kind: "gap", detail: { reason: "marking mode", afterSeq: 1, missedWrites: 1 } });
  });

  it("onFull mark: marking mode does not end while the link is down", async () => {
    const { splitter } = await openSplitter({ bufferBytes: 4096 });
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(4096, 2));
    expect(splitter.state).toBe("marking");
    splitter.acknowledge(1);
    expect(splitter.state).toBe("marking");
    splitter.resume(1);
    expect(splitter.state).toBe("protecting");
    expect(splitter.markerAt(2)?.kind).toBe("gap");
  });

  it("onFull wait: writers are held until acknowledgements free room, in arrival order", async () => {
    const { splitter, primary } = await openSplitter({ bufferBytes: 8192, onFull: "wait" });
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(4096, 2));
    let thirdDone = false;
    let fourthDone = false;
    const third = splitter.write(0, filled(4096, 3)).then(() => (thirdDone = true));
    const fourth = splitter.write(0, filled(512, 4)).then(() => (fourthDone = true));
    await settle();
    expect(thirdDone || fourthDone).toBe(false);
    expect(splitter.state).toBe("protecting");
    expect((primary as MemoryBlockDevice).bytes()[0]).toBe(1);
    splitter.acknowledge(1);
    await third;
    expect(fourthDone).toBe(false); // 4096 free held the third; the fourth still waits
    splitter.acknowledge(2);
    await fourth;
    expect(copies(splitter).map((c) => [c.seq, c.data[0]])).toEqual([[3, 3], [4, 4]]);
    expect((primary as MemoryBlockDevice).bytes()[0]).toBe(4);
    expect(splitter.copyBuffer.usedBytes).toBeLessThanOrEqual(splitter.copyBuffer.bytesMax);
  });

  it("counts host writes, copies, waits for room with the time waited, misses, marking entries and primary errors", async () => {
    const waiting = await openSplitter({ bufferBytes: 8192, onFull: "wait" });
    await waiting.splitter.write(0, filled(4096, 1));
    await waiting.splitter.write(4096, filled(4096, 2));
    const third = waiting.splitter.write(8192, filled(4096, 3));
    await settle();
    waiting.clock.advanceUs(2_500_000); // the appliance takes 2.5 s to answer
    waiting.splitter.acknowledge(1);
    await third;
    expect(waiting.splitter.counters).toEqual({
      hostWrites: 3,
      hostWriteBytes: 3 * 4096,
      primaryWriteErrors: 0,
      copiedWrites: 3,
      bufferWaits: 1,
      bufferWaitSeconds: 2.5,
      missedWrites: 0,
      markingEntries: 0,
    });

    const marking = await openSplitter({ bufferBytes: 8192, onFull: "mark" });
    await marking.splitter.write(0, filled(8192, 1));
    await marking.splitter.write(8192, filled(512, 2)); // no room: marking
    await marking.splitter.write(8704, filled(512, 3));
    (marking.primary as MemoryBlockDevice).faults.failNextWrite = true;
    await expect(marking.splitter.write(0, filled(512, 4))).rejects.toThrow(PrimaryWriteError);
    expect(marking.splitter.counters).toMatchObject({
      hostWrites: 3,
      hostWriteBytes: 8192 + 1024,
      primaryWriteErrors: 1,
      copiedWrites: 1,
      bufferWaits: 0,
      missedWrites: 3,
      markingEntries: 1,
    });
  });

  it("onFull wait: copies lent to a send keep their room after the acknowledgement until the loan ends, then waiters go on", async () => {
    const { splitter } = await openSplitter({ bufferBytes: 8192, onFull: "wait" });
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(4096, 2));
    const lent = splitter.lendCopies(1, 2);
    let thirdDone = false;
    const third = splitter.write(0, filled(4096, 3)).then(() => (thirdDone = true));
    splitter.acknowledge(2); // the appliance answered before the send settled
    await settle();
    expect(thirdDone).toBe(false);
    expect(lent.map((view) => [view[0], view[4096]])).toEqual([[1, 2]]);
    splitter.endCopyLoan();
    await third;
    expect(copies(splitter).map((c) => [c.seq, c.data[0]])).toEqual([[3, 3]]);
    splitter.endCopyLoan(); // idempotent
  });

  it("close refuses writes waiting for room (onFull wait) and writes held at the restore gate, writing nothing", async () => {
    const { splitter, primary } = await openSplitter({ bufferBytes: 8192, onFull: "wait" });
    await splitter.write(0, filled(4096, 1));
    await splitter.write(4096, filled(4096, 2));
    const waiting = splitter.write(8192, filled(4096, 3));
    splitter.pauseHostWrites();
    const held = splitter.write(16384, filled(512, 4));
    await settle();
    splitter.close();
    await expect(waiting).rejects.toThrow(SplitterClosedError);
    await expect(held).rejects.toThrow(SplitterClosedError);
    const bytes = (primary as MemoryBlockDevice).bytes();
    expect(bytes[8192]).toBe(0);
    expect(bytes[16384]).toBe(0);
    expect(splitter.dirtyRegionLog.inFlightCount(0)).toBe(2); // only the two copies still unacknowledged hold it
    splitter.acknowledge(2);
    expect(splitter.dirtyRegionLog.inFlightCount(0)).toBe(0);
  });

  it("a primary write failure reaches the host and queues a primaryWriteError marker", async () => {
    const { splitter, primary } = await openSplitter();
    (primary as MemoryBlockDevice).faults.failNextWrite = true;
    await expect(splitter.write(4096, filled(512, 9))).rejects.toThrow(PrimaryWriteError);
    expect(copies(splitter).map((c) => c.seq)).toEqual([1]);
    const marker = splitter.markerAt(2);
    expect(marker?.kind).toBe("primaryWriteError");
    expect(marker?.detail).toMatchObject({ seq: 1, offsetBytes: 4096, lengthBytes: 512 });
    expect(splitter.dirtyRegionLog.isDirty(0)).toBe(true);
    expect(splitter.dirtyRegionLog.inFlightCount(0)).toBe(1); // the copy hold, until acknowledged
    splitter.acknowledge(2);
    expect(splitter.dirtyRegionLog.inFlightCount(0)).toBe(0);
    expect(splitter.unacknowledgedCount).toBe(0);
  });

  it("rejects bad ranges and changes nothing", async () => {
    const { splitter, primary, drlCell } = await openSplitter();
    const cases: [number, Uint8Array][] = [
      [0, new Uint8Array(0)],
      [100, filled(512, 1)],
      [0, filled(100, 1)],
      [volumeBytes - 512, filled(1024, 1)],
      [-512, filled(512, 1)],
      [Number.NaN, filled(512, 1)],
    ];
    for (const [offsetBytes, data] of cases) {
      await expect(splitter.write(offsetBytes, data)).rejects.toThrow(RangeError);
    }
    expect(splitter.nextSeq).toBe(1);
    expect(splitter.copyBuffer.entryCount).toBe(0);
    expect(splitter.dirtyRegionCount).toBe(0);
    expect((drlCell as MemoryDurableCell).stats.writes).toBe(0);
    expect((primary as MemoryBlockDevice).stats.writes).toBe(0);
    await expect(splitter.read(100, new Uint8Array(512))).rejects.toThrow(RangeError);
    expect(() => splitter.snapshot("")).toThrow(RangeError);
    splitter.close();
    await expect(splitter.write(0, filled(512, 1))).rejects.toThrow(SplitterClosedError);
  });

  it("keeps one copy buffer whose usedBytes never exceeds its size", async () => {
    const { splitter } = await openSplitter({ bufferBytes: 16 * 1024 });
    const buffer = splitter.copyBuffer;
    splitter.resume(0);
    for (let i = 0; i < 200; i++) {
      await splitter.write((i % 64) * 4096, filled(512 * (1 + (i % 7)), i & 0xff));
      expect(splitter.copyBuffer).toBe(buffer);
      expect(buffer.usedBytes).toBeLessThanOrEqual(buffer.bytesMax);
      if (i % 5 === 4) splitter.acknowledge(splitter.nextSeq - 3 > splitter.acknowledgedSeq ? splitter.nextSeq - 3 : splitter.acknowledgedSeq);
    }
  });

  it("snapshot queues a marker after the writes copied so far", async () => {
    const { splitter } = await openSplitter();
    await splitter.write(0, filled(512, 1));
    expect(splitter.snapshot("before-upgrade")).toBe(2);
    expect(splitter.markerAt(2)).toMatchObject({ kind: "snapshot", detail: { name: "before-upgrade" } });
    await splitter.write(0, filled(512, 2));
    expect(copies(splitter).map((c) => c.seq)).toEqual([1, 3]);
  });

  it("a restart with dirty DRL bits needs resync and records a gap first", async () => {
    const drlCell = new MemoryDurableCell();
    const first = await openSplitter({ cell: drlCell });
    await first.splitter.write(regionBytes * 2, filled(512, 1)); // never acknowledged: the switch "crashes"
    const { splitter } = await openSplitter({ cell: drlCell });
    expect(splitter.needsResync).toBe(true);
    expect(splitter.dirtyRegionLog.resetsEnabled).toBe(false);
    expect(splitter.markerAt(1)).toMatchObject({ kind: "gap", detail: { reason: "switch restart" } });
    // The appliance had journaled seq 1 of the first life: the splitter continues after it.
    splitter.resume(1);
    expect(splitter.markerAt(2)).toMatchObject({ kind: "gap", detail: { reason: "switch restart" } });
    expect(splitter.nextSeq).toBe(3);
  });
});
