/**
 * Proves the switch's restore session on memory devices: only the extents move (bytes counted
 * exactly) and the primary then equals the source there; DRL regions are held durably from
 * the start and released as chunks land; a host write after `prepare` is never overwritten by
 * the background copy (a slow source makes the race likely); a failing source fails the
 * session with its error and leaves the regions dirty with resets off; cancel stops between
 * chunks the same way; bad extents and a DRL that cannot persist are refused with nothing held.
 */
import { describe, expect, it } from "vitest";
import { createChecksum } from "../../src/core/checksum.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { DirtyRegionLog } from "../../src/switch/dirty_region_log.ts";
import { RestoreSession, type RestoreSource } from "../../src/switch/restore_session.ts";

const sizeBytes = 4 * 1024 * 1024;

/** The first index where two byte arrays differ, or -1 (deep equality on megabytes is slow). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}
const chunkBytes = 64 * 1024;

async function setUp() {
  const primary = new MemoryBlockDevice(sizeBytes);
  await primary.write(0, new Uint8Array(sizeBytes).fill(0xaa));
  const contents = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i += 512) contents.fill((i / 512) & 0xff, i, i + 512);
  const target = new MemoryBlockDevice(sizeBytes, { contents });
  const cell = new MemoryDurableCell();
  const drl = await DirtyRegionLog.open(cell, { sizeBytes, regionBytes: 256 * 1024 }, { checksum: await createChecksum() });
  drl.setInSync(true);
  return { primary, target, contents, cell, drl };
}

/** A source that waits `delayMs` before each read, and can be made to fail. */
function slowSource(device: RestoreSource, delayMs: number, failAfterReads = Infinity): RestoreSource & { reads: number } {
  const source = {
    reads: 0,
    async read(offsetBytes: number, target: Uint8Array) {
      source.reads++;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (source.reads > failAfterReads) throw new Error("Injected source failure");
      await device.read(offsetBytes, target);
    },
  };
  return source;
}

describe("RestoreSession", () => {
  it("moves only the extents, then the primary equals the source there, and the DRL settles", async () => {
    const { primary, target, contents, drl } = await setUp();
    const extents = [{ offsetBytes: 4096, lengthBytes: 8192 }, { offsetBytes: 60 * 1024, lengthBytes: 200 * 1024 }];
    const session = await RestoreSession.start({ primary, drl, source: target }, { extents, chunkBytes });
    expect(drl.dirtyCount).toBe(2); // held durably before the first byte moved
    await session.finished;
    expect(session.state).toBe("done");
    expect(session.bytesTotal).toBe(8192 + 200 * 1024);
    expect(session.bytesDone).toBe(session.bytesTotal);
    const bytes = new Uint8Array(sizeBytes);
    await primary.read(0, bytes);
    for (const { offsetBytes, lengthBytes } of extents) {
      expect(firstDifference(bytes.subarray(offsetBytes, offsetBytes + lengthBytes), contents.subarray(offsetBytes, offsetBytes + lengthBytes))).toBe(-1);
    }
    expect(bytes.subarray(0, 4096).every((b) => b === 0xaa)).toBe(true); // outside the extents: untouched
    expect(await drl.reset()).toBe(2); // nothing in flight any more: the regions can settle
  });

  it("never overwrites a host write with the background copy", async () => {
    const { primary, target, contents, drl } = await setUp();
    const session = await RestoreSession.start(
      { primary, drl, source: slowSource(target, 1) },
      { extents: [{ offsetBytes: 0, lengthBytes: sizeBytes }], chunkBytes, copyBytesMax: chunkBytes },
    );
    const expected = contents.slice();
    for (let i = 0; i < 20; i++) {
      const offsetBytes = ((i * 7919) % 60) * chunkBytes + 512 * i;
      await session.prepare(offsetBytes, 512);
      const data = new Uint8Array(512).fill(0x50 + i);
      await primary.write(offsetBytes, data);
      expected.set(data, offsetBytes);
    }
    await session.finished;
    expect(session.state).toBe("done");
    const bytes = new Uint8Array(sizeBytes);
    await primary.read(0, bytes);
    expect(firstDifference(bytes, expected)).toBe(-1);
  });

  it("fails with the source's error and leaves the regions dirty with resets off", async () => {
    const { primary, target, drl } = await setUp();
    const session = await RestoreSession.start(
      { primary, drl, source: slowSource(target, 0, 3) },
      { extents: [{ offsetBytes: 0, lengthBytes: sizeBytes }], chunkBytes, copyBytesMax: chunkBytes },
    );
    await session.finished;
    expect(session.state).toBe("failed");
    expect((session.error as Error).message).toMatch(/Injected source failure/);
    expect(drl.resetsEnabled).toBe(false);
    expect(await drl.reset()).toBe(0);
    expect(drl.dirtyCount).toBe(16);
    await expect(session.prepare(0, 512)).resolves.toBeUndefined(); // host I/O goes on over the partial state
  });

  it("stops between chunks when cancelled", async () => {
    const { primary, target, drl } = await setUp();
    const session = await RestoreSession.start(
      { primary, drl, source: slowSource(target, 2) },
      { extents: [{ offsetBytes: 0, lengthBytes: sizeBytes }], chunkBytes, copyBytesMax: chunkBytes },
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    session.cancel();
    await session.finished;
    expect(session.state).toBe("cancelled");
    expect(session.bytesDone).toBeLessThan(session.bytesTotal);
    expect(drl.resetsEnabled).toBe(false);
  });

  it("refuses bad extents and an unpersistable DRL, holding nothing", async () => {
    const { primary, target, cell, drl } = await setUp();
    const start = (extents: { offsetBytes: number; lengthBytes: number }[]) =>
      RestoreSession.start({ primary, drl, source: target }, { extents, chunkBytes });
    await expect(start([{ offsetBytes: 100, lengthBytes: 512 }])).rejects.toThrow(RangeError);
    await expect(start([{ offsetBytes: sizeBytes - 512, lengthBytes: 1024 }])).rejects.toThrow(RangeError);
    await expect(start([{ offsetBytes: 4096, lengthBytes: 512 }, { offsetBytes: 0, lengthBytes: 512 }])).rejects.toThrow(RangeError);
    await expect(RestoreSession.start({ primary, drl, source: target }, { extents: [], chunkBytes: 1000 })).rejects.toThrow(RangeError);
    cell.faults.failNextWrite = true;
    await expect(start([{ offsetBytes: 0, lengthBytes: 512 }])).rejects.toThrow(/Injected durable cell write failure/);
    // No hold remains: the region the failed start marked can settle at the next reset.
    expect(await drl.reset()).toBe(1);
    expect(drl.dirtyCount).toBe(0);
  });
});
