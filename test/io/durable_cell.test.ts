/**
 * Proves that every {@link DurableCell} keeps the seam's contract: one shared suite runs
 * against `MemoryDurableCell` and the running runtime's `FileDurableCell` (Node's under Node,
 * Deno's under Deno): empty until written, whole replacement, its own copies, call-order
 * writes, the last written value found after a restart. Then the memory cell's crash
 * simulation (old or new, never a mix; a seed reproduces it) and the file cell's cleanup of
 * an interrupted write.
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { DurableCell } from "../../src/io/durable_cell.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { expectBytes, patternBytes } from "./test_bytes.ts";

const target = await runtimeTarget();

/** How a kind of cell is opened, restarted, and cleaned up by the shared suite. */
interface CellHarness {
  open(): Promise<DurableCell>;
  /** Opens the same storage again, as after a restart. */
  reopen(cell: DurableCell): Promise<DurableCell>;
  cleanup(): Promise<void>;
}

function memoryHarness(): Promise<CellHarness> {
  return Promise.resolve({
    open: () => Promise.resolve(new MemoryDurableCell()),
    reopen: (cell) => Promise.resolve((cell as MemoryDurableCell).crash()),
    cleanup: () => Promise.resolve(),
  });
}

async function fileHarness(): Promise<CellHarness> {
  const directory = await target.tempDir();
  const path = `${directory}/cell.bin`;
  return {
    open: () => target.FileDurableCell.open(path),
    reopen: () => target.FileDurableCell.open(path),
    cleanup: () => target.removeDir(directory),
  };
}

function describeDurableCellContract(name: string, makeHarness: () => Promise<CellHarness>) {
  describe(`${name} keeps the DurableCell contract`, () => {
    let harness: CellHarness;
    let cell: DurableCell;

    beforeEach(async () => {
      harness = await makeHarness();
      cell = await harness.open();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    test("A new cell reads null", async () => {
      expect(await cell.read()).toBeNull();
    });

    test("A write replaces the value whole", async () => {
      await cell.write(patternBytes(100_000, 1));
      expectBytes(await cell.read(), patternBytes(100_000, 1));
      await cell.write(patternBytes(10, 2));
      expectBytes(await cell.read(), patternBytes(10, 2));
    });

    test("An empty value is a value, not null", async () => {
      await cell.write(new Uint8Array(0));
      expectBytes(await cell.read(), new Uint8Array(0));
    });

    test("The cell keeps its own copy of what is written and read", async () => {
      const source = patternBytes(64, 3);
      const writing = cell.write(source);
      source.fill(0);
      await writing;
      const read = await cell.read();
      read!.fill(0);
      expectBytes(await cell.read(), patternBytes(64, 3));
    });

    test("Writes land in call order", async () => {
      await Promise.all([1, 2, 3, 4].map((seed) => cell.write(patternBytes(16 * seed, seed))));
      expectBytes(await cell.read(), patternBytes(64, 4));
    });

    test("A restart finds the last written value", async () => {
      await cell.write(patternBytes(32, 5));
      await cell.write(patternBytes(48, 6));
      cell = await harness.reopen(cell);
      expectBytes(await cell.read(), patternBytes(48, 6));
    });
  });
}

describeDurableCellContract("MemoryDurableCell", memoryHarness);
describeDurableCellContract(`FileDurableCell (${target.name})`, fileHarness);

describe("MemoryDurableCell crashes atomically", () => {
  test("A crash without a random keeps the last value whose write resolved", async () => {
    const cell = new MemoryDurableCell();
    await cell.write(patternBytes(8, 1));
    const writing = cell.write(patternBytes(8, 2));
    const survivor = cell.crash();
    await expect(writing).rejects.toThrow(/crashed/);
    expectBytes(await survivor.read(), patternBytes(8, 1));
  });

  test("A crash during a write keeps the old or the new value, and a seed decides", async () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      const outcomes: number[] = [];
      for (let run = 0; run < 2; run++) {
        const cell = new MemoryDurableCell(patternBytes(8, 1));
        const writing = cell.write(patternBytes(16, 2)).catch((error: unknown) => {
          expect(error).toBeInstanceOf(Error);
        });
        const survivor = cell.crash(new SeededRandom(seed));
        await writing;
        const value = await survivor.read();
        outcomes.push(value!.length);
      }
      expect(outcomes[0]).toBe(outcomes[1]);
      expect([8, 16]).toContain(outcomes[0]);
      seen.add(outcomes[0]);
    }
    expect([...seen].sort()).toEqual([16, 8]);
  });

  test("An injected write failure rejects once and changes nothing", async () => {
    const cell = new MemoryDurableCell(patternBytes(8, 1));
    cell.faults.failNextWrite = true;
    await expect(cell.write(patternBytes(8, 2))).rejects.toThrow(/Injected/);
    expectBytes(await cell.read(), patternBytes(8, 1));
    await cell.write(patternBytes(8, 2));
    expectBytes(await cell.read(), patternBytes(8, 2));
  });

  test("A crashed cell is closed", async () => {
    const cell = new MemoryDurableCell();
    cell.crash();
    await expect(cell.read()).rejects.toThrow(/closed/);
    await expect(cell.write(new Uint8Array(1))).rejects.toThrow(/closed/);
  });
});

describe(`FileDurableCell (${target.name}) recovers from an interrupted write`, () => {
  let directory: string;

  beforeEach(async () => {
    directory = await target.tempDir();
  });

  afterEach(async () => {
    await target.removeDir(directory);
  });

  test("open removes a half-written PATH.tmp and keeps the old value", async () => {
    const path = `${directory}/cell.bin`;
    const cell = await target.FileDurableCell.open(path);
    await cell.write(patternBytes(32, 1));
    await target.writeFile(`${path}.tmp`, patternBytes(7, 2));
    const reopened = await target.FileDurableCell.open(path);
    expectBytes(await reopened.read(), patternBytes(32, 1));
    expect(await target.listDir(directory)).toEqual(["cell.bin"]);
  });
});
