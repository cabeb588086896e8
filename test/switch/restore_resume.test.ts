/**
 * Proves that a restore survives a crash of the switch by resuming (issue "Restore"): the
 * checkpoint's cell format (round trip, damage refused), and a property test against the
 * oracle — random volumes, random extents to restore, random host writes during an instant
 * restore (FUA, so each is durable once acknowledged), a crash of the primary, the DRL cell and
 * the checkpoint cell at a random moment (unsynced writes lost, kept or torn, from a seed),
 * then a resume from what survived: the primary must equal the target with every acknowledged
 * host write on top, byte for byte, and the DRL must cover every region the restore touched
 * until it ends.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createChecksum } from "../../src/core/checksum.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { DirtyRegionLog } from "../../src/switch/dirty_region_log.ts";
import { RestoreCheckpoint, RestoreCheckpointError } from "../../src/switch/restore_checkpoint.ts";
import { RestoreSession, type RestoreSource, withDirtyRegions } from "../../src/switch/restore_session.ts";

const sizeBytes = 1024 * 1024;
const chunkBytes = 16 * 1024;
const regionBytes = 64 * 1024;
const checksum = await createChecksum();

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

/** A source that waits a timer turn before each read (so the copy spreads over time). */
function slowSource(device: RestoreSource): RestoreSource {
  return {
    async read(offsetBytes: number, target: Uint8Array) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      await device.read(offsetBytes, target);
    },
  };
}

const record = { toSeq: 42, toTimeUs: 1_700_000_000_000_000, markerSeq: 77, instant: true, requestId: 0 };

describe("RestoreCheckpoint", () => {
  it("keeps the chunks left across a reopen, and an ended restore as none", async () => {
    const cell = new MemoryDurableCell();
    const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    expect(checkpoint.active).toBeNull();
    await checkpoint.begin({ ...record, chunkBytes }, (chunk) => chunk % 3 === 0);
    checkpoint.markDone(0);
    await checkpoint.persist();
    const again = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    expect(again.active).toEqual({ ...record, chunkBytes });
    expect(again.chunkCount).toBe(sizeBytes / chunkBytes);
    expect(again.isPending(0)).toBe(false);
    expect(again.isPending(3)).toBe(true);
    expect(again.isPending(4)).toBe(false);
    expect(again.pendingCount()).toBe(Math.ceil(64 / 3) - 1);
    await again.clear();
    expect((await RestoreCheckpoint.open(cell, { sizeBytes, checksum })).active).toBeNull();
  });

  it("shares one cell write among persists asked while one is under way", async () => {
    const cell = new MemoryDurableCell();
    const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    await checkpoint.begin({ ...record, chunkBytes }, () => true);
    const writesBefore = cell.stats.writes;
    checkpoint.markDone(1);
    const first = checkpoint.persist();
    checkpoint.markDone(2);
    const second = checkpoint.persist();
    checkpoint.markDone(3);
    const third = checkpoint.persist();
    expect(second).toBe(first); // not started yet: it will carry all three
    expect(third).toBe(first);
    await Promise.all([first, second, third]);
    expect(cell.stats.writes - writesBefore).toBe(1);
    const again = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    expect([1, 2, 3].map((chunk) => again.isPending(chunk))).toEqual([false, false, false]);
  });

  it("refuses a damaged, foreign or mismatched cell with a clear error, changing nothing", async () => {
    const cell = new MemoryDurableCell();
    const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    await checkpoint.begin({ ...record, chunkBytes }, () => true);
    const good = (await cell.read())!;
    const flipped = good.slice();
    flipped[60] ^= 1;
    await expect(RestoreCheckpoint.open(new MemoryDurableCell(flipped), { sizeBytes, checksum })).rejects.toThrow(/checksum/);
    await expect(RestoreCheckpoint.open(new MemoryDurableCell(good.subarray(0, 20)), { sizeBytes, checksum })).rejects.toThrow(RestoreCheckpointError);
    await expect(RestoreCheckpoint.open(new MemoryDurableCell(new TextEncoder().encode("x".repeat(100))), { sizeBytes, checksum }))
      .rejects.toThrow(/not a restore checkpoint/);
    await expect(RestoreCheckpoint.open(new MemoryDurableCell(good.subarray(0, good.length - 1)), { sizeBytes, checksum }))
      .rejects.toThrow(/bytes, not the/);
    await expect(RestoreCheckpoint.open(new MemoryDurableCell(good), { sizeBytes: 2 * sizeBytes, checksum })).rejects.toThrow(/volume/);
    expect(await cell.read()).toEqual(good);
  });
});

describe("withDirtyRegions", () => {
  it("joins the DRL's dirty regions to the extents, ascending and apart", async () => {
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes, regionBytes }, { checksum });
    drl.beginWrite(0, 512);
    drl.beginWrite(3 * regionBytes + 10 * 512, 512);
    const joined = withDirtyRegions([{ offsetBytes: regionBytes - 512, lengthBytes: 1024 }, { offsetBytes: 8 * regionBytes, lengthBytes: 512 }], drl);
    expect(joined).toEqual([
      { offsetBytes: 0, lengthBytes: regionBytes + 512 },
      { offsetBytes: 3 * regionBytes, lengthBytes: regionBytes },
      { offsetBytes: 8 * regionBytes, lengthBytes: 512 },
    ]);
  });
});

const extentArbitrary = fc.tuple(fc.integer({ min: 0, max: sizeBytes / 512 - 1 }), fc.integer({ min: 1, max: 256 }));
const hostWriteArbitrary = fc.record({
  sector: fc.integer({ min: 0, max: sizeBytes / 512 - 8 }),
  sectors: fc.integer({ min: 1, max: 8 }),
  fill: fc.integer({ min: 1, max: 255 }),
  pauseTurns: fc.integer({ min: 0, max: 3 }),
});

describe("a restore that crashes and resumes", () => {
  it("ends with the primary equal to the target plus every acknowledged host write", async () => {
    const seen = { resumedWithChunksLeft: 0, hostWritesBeforeCrash: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(extentArbitrary, { minLength: 1, maxLength: 12 }),
        fc.array(hostWriteArbitrary, { maxLength: 24 }),
        fc.integer({ min: 0, max: 20 }),
        fc.integer(),
        async (rawExtents, hostWrites, crashAfterTurns, seed) => {
          const random = new SeededRandom(seed);
          // The primary before the restore (H) and the target (P) differ inside the extents.
          const before = new Uint8Array(sizeBytes).fill(0xaa);
          const target = before.slice();
          const extents = normalise(rawExtents);
          for (const { offsetBytes, lengthBytes } of extents) {
            for (let at = offsetBytes; at < offsetBytes + lengthBytes; at += 512) target.fill((at / 512) & 0x7f, at, at + 512);
          }
          let primary = new MemoryBlockDevice(sizeBytes, { contents: before });
          const drlCell = new MemoryDurableCell();
          const checkpointCell = new MemoryDurableCell();
          const drl = await DirtyRegionLog.open(drlCell, { sizeBytes, regionBytes }, { checksum });
          drl.setInSync(true);
          const checkpoint = await RestoreCheckpoint.open(checkpointCell, { sizeBytes, checksum });
          const source = slowSource(new MemoryBlockDevice(sizeBytes, { contents: target }));
          const session = await RestoreSession.hold({ primary, drl, source }, { extents, chunkBytes, copyBytesMax: chunkBytes });
          session.begin({ checkpoint, record });
          session.finished.catch(() => {});

          // The oracle: the target, then each host write acknowledged before the crash (and the
          // old content with the same writes, for a crash before the checkpoint was durable).
          const expected = target.slice();
          const expectedOld = before.slice();
          let turns = 0;
          let crashed = false;
          for (const write of hostWrites) {
            for (let i = 0; i < write.pauseTurns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
            turns += write.pauseTurns + 1;
            if (turns > crashAfterTurns) {
              crashed = true;
              break;
            }
            const offsetBytes = write.sector * 512;
            const data = new Uint8Array(write.sectors * 512).fill(write.fill);
            await session.prepare(offsetBytes, data.length, true);
            await primary.write(offsetBytes, data, { fua: true }); // acknowledged: durable
            expected.set(data, offsetBytes);
            expectedOld.set(data, offsetBytes);
            seen.hostWritesBeforeCrash++;
          }
          if (!crashed) {
            for (let i = turns; i <= crashAfterTurns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
          }
          // Power loss: the primary, the DRL cell and the checkpoint cell keep what they keep.
          primary = primary.crash(random);
          const survivingDrl = await DirtyRegionLog.open(drlCell.crash(random), { sizeBytes, regionBytes }, { checksum });
          const survivingCell = checkpointCell.crash(random);
          const survivingCheckpoint = await RestoreCheckpoint.open(survivingCell, { sizeBytes, checksum });
          // Every chunk still to restore lies in a dirty region (resync after the restart covers the rest).
          if (survivingCheckpoint.active !== null) {
            if (survivingCheckpoint.pendingCount() > 0) seen.resumedWithChunksLeft++;
            for (let chunk = 0; chunk < survivingCheckpoint.chunkCount; chunk++) {
              if (survivingCheckpoint.isPending(chunk)) {
                expect(survivingDrl.isDirty(Math.floor((chunk * chunkBytes) / regionBytes))).toBe(true);
              }
            }
            const resumed = await RestoreSession.resume(
              { primary, drl: survivingDrl, source: new MemoryBlockDevice(sizeBytes, { contents: target }) },
              survivingCheckpoint,
            );
            await resumed.finished;
            expect(resumed.state).toBe("done");
            expect((await RestoreCheckpoint.open(survivingCell, { sizeBytes, checksum })).active).toBeNull();
          }
          const bytes = new Uint8Array(sizeBytes);
          await primary.read(0, bytes);
          if (survivingCheckpoint.active === null && session.state !== "done") {
            // Crashed before the checkpoint was durable: no resume. Each sector holds the target's
            // bytes or the old ones (every acknowledged host write in both), and where it is not
            // yet the target's, the DRL is dirty: the resync after the restart journals it.
            for (let at = 0; at < sizeBytes; at += 512) {
              const sector = bytes.subarray(at, at + 512);
              if (firstDifference(sector, expected.subarray(at, at + 512)) === -1) continue;
              expect(firstDifference(sector, expectedOld.subarray(at, at + 512))).toBe(-1);
              expect(survivingDrl.isDirty(Math.floor(at / regionBytes))).toBe(true);
            }
            return;
          }
          expect(firstDifference(bytes, expected)).toBe(-1);
        },
      ),
      { numRuns: 100 },
    );
    // The runs did crash mid-copy, with host writes on restored chunks.
    expect(seen.resumedWithChunksLeft).toBeGreaterThan(20);
    expect(seen.hostWritesBeforeCrash).toBeGreaterThan(20);
  });

  it("suspends on a stop, keeping the checkpoint and the DRL holds, and the resume finishes the copy", async () => {
    const primary = new MemoryBlockDevice(sizeBytes, { contents: new Uint8Array(sizeBytes).fill(1) });
    const targetBytes = new Uint8Array(sizeBytes).fill(2);
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes, regionBytes }, { checksum });
    drl.setInSync(true);
    const cell = new MemoryDurableCell();
    const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    const source = slowSource(new MemoryBlockDevice(sizeBytes, { contents: targetBytes }));
    const session = await RestoreSession.hold({ primary, drl, source }, { extents: [{ offsetBytes: 0, lengthBytes: sizeBytes }], chunkBytes, copyBytesMax: chunkBytes });
    session.begin({ checkpoint, record: { ...record, instant: false } });
    session.suspend();
    await session.finished;
    expect(session.state).toBe("suspended");
    expect(drl.dirtyCount).toBe(sizeBytes / regionBytes); // still held
    const kept = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    expect(kept.active?.instant).toBe(false);
    expect(kept.pendingCount()).toBeGreaterThan(0);
    const resumed = await RestoreSession.resume({ primary, drl, source: new MemoryBlockDevice(sizeBytes, { contents: targetBytes }) }, kept);
    expect(resumed.bytesTotal).toBe(kept.pendingCount() * chunkBytes);
    await resumed.finished;
    const bytes = new Uint8Array(sizeBytes);
    await primary.read(0, bytes);
    expect(firstDifference(bytes, targetBytes)).toBe(-1);
  });

  it("fails when its checkpoint cannot be written, leaving the regions dirty with resets off", async () => {
    const primary = new MemoryBlockDevice(sizeBytes);
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes, regionBytes }, { checksum });
    drl.setInSync(true);
    const cell = new MemoryDurableCell();
    const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
    const session = await RestoreSession.hold(
      { primary, drl, source: slowSource(new MemoryBlockDevice(sizeBytes)) },
      { extents: [{ offsetBytes: 0, lengthBytes: 4 * regionBytes }], chunkBytes, copyBytesMax: chunkBytes },
    );
    cell.faults.failNextWrite = true;
    session.begin({ checkpoint, record });
    await session.finished;
    expect(session.state).toBe("failed");
    expect(String(session.error)).toMatch(/Injected durable cell write failure/);
    expect(drl.dirtyCount).toBe(4);
    expect(drl.resetsEnabled).toBe(false);
  });

  it("abandons a held session that will not begin: nothing moved, regions stay dirty, resets off", async () => {
    const primary = new MemoryBlockDevice(sizeBytes);
    const drl = await DirtyRegionLog.open(new MemoryDurableCell(), { sizeBytes, regionBytes }, { checksum });
    drl.setInSync(true);
    const session = await RestoreSession.hold(
      { primary, drl, source: new MemoryBlockDevice(sizeBytes) },
      { extents: [{ offsetBytes: 0, lengthBytes: regionBytes }], chunkBytes },
    );
    session.abandon(new Error("the marker could not be recorded"));
    expect(session.state).toBe("failed");
    expect(primary.stats.writes).toBe(0);
    expect(drl.dirtyCount).toBe(1);
    expect(drl.resetsEnabled).toBe(false);
  });
});

/** Random (sector, count) pairs → ascending, apart extents inside the volume. */
function normalise(raw: readonly [number, number][]): { offsetBytes: number; lengthBytes: number }[] {
  const sorted = raw.map(([sector, sectors]) => ({
    offsetBytes: sector * 512,
    lengthBytes: Math.min(sectors * 512, sizeBytes - sector * 512),
  })).sort((a, b) => a.offsetBytes - b.offsetBytes);
  const out: { offsetBytes: number; lengthBytes: number }[] = [];
  for (const extent of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && extent.offsetBytes <= last.offsetBytes + last.lengthBytes) {
      last.lengthBytes = Math.max(last.offsetBytes + last.lengthBytes, extent.offsetBytes + extent.lengthBytes) - last.offsetBytes;
    } else out.push({ ...extent });
  }
  return out;
}
