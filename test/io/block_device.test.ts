/**
 * Proves that every {@link BlockDevice} keeps the seam's contract: one shared suite runs
 * against `MemoryBlockDevice` and the running runtime's `FileBlockDevice` (Node's under
 * Node, Deno's under Deno): sizes and capabilities, whole reads and writes, misaligned or
 * past-the-end requests rejected with `RangeError` and nothing changed, read-only devices
 * rejecting writes with `ReadOnlyDeviceError`, flushed writes found after a restart. Then
 * the memory device's crash simulation and injected faults, and the file device's opening
 * rules (sparse creation, size checks).
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { type BlockDevice, ReadOnlyDeviceError, SECTOR_BYTES } from "../../src/io/block_device.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { expectBytes, isAllZero, patternBytes } from "./test_bytes.ts";

const target = await runtimeTarget();
const mebibyte = 1024 * 1024;

async function readAll(device: BlockDevice): Promise<Uint8Array> {
  const bytes = new Uint8Array(device.sizeBytes);
  await device.read(0, bytes);
  return bytes;
}

/** How a kind of device is opened, restarted, and cleaned up by the shared suite. */
interface DeviceHarness {
  /** A zero-filled writable device of `sizeBytes`. */
  open(sizeBytes: number): Promise<BlockDevice>;
  /** A read-only device of `contents`. */
  openReadOnly(contents: Uint8Array): Promise<BlockDevice>;
  /** Closes `device` and opens the same storage again, as after a restart. */
  reopen(device: BlockDevice): Promise<BlockDevice>;
  cleanup(): Promise<void>;
}

function memoryHarness(): Promise<DeviceHarness> {
  return Promise.resolve({
    open: (sizeBytes) => Promise.resolve(new MemoryBlockDevice(sizeBytes)),
    openReadOnly: (contents) =>
      Promise.resolve(new MemoryBlockDevice(contents.length, { contents, readOnly: true })),
    // A crash keeps every flushed byte, which is all the suite expects a restart to find.
    reopen: (device) => Promise.resolve((device as MemoryBlockDevice).crash(new SeededRandom(1))),
    cleanup: () => Promise.resolve(),
  });
}

async function fileHarness(): Promise<DeviceHarness> {
  const directory = await target.tempDir();
  const path = `${directory}/volume.img`;
  return {
    open: (sizeBytes) => target.FileBlockDevice.open(path, { sizeBytes, create: true }),
    openReadOnly: async (contents) => {
      await target.writeFile(path, contents);
      return await target.FileBlockDevice.open(path, { readOnly: true });
    },
    reopen: async (device) => {
      await device.close();
      return await target.FileBlockDevice.open(path);
    },
    cleanup: () => target.removeDir(directory),
  };
}

function describeBlockDeviceContract(name: string, makeHarness: () => Promise<DeviceHarness>) {
  describe(`${name} keeps the BlockDevice contract`, () => {
    const sizeBytes = 2 * mebibyte;
    let harness: DeviceHarness;
    let device: BlockDevice;

    beforeEach(async () => {
      harness = await makeHarness();
      device = await harness.open(sizeBytes);
    });

    afterEach(async () => {
      await device.close();
      await harness.cleanup();
    });

    test("A new device reads as zeros and can write, flush and fua", async () => {
      expect(device.sizeBytes).toBe(sizeBytes);
      expect(device.capabilities).toEqual({ writable: true, flush: true, fua: true });
      expect(isAllZero(await readAll(device))).toBe(true);
    });

    test("A write is visible to a read at once, with or without fua", async () => {
      const expected = new Uint8Array(sizeBytes);
      const writes: [number, number, boolean][] = [
        [0, SECTOR_BYTES, false],
        [4096, 64 * 1024, true],
        [sizeBytes - 3 * SECTOR_BYTES, 3 * SECTOR_BYTES, false],
        [8192, mebibyte, true], // a write large enough for the file system's asynchronous write
      ];
      for (const [index, [offsetBytes, lengthBytes, fua]] of writes.entries()) {
        const source = patternBytes(lengthBytes, index);
        await device.write(offsetBytes, source, { fua });
        expected.set(source, offsetBytes);
      }
      expectBytes(await readAll(device), expected);
      const middle = new Uint8Array(2 * SECTOR_BYTES);
      await device.read(8192 + SECTOR_BYTES, middle);
      expectBytes(middle, expected.subarray(8192 + SECTOR_BYTES, 8192 + 3 * SECTOR_BYTES));
      await device.flush();
    });

    test("A write copies its source, so the caller may reuse the buffer at once", async () => {
      const source = patternBytes(4096, 1);
      await device.write(0, source);
      source.fill(0);
      const read = new Uint8Array(4096);
      await device.read(0, read);
      expectBytes(read, patternBytes(4096, 1));
    });

    test("Misaligned or past-the-end requests reject with RangeError and change nothing", async () => {
      const before = patternBytes(sizeBytes, 2);
      await device.write(0, before);
      const bad: [number, number][] = [
        [100, SECTOR_BYTES],
        [0, 100],
        [SECTOR_BYTES, SECTOR_BYTES + 1],
        [sizeBytes, SECTOR_BYTES],
        [sizeBytes - SECTOR_BYTES, 2 * SECTOR_BYTES],
        [-SECTOR_BYTES, SECTOR_BYTES],
        [2 ** 53, SECTOR_BYTES],
      ];
      for (const [offsetBytes, lengthBytes] of bad) {
        await expect(device.write(offsetBytes, patternBytes(lengthBytes, 3))).rejects
          .toThrow(RangeError);
        await expect(device.read(offsetBytes, new Uint8Array(lengthBytes))).rejects
          .toThrow(RangeError);
      }
      expectBytes(await readAll(device), before);
    });

    test("A read-only device rejects writes with ReadOnlyDeviceError and keeps its bytes", async () => {
      const contents = patternBytes(64 * 1024, 4);
      const readOnly = await harness.openReadOnly(contents);
      try {
        expect(readOnly.sizeBytes).toBe(contents.length);
        expect(readOnly.capabilities.writable).toBe(false);
        await expect(readOnly.write(0, new Uint8Array(SECTOR_BYTES))).rejects
          .toThrow(ReadOnlyDeviceError);
        await expect(readOnly.write(0, new Uint8Array(SECTOR_BYTES), { fua: true })).rejects
          .toThrow(ReadOnlyDeviceError);
        await readOnly.flush();
        expectBytes(await readAll(readOnly), contents);
      } finally {
        await readOnly.close();
      }
    });

    test("A restart finds every flushed write and every fua write", async () => {
      const expected = new Uint8Array(sizeBytes);
      const flushed = patternBytes(64 * 1024, 5);
      await device.write(mebibyte, flushed);
      expected.set(flushed, mebibyte);
      await device.flush();
      const forced = patternBytes(4096, 6);
      await device.write(0, forced, { fua: true });
      expected.set(forced, 0);
      device = await harness.reopen(device);
      expect(device.sizeBytes).toBe(sizeBytes);
      expectBytes(await readAll(device), expected);
    });

    test("A closed device rejects use", async () => {
      await device.close();
      await expect(device.read(0, new Uint8Array(SECTOR_BYTES))).rejects.toThrow(/closed/);
      await expect(device.write(0, new Uint8Array(SECTOR_BYTES))).rejects.toThrow(/closed/);
      await expect(device.flush()).rejects.toThrow(/closed/);
    });
  });
}

describeBlockDeviceContract("MemoryBlockDevice", memoryHarness);
describeBlockDeviceContract(`FileBlockDevice (${target.name})`, fileHarness);

describe("MemoryBlockDevice crashes like a disk", () => {
  const sizeBytes = mebibyte;
  const writeBytes = 8 * SECTOR_BYTES;
  const pendingWrites = 32;

  /** A device with flushed bytes in its first half and unflushed writes in its second. */
  async function deviceWithPendingWrites(): Promise<MemoryBlockDevice> {
    const device = new MemoryBlockDevice(sizeBytes);
    await device.write(0, patternBytes(sizeBytes / 2, 10));
    await device.flush();
    await device.write(0, patternBytes(4096, 11), { fua: true });
    for (let i = 0; i < pendingWrites; i++) {
      await device.write(sizeBytes / 2 + i * 8192, patternBytes(writeBytes, 20 + i));
    }
    return device;
  }

  test("Flushed and fua writes survive every crash", async () => {
    const expected = patternBytes(sizeBytes / 2, 10);
    expected.set(patternBytes(4096, 11), 0);
    for (let seed = 0; seed < 50; seed++) {
      const device = await deviceWithPendingWrites();
      const survivor = device.crash(new SeededRandom(seed));
      expectBytes(survivor.bytes().subarray(0, sizeBytes / 2), expected);
    }
  });

  test("A fua write is kept even over an older unflushed write", async () => {
    for (let seed = 0; seed < 20; seed++) {
      const device = new MemoryBlockDevice(sizeBytes);
      await device.write(0, patternBytes(8192, 1));
      await device.write(0, patternBytes(4096, 2), { fua: true });
      const survivor = device.crash(new SeededRandom(seed));
      expectBytes(survivor.bytes().subarray(0, 4096), patternBytes(4096, 2));
    }
  });

  test("Each unflushed write is lost, kept, or torn at a sector or a byte", async () => {
    const fates = { lost: 0, kept: 0, tornAtSector: 0, tornAtByte: 0 };
    for (let seed = 0; seed < 20; seed++) {
      const device = await deviceWithPendingWrites();
      expect(device.pendingBytes()).toBe(pendingWrites * writeBytes);
      const bytes = device.crash(new SeededRandom(seed)).bytes();
      for (let i = 0; i < pendingWrites; i++) {
        const written = patternBytes(writeBytes, 20 + i);
        const offsetBytes = sizeBytes / 2 + i * 8192;
        const found = bytes.subarray(offsetBytes, offsetBytes + writeBytes);
        let keptBytes = 0;
        while (keptBytes < writeBytes && found[keptBytes] === written[keptBytes]) keptBytes++;
        expect(isAllZero(found.subarray(keptBytes))).toBe(true);
        if (keptBytes === 0) fates.lost++;
        else if (keptBytes === writeBytes) fates.kept++;
        else if (keptBytes % SECTOR_BYTES === 0) fates.tornAtSector++;
        else fates.tornAtByte++;
      }
    }
    for (const count of Object.values(fates)) expect(count).toBeGreaterThan(0);
  });

  test("The same seed gives the same survivors", async () => {
    for (const seed of [1, 2, 3]) {
      const first = (await deviceWithPendingWrites()).crash(new SeededRandom(seed));
      const second = (await deviceWithPendingWrites()).crash(new SeededRandom(seed));
      expectBytes(first.bytes(), second.bytes());
    }
  });

  test("A crashed device is closed and its survivor keeps read-only-ness", async () => {
    const device = new MemoryBlockDevice(sizeBytes, { readOnly: true });
    const survivor = device.crash(new SeededRandom(1));
    await expect(device.read(0, new Uint8Array(SECTOR_BYTES))).rejects.toThrow(/closed/);
    expect(survivor.capabilities.writable).toBe(false);
  });

  test("Injected faults reject once and change nothing", async () => {
    const device = new MemoryBlockDevice(sizeBytes);
    device.faults.failNextWrite = true;
    await expect(device.write(0, patternBytes(4096, 1))).rejects.toThrow(/Injected/);
    expect(isAllZero(device.bytes())).toBe(true);
    expect(device.pendingBytes()).toBe(0);
    await device.write(0, patternBytes(4096, 1));

    device.faults.failNextRead = true;
    const read = new Uint8Array(4096);
    await expect(device.read(0, read)).rejects.toThrow(/Injected/);
    expect(isAllZero(read)).toBe(true);
    await device.read(0, read);
    expectBytes(read, patternBytes(4096, 1));

    device.faults.failNextFlush = true;
    await expect(device.flush()).rejects.toThrow(/Injected/);
    expect(device.pendingBytes()).toBe(4096);
    await device.flush();
    expect(device.pendingBytes()).toBe(0);
  });

  test("readSync and bytes show what a reader sees, and bytes is a copy", async () => {
    const device = new MemoryBlockDevice(sizeBytes);
    await device.write(SECTOR_BYTES, patternBytes(SECTOR_BYTES, 1));
    const read = new Uint8Array(SECTOR_BYTES);
    device.readSync(SECTOR_BYTES, read);
    expectBytes(read, patternBytes(SECTOR_BYTES, 1));
    expect(() => device.readSync(1, read)).toThrow(RangeError);
    device.bytes().fill(9);
    expect(isAllZero(device.bytes().subarray(0, SECTOR_BYTES))).toBe(true);
  });

  test("A size that is not a positive multiple of 512 is a RangeError", () => {
    expect(() => new MemoryBlockDevice(1000)).toThrow(RangeError);
    expect(() => new MemoryBlockDevice(0)).toThrow(RangeError);
    expect(() => new MemoryBlockDevice(1024, { contents: new Uint8Array(512) })).toThrow(RangeError);
  });
});

describe(`FileBlockDevice (${target.name}) opens files by the rules`, () => {
  let directory: string;
  let path: string;

  beforeEach(async () => {
    directory = await target.tempDir();
    path = `${directory}/volume.img`;
  });

  afterEach(async () => {
    await target.removeDir(directory);
  });

  test("create makes a sparse file of the size given", async () => {
    const sizeBytes = 256 * mebibyte;
    const device = await target.FileBlockDevice.open(path, { sizeBytes, create: true });
    await device.write(mebibyte, patternBytes(4096, 1));
    await device.close();
    const stat = await target.statFile(path);
    expect(stat.sizeBytes).toBe(sizeBytes);
    expect(stat.allocatedBytes).toBeLessThan(sizeBytes / 16);
  });

  test("large writes in flight at once all land, and close waits for them", async () => {
    const device = await target.FileBlockDevice.open(path, { sizeBytes: 16 * mebibyte, create: true });
    const writes = Array.from(
      { length: 8 },
      (_, index) => device.write(index * mebibyte, patternBytes(mebibyte, index + 1), { fua: index % 2 === 0 }),
    );
    writes.push(device.write(12 * mebibyte, patternBytes(4096, 20), { fua: true }));
    const closing = device.close();
    await Promise.all(writes);
    await closing;
    const reopened = await target.FileBlockDevice.open(path, { readOnly: true });
    for (let index = 0; index < 8; index++) {
      const target = new Uint8Array(mebibyte);
      await reopened.read(index * mebibyte, target);
      expectBytes(target, patternBytes(mebibyte, index + 1));
    }
    await reopened.close();
  });

  test("create opens an existing file instead of replacing it", async () => {
    await target.writeFile(path, patternBytes(8192, 2));
    const device = await target.FileBlockDevice.open(path, { sizeBytes: 8192, create: true });
    expectBytes(await readAll(device), patternBytes(8192, 2));
    await device.close();
  });

  test("Without sizeBytes the size is the file's", async () => {
    await target.writeFile(path, new Uint8Array(3 * SECTOR_BYTES));
    const device = await target.FileBlockDevice.open(path);
    expect(device.sizeBytes).toBe(3 * SECTOR_BYTES);
    await device.close();
  });

  test("Bad opening requests are rejected", async () => {
    await expect(target.FileBlockDevice.open(path)).rejects.toThrow();
    await expect(target.FileBlockDevice.open(path, { create: true })).rejects.toThrow(TypeError);
    await expect(target.FileBlockDevice.open(path, { sizeBytes: 4096, create: true, readOnly: true }))
      .rejects.toThrow(TypeError);
    await expect(target.FileBlockDevice.open(path, { sizeBytes: 1000, create: true })).rejects
      .toThrow(RangeError);
    expect(await target.listDir(directory)).toEqual([]);
    await target.writeFile(path, new Uint8Array(1000));
    await expect(target.FileBlockDevice.open(path)).rejects.toThrow(RangeError);
    await target.writeFile(path, new Uint8Array(4096));
    await expect(target.FileBlockDevice.open(path, { sizeBytes: 8192 })).rejects
      .toThrow(RangeError);
    await expect(target.FileBlockDevice.open(directory)).rejects.toThrow();
    await expect(target.FileBlockDevice.open(directory, { readOnly: true })).rejects
      .toThrow(TypeError);
  });
});
