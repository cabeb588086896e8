/**
 * Proves that every {@link SegmentStore} keeps the seam's contract: one shared suite runs
 * against the in-memory store and the running runtime's `FileSegmentStore` (Node's under
 * Node, Deno's under Deno), covering create/list/sizeOf/write/read/sync/remove, atomic
 * manifest replacement, bounds and missing-segment errors, and a restart that must find
 * every synced byte. Then the in-memory store's crash simulation is checked on its own
 * (synced data always survives; each unsynced write is lost, kept or torn; a seed
 * reproduces a crash), and the file store's own duties (file names, leftovers of a crash,
 * the bounded descriptor cache, direct writes around the page cache and their fallback).
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { allocateAligned, isAligned } from "../../src/io/aligned_memory.ts";
import { FileSegmentStore } from "../../src/io/file_segment_store.ts";
import type { FileHandle, FileSystem, OpenFileOptions } from "../../src/io/file_system.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { SegmentNotFoundError, type SegmentStore } from "../../src/io/segment_store.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { expectBytes, isAllZero, patternBytes } from "./test_bytes.ts";

const target = await runtimeTarget();
const mebibyte = 1024 * 1024;

async function readAll(store: SegmentStore, segmentId: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(await store.sizeOf(segmentId));
  await store.read(segmentId, 0, bytes);
  return bytes;
}

/** How a kind of store is opened, restarted, and cleaned up by the shared suite. */
interface StoreHarness {
  open(): Promise<SegmentStore>;
  /** Closes `store` and opens the same storage again, as after a restart. */
  reopen(store: SegmentStore): Promise<SegmentStore>;
  cleanup(): Promise<void>;
}

function memoryHarness(): Promise<StoreHarness> {
  return Promise.resolve({
    open: () => Promise.resolve(new MemorySegmentStore()),
    // A crash keeps every synced byte, which is all the suite expects a restart to find.
    reopen: (store) => Promise.resolve((store as MemorySegmentStore).crash(new SeededRandom(1))),
    cleanup: () => Promise.resolve(),
  });
}

async function fileHarness(): Promise<StoreHarness> {
  const directory = await target.tempDir();
  return {
    open: () => target.FileSegmentStore.open(directory),
    reopen: async (store) => {
      await store.close();
      return await target.FileSegmentStore.open(directory);
    },
    cleanup: () => target.removeDir(directory),
  };
}

function describeSegmentStoreContract(name: string, makeHarness: () => Promise<StoreHarness>) {
  describe(`${name} keeps the SegmentStore contract`, () => {
    let harness: StoreHarness;
    let store: SegmentStore;

    beforeEach(async () => {
      harness = await makeHarness();
      store = await harness.open();
    });

    afterEach(async () => {
      await store.close();
      await harness.cleanup();
    });

    test("A new store has no segments and no manifest", async () => {
      expect(await store.list()).toEqual([]);
      expect(await store.readManifest()).toBeNull();
    });

    test("create makes a zero-filled segment of the size asked, even a partial last MiB", async () => {
      const sizeBytes = mebibyte + mebibyte / 2 + 100;
      await store.create(3, sizeBytes);
      expect(await store.sizeOf(3)).toBe(sizeBytes);
      expect(isAllZero(await readAll(store, 3))).toBe(true);
    });

    test("large reads (off the event loop where the runtime can) see what was written, several at once", async () => {
      await store.create(4, 4 * mebibyte);
      const bytes = patternBytes(4 * mebibyte, 9);
      await store.write(4, 0, bytes);
      const pieces = [0, 1, 2, 3].map(() => new Uint8Array(mebibyte - 512));
      await Promise.all(pieces.map((piece, i) => store.read(4, i * mebibyte + 512, piece)));
      pieces.forEach((piece, i) => expect(piece).toEqual(bytes.subarray(i * mebibyte + 512, (i + 1) * mebibyte)));
    });

    test("list returns segment ids ascending", async () => {
      for (const segmentId of [10, 2, 7, 100_000_000]) await store.create(segmentId, 4096);
      expect(await store.list()).toEqual([2, 7, 10, 100_000_000]);
    });

    test("create rejects an id that exists", async () => {
      await store.create(1, 4096);
      await expect(store.create(1, 4096)).rejects.toThrow(SegmentNotFoundError);
      expect(await store.sizeOf(1)).toBe(4096);
    });

    test("A write is visible to a read at once, at any byte offset", async () => {
      await store.create(1, 64 * 1024);
      const first = patternBytes(5000, 1);
      const second = patternBytes(333, 2);
      await store.write(1, 0, first);
      await store.write(1, 12_345, second);
      const expected = new Uint8Array(64 * 1024);
      expected.set(first, 0);
      expected.set(second, 12_345);
      expectBytes(await readAll(store, 1), expected);
      const middle = new Uint8Array(100);
      await store.read(1, 12_300, middle);
      expectBytes(middle, expected.subarray(12_300, 12_400));
    });

    test("A write copies its source, so the caller may reuse the buffer at once", async () => {
      await store.create(1, 4096);
      const source = patternBytes(512, 3);
      const expected = source.slice();
      await store.write(1, 0, source);
      source.fill(0);
      const target = new Uint8Array(512);
      await store.read(1, 0, target);
      expectBytes(target, expected);
    });

    test("sync resolves, also when called several times at once", async () => {
      await store.create(1, 8192);
      await store.write(1, 0, patternBytes(4096, 4));
      await Promise.all([store.sync(1), store.sync(1), store.sync(1)]);
      await store.sync(1);
      const target = new Uint8Array(4096);
      await store.read(1, 0, target);
      expectBytes(target, patternBytes(4096, 4));
    });

    test("remove deletes a segment, and its id can be created again", async () => {
      await store.create(1, 4096);
      await store.create(2, 4096);
      await store.write(1, 0, patternBytes(4096, 5));
      await store.remove(1);
      expect(await store.list()).toEqual([2]);
      await expect(store.read(1, 0, new Uint8Array(1))).rejects.toThrow(SegmentNotFoundError);
      await store.create(1, 8192);
      expect(isAllZero(await readAll(store, 1))).toBe(true);
    });

    test("Every access to a missing segment rejects with SegmentNotFoundError", async () => {
      await store.create(1, 4096);
      const missing = 9;
      await expect(store.sizeOf(missing)).rejects.toThrow(SegmentNotFoundError);
      await expect(store.write(missing, 0, new Uint8Array(1))).rejects.toThrow(SegmentNotFoundError);
      await expect(store.read(missing, 0, new Uint8Array(1))).rejects.toThrow(SegmentNotFoundError);
      await expect(store.sync(missing)).rejects.toThrow(SegmentNotFoundError);
      await expect(store.remove(missing)).rejects.toThrow(SegmentNotFoundError);
    });

    test("Accesses outside a segment reject with RangeError and change nothing", async () => {
      await store.create(1, 4096);
      const before = patternBytes(4096, 6);
      await store.write(1, 0, before);
      const outside: [number, number][] = [[4090, 10], [4096, 1], [-1, 1], [0.5, 1], [0, 4097]];
      for (const [offsetBytes, lengthBytes] of outside) {
        await expect(store.write(1, offsetBytes, patternBytes(lengthBytes, 7))).rejects
          .toThrow(RangeError);
        await expect(store.read(1, offsetBytes, new Uint8Array(lengthBytes))).rejects
          .toThrow(RangeError);
      }
      expectBytes(await readAll(store, 1), before);
    });

    test("writeManifest replaces the manifest whole", async () => {
      await store.writeManifest(patternBytes(10_000, 8));
      await store.writeManifest(patternBytes(10, 9));
      expectBytes(await store.readManifest(), patternBytes(10, 9));
      await store.writeManifest(new Uint8Array(0));
      expectBytes(await store.readManifest(), new Uint8Array(0));
    });

    test("Manifest writes land in call order and keep their own copies", async () => {
      const first = patternBytes(100, 10);
      const second = patternBytes(200, 11);
      const writes = Promise.all([store.writeManifest(first), store.writeManifest(second)]);
      second.fill(0);
      await writes;
      const read = await store.readManifest();
      expectBytes(read, patternBytes(200, 11));
      read!.fill(0);
      expectBytes(await store.readManifest(), patternBytes(200, 11));
    });

    test("A restart finds every synced segment and the manifest", async () => {
      await store.create(1, 8192);
      await store.create(2, 4096);
      await store.create(3, 4096);
      await store.write(1, 100, patternBytes(5000, 12));
      await store.write(2, 0, patternBytes(4096, 13));
      await store.sync(1);
      await store.sync(2);
      await store.remove(3);
      await store.writeManifest(patternBytes(64, 14));
      store = await harness.reopen(store);
      expect(await store.list()).toEqual([1, 2]);
      expect(await store.sizeOf(1)).toBe(8192);
      const one = new Uint8Array(8192);
      one.set(patternBytes(5000, 12), 100);
      expectBytes(await readAll(store, 1), one);
      expectBytes(await readAll(store, 2), patternBytes(4096, 13));
      expectBytes(await store.readManifest(), patternBytes(64, 14));
    });

    test("A closed store rejects use", async () => {
      await store.create(1, 4096);
      await store.close();
      await expect(store.list()).rejects.toThrow(/closed/);
      await expect(store.read(1, 0, new Uint8Array(1))).rejects.toThrow(/closed/);
      await expect(store.writeManifest(new Uint8Array(1))).rejects.toThrow(/closed/);
    });
  });
}

describeSegmentStoreContract("MemorySegmentStore", memoryHarness);
describeSegmentStoreContract(`FileSegmentStore (${target.name})`, fileHarness);

describe("MemorySegmentStore crashes like a disk", () => {
  const segmentBytes = 64 * 1024;
  const writeBytes = 1000;
  const writesPerSegment = 16;

  /** A store with synced bytes in segment 1 and unsynced pattern writes in segment 2. */
  async function storeWithPendingWrites(): Promise<MemorySegmentStore> {
    const store = new MemorySegmentStore();
    await store.create(1, segmentBytes);
    await store.create(2, segmentBytes);
    await store.write(1, 0, patternBytes(segmentBytes, 20));
    await store.sync(1);
    for (let i = 0; i < writesPerSegment; i++) {
      await store.write(2, i * 4096, patternBytes(writeBytes, 21 + i));
    }
    await store.writeManifest(patternBytes(32, 40));
    return store;
  }

  test("Synced data survives every crash", async () => {
    for (let seed = 0; seed < 50; seed++) {
      const store = await storeWithPendingWrites();
      await store.write(1, 0, patternBytes(100, 99)); // unsynced overwrite of synced bytes
      const survivor = store.crash(new SeededRandom(seed));
      const bytes = await readAll(survivor, 1);
      expectBytes(bytes.subarray(100), patternBytes(segmentBytes, 20).subarray(100));
      expect(await survivor.list()).toEqual([1, 2]);
    }
  });

  test("Each unsynced write is lost, kept, or torn at a byte, and every fate happens", async () => {
    const fates = { lost: 0, kept: 0, torn: 0 };
    for (let seed = 0; seed < 20; seed++) {
      const store = await storeWithPendingWrites();
      expect(store.pendingBytes()).toBe(writesPerSegment * writeBytes);
      const bytes = await readAll(store.crash(new SeededRandom(seed)), 2);
      for (let i = 0; i < writesPerSegment; i++) {
        const written = patternBytes(writeBytes, 21 + i);
        const found = bytes.subarray(i * 4096, i * 4096 + writeBytes);
        let keptBytes = 0;
        while (keptBytes < writeBytes && found[keptBytes] === written[keptBytes]) keptBytes++;
        expect(isAllZero(found.subarray(keptBytes))).toBe(true);
        if (keptBytes === 0) fates.lost++;
        else if (keptBytes === writeBytes) fates.kept++;
        else fates.torn++;
      }
    }
    expect(fates.lost).toBeGreaterThan(0);
    expect(fates.kept).toBeGreaterThan(0);
    expect(fates.torn).toBeGreaterThan(0);
  });

  test("A crash keeps the manifest old or new, never a mix", async () => {
    const store = await storeWithPendingWrites();
    const replacing = store.writeManifest(patternBytes(64, 41));
    const survivor = store.crash(new SeededRandom(5));
    await replacing;
    const manifest = await survivor.readManifest();
    expect([patternBytes(32, 40), patternBytes(64, 41)]).toContainEqual(manifest);
  });

  test("The same seed gives the same survivors", async () => {
    for (const seed of [1, 2, 3]) {
      const first = (await storeWithPendingWrites()).crash(new SeededRandom(seed));
      const second = (await storeWithPendingWrites()).crash(new SeededRandom(seed));
      expectBytes(await readAll(first, 2), await readAll(second, 2));
    }
  });

  test("Injected failures reject once and change nothing", async () => {
    const store = new MemorySegmentStore();
    await store.create(1, 4096);
    store.faults.failNextWrite = true;
    await expect(store.write(1, 0, patternBytes(10, 1))).rejects.toThrow(/Injected/);
    expect(isAllZero(await readAll(store, 1))).toBe(true);
    await store.write(1, 0, patternBytes(10, 1));
    store.faults.failNextSync = true;
    await expect(store.sync(1)).rejects.toThrow(/Injected/);
    expect(store.pendingBytes()).toBe(10);
    await store.sync(1);
    expect(store.pendingBytes()).toBe(0);
  });
});

describe(`FileSegmentStore (${target.name}) keeps its files`, () => {
  let directory: string;

  beforeEach(async () => {
    directory = await target.tempDir();
  });

  afterEach(async () => {
    await target.removeDir(directory);
  });

  test("Segments are files named %08d.seg next to MANIFEST", async () => {
    const store = await target.FileSegmentStore.open(directory);
    await store.create(7, 4096);
    await store.create(123_456_789, 4096);
    await store.writeManifest(new Uint8Array([1]));
    await store.close();
    expect(await target.listDir(directory)).toEqual(["00000007.seg", "123456789.seg", "MANIFEST"]);
    expect((await target.statFile(`${directory}/00000007.seg`)).sizeBytes).toBe(4096);
  });

  test("A write larger than one write call lands whole, in pieces, and survives a restart after sync", async () => {
    const store = await target.FileSegmentStore.open(directory);
    const sizeBytes = 8 * mebibyte;
    await store.create(1, sizeBytes);
    // Not a multiple of the call size, at an offset that is not either.
    const source = patternBytes(3 * mebibyte + 4152, 9);
    await store.write(1, 12_344, source);
    await store.sync(1);
    await store.close();
    const reopened = await target.FileSegmentStore.open(directory);
    const expected = new Uint8Array(sizeBytes);
    expected.set(source, 12_344);
    expectBytes(await readAll(reopened, 1), expected);
    await reopened.close();
  });

  test("open creates a missing directory and its parents", async () => {
    const nested = `${directory}/a/b/journal`;
    const store = await target.FileSegmentStore.open(nested);
    await store.create(1, 4096);
    await store.close();
    expect(await target.listDir(nested)).toEqual(["00000001.seg"]);
  });

  test("open removes what an interrupted create or manifest write left", async () => {
    const store = await target.FileSegmentStore.open(directory);
    await store.writeManifest(patternBytes(16, 1));
    await store.close();
    await target.writeFile(`${directory}/00000005.seg.tmp`, new Uint8Array(100));
    await target.writeFile(`${directory}/MANIFEST.tmp`, patternBytes(16, 2));
    const reopened = await target.FileSegmentStore.open(directory);
    expect(await reopened.list()).toEqual([]);
    expectBytes(await reopened.readManifest(), patternBytes(16, 1));
    await reopened.close();
    expect(await target.listDir(directory)).toEqual(["MANIFEST"]);
  });

  test("A cache of two descriptors still serves many segments, and keeps to its cap", async () => {
    const store = await target.FileSegmentStore.open(directory, { openFilesMax: 2 });
    const segmentIds = [1, 2, 3, 4, 5, 6];
    for (const segmentId of segmentIds) await store.create(segmentId, 16 * 1024);
    for (let round = 0; round < 4; round++) {
      for (const segmentId of segmentIds) {
        await store.write(segmentId, round * 4096, patternBytes(4096, segmentId * 10 + round));
        expect(store.openFiles).toBeLessThanOrEqual(2);
      }
      await Promise.all(segmentIds.map((segmentId) => store.sync(segmentId)));
    }
    const reopened = await target.FileSegmentStore.open(directory, { openFilesMax: 2 });
    await store.close();
    for (const segmentId of segmentIds) {
      const expected = new Uint8Array(16 * 1024);
      for (let round = 0; round < 4; round++) {
        expected.set(patternBytes(4096, segmentId * 10 + round), round * 4096);
      }
      expectBytes(await readAll(reopened, segmentId), expected);
    }
    await reopened.close();
  });

  test("openFilesMax must be a positive integer", async () => {
    await expect(target.FileSegmentStore.open(directory, { openFilesMax: 0 })).rejects
      .toThrow(RangeError);
  });
});

/** Refusal of a direct write by the fake file system below (its "EINVAL"). */
class DirectRefused extends Error {}

/**
 * The runtime's file system with a strict, fake direct I/O: a `direct` handle checks that
 * every write is aligned in offset, length and memory offset (as O_DIRECT does), then writes
 * through an ordinary handle; `refuse` makes opens or writes fail as a file system without
 * O_DIRECT would, or with an I/O error.
 */
class StrictDirectFileSystem implements FileSystem {
  readonly inner: FileSystem = new target.RuntimeFileSystem();
  readonly directIo = { alignmentBytes: 4096, isUnsupported: (error: unknown) => error instanceof DirectRefused };
  refuse: "none" | "open" | "write" | "io-error" = "none";
  directWriteBytes = 0;
  /** Calls on direct handles (each a hand-off to the runtime's I/O threads). */
  directWriteCalls = 0;
  bufferedWriteBytes = 0;
  /** Direct handles open now. */
  openDirectHandles = 0;

  openFile(path: string, options: OpenFileOptions): FileHandle {
    if (options.direct && this.refuse === "open") throw new DirectRefused("open refused");
    const handle = this.inner.openFile(path, { ...options, direct: false });
    if (options.direct) this.openDirectHandles++;
    const beforeWrite = options.direct
      ? (source: Uint8Array, positionBytes: number): void => {
        if (this.refuse === "write") throw new DirectRefused("write refused");
        if (this.refuse === "io-error") throw new Error("EIO: the disk failed");
        for (const value of [positionBytes, source.length, source.byteOffset]) {
          if (value % 4096 !== 0) throw new Error(`A direct write must be aligned: ${value}`);
        }
        this.directWriteBytes += source.length;
        this.directWriteCalls++;
      }
      : (source: Uint8Array): void => {
        this.bufferedWriteBytes += source.length;
      };
    const noDirectReads = (): never => {
      throw new Error("The store never reads through a direct handle");
    };
    return {
      readSync: options.direct ? noDirectReads : (target, positionBytes) => handle.readSync(target, positionBytes),
      read: options.direct ? async () => noDirectReads() : (target, positionBytes) => handle.read(target, positionBytes),
      writeSync: (source, positionBytes) => {
        beforeWrite(source, positionBytes);
        return handle.writeSync(source, positionBytes);
      },
      write: async (source, positionBytes) => {
        beforeWrite(source, positionBytes);
        return await handle.write(source, positionBytes);
      },
      datasync: () => handle.datasync(),
      datasyncSync: () => handle.datasyncSync(),
      truncate: (sizeBytes) => handle.truncate(sizeBytes),
      sizeBytes: () => handle.sizeBytes(),
      close: () => {
        if (options.direct) this.openDirectHandles--;
        handle.close();
      },
    };
  }

  fileSizeBytes(path: string): Promise<number> {
    return this.inner.fileSizeBytes(path);
  }
  readFileOrNull(path: string): Promise<Uint8Array | null> {
    return this.inner.readFileOrNull(path);
  }
  rename(fromPath: string, toPath: string): Promise<void> {
    return this.inner.rename(fromPath, toPath);
  }
  remove(path: string): Promise<void> {
    return this.inner.remove(path);
  }
  readDirectory(path: string): Promise<string[]> {
    return this.inner.readDirectory(path);
  }
  makeDirectory(path: string): Promise<boolean> {
    return this.inner.makeDirectory(path);
  }
  syncDirectory(path: string): Promise<void> {
    return this.inner.syncDirectory(path);
  }
  joinPath(directory: string, name: string): string {
    return this.inner.joinPath(directory, name);
  }
  parentPath(path: string): string {
    return this.inner.parentPath(path);
  }
  isNotFoundError(error: unknown): boolean {
    return this.inner.isNotFoundError(error);
  }
}

describe(`FileSegmentStore (${target.name}) writes large writes around the page cache`, () => {
  let directory: string;
  const segmentBytes = 24 * mebibyte;
  /** Neighbouring writes that share unaligned blocks, one larger than the staging buffer. */
  const writes = [
    { offsetBytes: 100, source: patternBytes(3 * mebibyte + 17, 1) },
    { offsetBytes: 100 + 3 * mebibyte + 17, source: patternBytes(4096, 2) },
    { offsetBytes: 100 + 3 * mebibyte + 17 + 4096, source: patternBytes(10 * mebibyte + 5, 3) },
    { offsetBytes: 16 * mebibyte, source: patternBytes(mebibyte, 4) },
    { offsetBytes: 18 * mebibyte + 4000, source: patternBytes(mebibyte + 96, 5) },
  ];

  function expectedSegment(): Uint8Array {
    const expected = new Uint8Array(segmentBytes);
    for (const { offsetBytes, source } of writes) expected.set(source, offsetBytes);
    return expected;
  }

  async function writeAll(store: SegmentStore): Promise<void> {
    await store.create(1, segmentBytes);
    for (const { offsetBytes, source } of writes) await store.write(1, offsetBytes, source);
  }

  beforeEach(async () => {
    directory = await target.tempDir();
  });

  afterEach(async () => {
    await target.removeDir(directory);
  });

  test("The runtime's own: on Node direct (O_DIRECT), on Deno through the page cache; every byte reads back and survives a restart", async () => {
    const store = await target.FileSegmentStore.open(directory);
    await writeAll(store);
    expect((store as unknown as { directWrites: boolean }).directWrites).toBe(target.name === "node");
    expectBytes(await readAll(store, 1), expectedSegment());
    await store.sync(1);
    await store.close();
    const reopened = await target.FileSegmentStore.open(directory);
    expectBytes(await readAll(reopened, 1), expectedSegment());
    await reopened.close();
  });

  test("Only aligned middles go direct; heads, tails and small writes go through the page cache", async () => {
    const fileSystem = new StrictDirectFileSystem();
    const store = await FileSegmentStore.open(fileSystem, directory);
    await writeAll(store);
    expect(store.directWrites).toBe(true);
    const totalBytes = writes.reduce((sum, { source }) => sum + source.length, 0);
    expect(fileSystem.directWriteBytes + fileSystem.bufferedWriteBytes).toBe(totalBytes);
    // Each large write leaves at most two partial blocks to the page cache; the 4 KiB one all.
    expect(fileSystem.bufferedWriteBytes).toBeLessThanOrEqual(4096 + 4 * 2 * 4096);
    await store.sync(1);
    expectBytes(await readAll(store, 1), expectedSegment());
    await store.close();
  });

  for (const refuse of ["open", "write"] as const) {
    test(`A file system that refuses the direct ${refuse} turns direct writes off, and no byte is lost`, async () => {
      const fileSystem = new StrictDirectFileSystem();
      fileSystem.refuse = refuse;
      const lines: string[] = [];
      const store = await FileSegmentStore.open(fileSystem, directory, { log: (line) => lines.push(line) });
      await writeAll(store);
      expect(store.directWrites).toBe(false);
      expect(fileSystem.directWriteBytes).toBe(0);
      // Said once, with the reason, however many writes were refused.
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`refused an? (open for direct I/O|direct write) \\(${refuse} refused\\).*page cache`));
      await store.sync(1);
      await store.close();
      const reopened = await target.FileSegmentStore.open(directory);
      expectBytes(await readAll(reopened, 1), expectedSegment());
      await reopened.close();
    });
  }

  test("An I/O error of a direct write rejects the write (it is not retried through the page cache)", async () => {
    const fileSystem = new StrictDirectFileSystem();
    const store = await FileSegmentStore.open(fileSystem, directory);
    await store.create(1, segmentBytes);
    fileSystem.refuse = "io-error";
    await expect(store.write(1, 0, patternBytes(2 * mebibyte, 1))).rejects.toThrow(/EIO/);
    expect(store.directWrites).toBe(true);
    fileSystem.refuse = "none";
    await store.write(1, 0, patternBytes(2 * mebibyte, 2));
    expectBytes((await readAll(store, 1)).subarray(0, 2 * mebibyte), patternBytes(2 * mebibyte, 2));
    await store.close();
  });

  test("A source in aligned memory goes direct as it is, so writes at once all go direct; others share one staging buffer", async () => {
    for (const aligned of [true, false]) {
      const fileSystem = new StrictDirectFileSystem();
      const store = await FileSegmentStore.open(fileSystem, directory);
      await store.create(aligned ? 1 : 2, segmentBytes);
      const memory = allocateAligned(8 * mebibyte);
      // Each source sits in memory at its file offset modulo 4 KiB, as the journal's do.
      const sources = [
        { offsetBytes: 100, source: memory.subarray(100, 100 + 3 * mebibyte) },
        { offsetBytes: 4 * mebibyte + 200, source: memory.subarray(4 * mebibyte + 200, 7 * mebibyte) },
      ].map(({ offsetBytes, source }, index) => {
        source.set(patternBytes(source.length, 10 + index));
        return { offsetBytes, source: aligned ? source : source.slice() };
      });
      await Promise.all(sources.map(({ offsetBytes, source }) => store.write(aligned ? 1 : 2, offsetBytes, source)));
      const segment = await readAll(store, aligned ? 1 : 2);
      for (const { offsetBytes, source } of sources) expectBytes(segment.subarray(offsetBytes, offsetBytes + source.length), source);
      if (aligned) expect(fileSystem.bufferedWriteBytes).toBeLessThanOrEqual(4 * 4096);
      // Unaligned sources: the second write found the staging buffer busy and went through the page cache.
      else expect(fileSystem.bufferedWriteBytes).toBeGreaterThanOrEqual(sources[1].source.length);
      await store.close();
    }
  });

  test("A direct middle goes in one call per staging turn (8 MiB), not in 1 MiB pieces", async () => {
    const fileSystem = new StrictDirectFileSystem();
    const store = await FileSegmentStore.open(fileSystem, directory);
    await store.create(1, segmentBytes);
    const memory = allocateAligned(8 * mebibyte);
    memory.set(patternBytes(memory.length, 20));
    await store.write(1, 0, memory.subarray(0, 6 * mebibyte)); // aligned memory: in place
    expect(fileSystem.directWriteCalls).toBe(1);
    const staged = patternBytes(10 * mebibyte, 21); // ordinary memory: through the staging buffer
    await store.write(1, 8 * mebibyte, staged);
    expect(fileSystem.directWriteCalls).toBe(3);
    expect(fileSystem.directWriteBytes).toBe(16 * mebibyte);
    const segment = await readAll(store, 1);
    expectBytes(segment.subarray(0, 6 * mebibyte), memory.subarray(0, 6 * mebibyte));
    expectBytes(segment.subarray(8 * mebibyte, 18 * mebibyte), staged);
    await store.close();
  });

  test("Only segments being written keep a direct descriptor, and closing the store closes them all", async () => {
    const fileSystem = new StrictDirectFileSystem();
    const store = await FileSegmentStore.open(fileSystem, directory);
    for (let segmentId = 1; segmentId <= 6; segmentId++) {
      await store.create(segmentId, 2 * mebibyte);
      await store.write(segmentId, 300, patternBytes(mebibyte + 4096, segmentId));
      expect(fileSystem.openDirectHandles).toBe(1);
    }
    await store.close();
    expect(fileSystem.openDirectHandles).toBe(0);
    expect(fileSystem.directWriteBytes).toBeGreaterThan(6 * (mebibyte - 4096));
  });

  test("isAligned knows only memory from allocateAligned, at multiples of the alignment", () => {
    const memory = allocateAligned(3 * 4096);
    expect(isAligned(memory, 4096)).toBe(true);
    expect(isAligned(memory.subarray(8192), 4096)).toBe(true);
    expect(isAligned(memory.subarray(512), 512)).toBe(true);
    expect(isAligned(memory.subarray(512), 4096)).toBe(false);
    expect(isAligned(memory, 8192)).toBe(false);
    expect(isAligned(new Uint8Array(4096), 4096)).toBe(false);
    expect(memory.every((byte) => byte === 0)).toBe(true);
  });

  test("directWrites: false keeps every write in the page cache", async () => {
    const fileSystem = new StrictDirectFileSystem();
    const store = await FileSegmentStore.open(fileSystem, directory, { directWrites: false });
    await writeAll(store);
    expect(store.directWrites).toBe(false);
    expect(fileSystem.directWriteBytes).toBe(0);
    expectBytes(await readAll(store, 1), expectedSegment());
    await store.close();
  });
});
