/**
 * Proves the copy-on-write overlay against a naive model (a plain byte array the writes are
 * applied to): for random streams of reads and writes at random sector ranges (fast-check,
 * block sizes 512 B, 4 KiB and 64 KiB, a device size that is not a whole number of blocks),
 * every read equals the model and the base device never changes; concurrent writes sharing
 * new blocks (base reads completing in random order) all land; a write past the overlay
 * limit fails with OverlayFullError and changes nothing, while blocks already written stay
 * writable; a failed base read fails the write and changes nothing; bad ranges and options
 * get RangeErrors; scratch memory is allocated lazily and never past the limit.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BlockDevice, SECTOR_BYTES } from "../../src/io/block_device.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import {
  checkOverlayOptions,
  overlayBlockStates,
  OverlayBlockDevice,
  OverlayFullError,
  overlayLimits,
} from "../../src/io/overlay_block_device.ts";
import { expectBytes, patternBytes } from "./test_bytes.ts";

const KiB = 1024;

/** A read-only base with recognisable contents, and the bytes it started with. */
function baseOf(sizeBytes: number, seed = 1) {
  const contents = patternBytes(sizeBytes, seed);
  const base = new MemoryBlockDevice(sizeBytes, { readOnly: true, contents });
  return { base, contents };
}

async function readAll(device: BlockDevice): Promise<Uint8Array> {
  const bytes = new Uint8Array(device.sizeBytes);
  await device.read(0, bytes);
  return bytes;
}

/** A base whose reads each wait a chosen number of macrotask turns (completion order scrambled). */
class DelayedReadDevice implements BlockDevice {
  readonly #next: BlockDevice;
  readonly #delays: number[];
  #call = 0;
  constructor(next: BlockDevice, delays: number[]) {
    this.#next = next;
    this.#delays = delays;
  }
  get sizeBytes() {
    return this.#next.sizeBytes;
  }
  get capabilities() {
    return this.#next.capabilities;
  }
  async read(offsetBytes: number, target: Uint8Array) {
    const turns = this.#delays[this.#call++ % this.#delays.length] ?? 0;
    for (let turn = 0; turn < turns; turn++) await new Promise((resolve) => setTimeout(resolve, 0));
    await this.#next.read(offsetBytes, target);
  }
  write() {
    return Promise.reject(new Error("The base is never written"));
  }
  flush() {
    return this.#next.flush();
  }
  close() {
    return this.#next.close();
  }
}

type Op =
  | { kind: "write"; sector: number; sectors: number; seed: number }
  | { kind: "read"; sector: number; sectors: number };

function opArbitrary(sectorCount: number): fc.Arbitrary<Op> {
  const range = fc.integer({ min: 0, max: sectorCount - 1 }).chain((sector) =>
    fc.integer({ min: 1, max: Math.min(300, sectorCount - sector) }).map((sectors) => ({ sector, sectors }))
  );
  return fc.oneof(
    fc.tuple(range, fc.integer({ min: 1, max: 250 })).map(([r, seed]) => ({ kind: "write" as const, ...r, seed })),
    range.map((r) => ({ kind: "read" as const, ...r })),
  );
}

describe("OverlayBlockDevice", () => {
  it("reads what a naive model reads, for random writes and reads, and never writes the base", async () => {
    // 1 MiB + 1.5 KiB: the last block of every block size is short.
    const sizeBytes = 1024 * KiB + 3 * SECTOR_BYTES;
    const sectorCount = sizeBytes / SECTOR_BYTES;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(512, 4096, 65536),
        fc.array(opArbitrary(sectorCount), { minLength: 1, maxLength: 40 }),
        async (blockBytes, ops) => {
          const { base, contents } = baseOf(sizeBytes, 5);
          const overlay = new OverlayBlockDevice(base, { blockBytes, overlayBytesMax: 4 * 1024 * KiB });
          const model = contents.slice();
          for (const op of ops) {
            const offsetBytes = op.sector * SECTOR_BYTES;
            const lengthBytes = op.sectors * SECTOR_BYTES;
            if (op.kind === "write") {
              const data = patternBytes(lengthBytes, op.seed);
              await overlay.write(offsetBytes, data);
              model.set(data, offsetBytes);
            } else {
              const target = new Uint8Array(lengthBytes);
              await overlay.read(offsetBytes, target);
              expectBytes(target, model.subarray(offsetBytes, offsetBytes + lengthBytes));
            }
          }
          expectBytes(await readAll(overlay), model);
          expectBytes(base.bytes(), contents);
          expect(base.stats.writes).toBe(0);
          expect(overlay.overlayBytes).toBeLessThanOrEqual(overlay.overlayBytesMax);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("lands every one of many concurrent writes that share new blocks, whatever order base reads finish in", async () => {
    const sizeBytes = 256 * KiB;
    const sectorCount = sizeBytes / SECTOR_BYTES;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(4096, 65536),
        // Disjoint sector ranges (so the result does not depend on the order), often in one block.
        fc.uniqueArray(fc.integer({ min: 0, max: sectorCount / 4 - 1 }), { minLength: 2, maxLength: 24 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 24 }),
        async (blockBytes, startSectors, delays) => {
          const { base, contents } = baseOf(sizeBytes, 9);
          const overlay = new OverlayBlockDevice(new DelayedReadDevice(base, delays), { blockBytes, overlayBytesMax: sizeBytes });
          const model = contents.slice();
          const writes = startSectors.map((sector, index) => {
            // Each range is one sector, at a sector four times apart: never overlapping.
            const offsetBytes = sector * 4 * SECTOR_BYTES;
            const data = patternBytes(SECTOR_BYTES, index + 1);
            model.set(data, offsetBytes);
            return overlay.write(offsetBytes, data);
          });
          await Promise.all(writes);
          expectBytes(await readAll(overlay), model);
          // The blocks published are exactly the blocks written; no slot leaked in a race.
          const blocks = new Set(startSectors.map((sector) => Math.floor((sector * 4 * SECTOR_BYTES) / blockBytes)));
          expect(overlay.overlayBlockCount).toBe(blocks.size);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("refuses concurrent writes only when the limit is really reached, and lands the rest whole", async () => {
    const sizeBytes = 64 * KiB;
    const blockBytes = 4096;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.uniqueArray(fc.integer({ min: 0, max: sizeBytes / SECTOR_BYTES / 2 - 1 }), { minLength: 2, maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 16 }),
        async (limitBlocks, startSectors, delays) => {
          const { base, contents } = baseOf(sizeBytes, 4);
          const overlay = new OverlayBlockDevice(new DelayedReadDevice(base, delays), {
            blockBytes,
            overlayBytesMax: limitBlocks * blockBytes,
          });
          const writes = startSectors.map((sector, index) => {
            const offsetBytes = sector * 2 * SECTOR_BYTES;
            const data = patternBytes(SECTOR_BYTES, index + 1);
            return { offsetBytes, data, done: overlay.write(offsetBytes, data) };
          });
          const outcomes = await Promise.allSettled(writes.map((write) => write.done));
          const model = contents.slice();
          const landedBlocks = new Set<number>();
          outcomes.forEach((outcome, index) => {
            if (outcome.status !== "fulfilled") return;
            model.set(writes[index].data, writes[index].offsetBytes);
            landedBlocks.add(Math.floor(writes[index].offsetBytes / blockBytes));
          });
          outcomes.forEach((outcome, index) => {
            if (outcome.status === "fulfilled") return;
            expect(outcome.reason).toBeInstanceOf(OverlayFullError);
            // Refused only for a block that never got in: the overlay was really full.
            expect(landedBlocks.has(Math.floor(writes[index].offsetBytes / blockBytes))).toBe(false);
          });
          const refused = outcomes.some((outcome) => outcome.status === "rejected");
          expect(overlay.overlayBlockCount).toBe(landedBlocks.size);
          if (refused) expect(overlay.overlayBlockCount).toBe(limitBlocks);
          expectBytes(await readAll(overlay), model);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("fails a write past the overlay limit with OverlayFullError and changes nothing", async () => {
    const { base, contents } = baseOf(1024 * KiB);
    const overlay = new OverlayBlockDevice(base, { blockBytes: 4096, overlayBytesMax: 4 * 4096 });
    const model = contents.slice();
    await overlay.write(0, patternBytes(3 * 4096, 2));
    model.set(patternBytes(3 * 4096, 2), 0);
    // Two new blocks where one is left: refused whole.
    const refused = overlay.write(64 * KiB, patternBytes(2 * 4096, 3));
    await expect(refused).rejects.toThrow(OverlayFullError);
    await expect(overlay.write(64 * KiB, patternBytes(2 * 4096, 3))).rejects.toThrow(
      /needs 2 more 4096-byte blocks and 3 of 4 are in use \(the overlay limit is 16384 bytes\)/,
    );
    expectBytes(await readAll(overlay), model);
    expect(overlay.overlayBlockCount).toBe(3);
    // Written blocks stay writable, and the last free block is still there.
    await overlay.write(512, patternBytes(1024, 4));
    model.set(patternBytes(1024, 4), 512);
    await overlay.write(128 * KiB + 512, patternBytes(512, 5));
    model.set(patternBytes(512, 5), 128 * KiB + 512);
    await expect(overlay.write(256 * KiB, patternBytes(512, 6))).rejects.toThrow(OverlayFullError);
    expectBytes(await readAll(overlay), model);
    expect(overlay.overlayBytes).toBe(4 * 4096);
    expect(overlay.allocatedBytes).toBeLessThanOrEqual(4 * 4096);
  });

  it("fails a partial write whose base read fails, changing nothing and keeping its room", async () => {
    const { base, contents } = baseOf(512 * KiB);
    const overlay = new OverlayBlockDevice(base, { blockBytes: 4096, overlayBytesMax: 2 * 4096 });
    base.faults.failNextRead = true;
    await expect(overlay.write(4096 + 512, patternBytes(1024, 7))).rejects.toThrow(/Injected read failure/);
    expectBytes(await readAll(overlay), contents);
    expect(overlay.overlayBlockCount).toBe(0);
    expect(overlay.blockStateAt(4096)).toBe(overlayBlockStates.base);
    // The reservation was given back: both blocks of the limit can still be written.
    await overlay.write(0, patternBytes(2 * 4096, 8));
    expect(overlay.overlayBlockCount).toBe(2);
    expect(overlay.blockStateAt(4096)).toBe(overlayBlockStates.overlay);
  });

  it("reads runs of unwritten blocks from the base in one read each", async () => {
    const { base, contents } = baseOf(1024 * KiB);
    const overlay = new OverlayBlockDevice(base, { blockBytes: 4096 });
    await overlay.write(256 * KiB, patternBytes(4096, 3));
    const readsBefore = base.stats.reads;
    const target = new Uint8Array(1024 * KiB);
    await overlay.read(0, target);
    expect(base.stats.reads - readsBefore).toBe(2); // before and after the one written block
    const model = contents.slice();
    model.set(patternBytes(4096, 3), 256 * KiB);
    expectBytes(target, model);
  });

  it("refuses bad ranges with RangeError, changing nothing", async () => {
    const { base, contents } = baseOf(64 * KiB);
    const overlay = new OverlayBlockDevice(base);
    await expect(overlay.write(100, new Uint8Array(512))).rejects.toThrow(RangeError);
    await expect(overlay.write(0, new Uint8Array(100))).rejects.toThrow(RangeError);
    await expect(overlay.write(64 * KiB - 512, new Uint8Array(1024))).rejects.toThrow(/past the end/);
    await expect(overlay.write(-512, new Uint8Array(512))).rejects.toThrow(RangeError);
    await expect(overlay.read(64 * KiB, new Uint8Array(512))).rejects.toThrow(RangeError);
    expectBytes(await readAll(overlay), contents);
    expect(overlay.overlayBlockCount).toBe(0);
  });

  it("refuses bad options with RangeError", () => {
    const { base } = baseOf(64 * KiB);
    expect(() => new OverlayBlockDevice(base, { blockBytes: 3000 })).toThrow(/power of two from 512 to 1048576/);
    expect(() => new OverlayBlockDevice(base, { blockBytes: 256 })).toThrow(RangeError);
    expect(() => new OverlayBlockDevice(base, { blockBytes: 2 * 1024 * KiB })).toThrow(RangeError);
    expect(() => new OverlayBlockDevice(base, { overlayBytesMax: 100 })).toThrow(/Cannot hold an overlay of 100 bytes/);
    expect(() => new OverlayBlockDevice(base, { overlayBytesMax: overlayLimits.overlayBytesMaxLimit * 2 })).toThrow(RangeError);
    expect(checkOverlayOptions({})).toEqual({
      blockBytes: overlayLimits.blockBytesDefault,
      overlayBytesMax: overlayLimits.overlayBytesMaxDefault,
    });
  });

  it("allocates scratch lazily, treats flush as a no-op and drops everything on close", async () => {
    const { base, contents } = baseOf(4 * 1024 * KiB);
    const overlay = new OverlayBlockDevice(base);
    expect(overlay.capabilities).toEqual({ writable: true, flush: false, fua: false });
    expect(overlay.allocatedBytes).toBe(0);
    await overlay.write(0, patternBytes(4096, 1));
    expect(overlay.allocatedBytes).toBe(overlayLimits.arenaBytes);
    await overlay.flush();
    expect(base.stats.flushes).toBe(0);
    await overlay.close();
    expect(overlay.allocatedBytes).toBe(0);
    await expect(overlay.read(0, new Uint8Array(512))).rejects.toThrow(/closed/);
    await expect(overlay.write(0, new Uint8Array(512))).rejects.toThrow(/closed/);
    // The base stays open and unchanged.
    const sector = new Uint8Array(512);
    await base.read(0, sector);
    expectBytes(sector, contents.subarray(0, 512));
  });
});
