/**
 * Proves the DRL's one rule under crashes (seed 003 [0050]: a set bit may be stale, a clear
 * bit must not be): every region a write was issued to (its beginWrite said no persist was
 * needed, or the persist it waited for resolved) is dirty in every state the cell is given,
 * and in the DRL reopened after any crash, until that write ended AND a reset began after
 * its end. Also that the bits and in-flight counts in memory follow a plain model exactly,
 * that a reset clears exactly the settled regions and only while in sync (seed 003 [0051]),
 * that every rejected persist is a DirtyRegionLogError, and that the cell never has two
 * writes in flight.
 *
 * How: fast-check (seeded, printed on failure) generates volume geometries and sequences of
 * beginWrite / endWrite / persist / reset / setInSync / markAllDirty / injected write failure
 * / settle / crash. Persists are not awaited, so writes, resets and crashes land while a cell
 * write is in flight; a crash uses a seeded random, so the survivor holds the old or the
 * in-flight state. A wrapper checks the rule on every cell write as it is handed over, and
 * each crash reopens the survivor and checks it there. The writes issued before a crash stay
 * owed (as ended writes) until an in-sync reset after the reopen. Counters make sure the
 * interesting cases (crashes with a write in flight, writes that needed no persist, resets
 * that cleared something) came up, so a weakened generator fails loudly.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { createChecksum } from "../../src/core/checksum.ts";
import type { DurableCell } from "../../src/io/durable_cell.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { DirtyRegionLog, DirtyRegionLogError } from "../../src/switch/dirty_region_log.ts";
import { settle } from "./gated_durable_cell.ts";

const checksum = await createChecksum();
const SECTOR_BYTES = 512;

interface Geometry {
  sizeBytes: number;
  regionBytes: number;
}

type Op =
  | { kind: "begin"; sector: number; sectors: number }
  | { kind: "end"; pick: number }
  | { kind: "persist" }
  | { kind: "reset" }
  | { kind: "inSync"; inSync: boolean }
  | { kind: "markAllDirty" }
  | { kind: "failNextWrite" }
  | { kind: "settle" }
  | { kind: "crash" };

const geometryArbitrary: fc.Arbitrary<Geometry> = fc
  .record({
    regionSectors: fc.constantFrom(1, 2, 8),
    fullRegions: fc.integer({ min: 0, max: 20 }),
    tailSectors: fc.integer({ min: 0, max: 7 }),
  })
  .map(({ regionSectors, fullRegions, tailSectors }) => {
    const regionBytes = regionSectors * SECTOR_BYTES;
    const tailBytes = (tailSectors % regionSectors) * SECTOR_BYTES;
    return { regionBytes, sizeBytes: Math.max(fullRegions * regionBytes + tailBytes, SECTOR_BYTES) };
  });

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("begin" as const),
      sector: fc.nat(),
      sectors: fc.oneof(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 24 })),
    }),
  },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("end" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ kind: "persist" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "reset" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("inSync" as const), inSync: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: "markAllDirty" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "failNextWrite" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "settle" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "crash" as const }) },
);

/** A host write as the model sees it. */
interface ModelWrite {
  offsetBytes: number;
  lengthBytes: number;
  firstRegion: number;
  lastRegion: number;
  /** waiting: its persist is pending; issued: sent to the primary; refused: its persist failed; lost: a crash came first. */
  status: "waiting" | "issued" | "refused" | "lost";
  ended: boolean;
  /** A reset began (in sync) after this write ended: its regions may be clean from then on. */
  resetAfterEnd: boolean;
  /** Still tracked by the current DRL (false once a crash came). */
  current: boolean;
}

/** Counts of interesting cases, summed over all runs. */
const seen = {
  crashesWithWriteInFlight: 0,
  beginsWithoutPersist: 0,
  resetsThatCleared: 0,
  refusedWrites: 0,
  cellWritesChecked: 0,
};

/** Hands every cell write to `check` before passing it on, and counts writes in flight. */
class CheckingCell implements DurableCell {
  inFlight = 0;
  constructor(
    readonly inner: MemoryDurableCell,
    readonly check: (bytes: Uint8Array) => void,
    readonly failures: string[],
  ) {}

  read(): Promise<Uint8Array | null> {
    return this.inner.read();
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.check(bytes);
    this.inFlight++;
    if (this.inFlight > 1) this.failures.push("two cell writes in flight");
    try {
      await this.inner.write(bytes);
    } finally {
      this.inFlight--;
    }
  }
}

function bitOf(bytes: Uint8Array, region: number): boolean {
  return (bytes[32 + (region >>> 3)] & (1 << (region & 7))) !== 0;
}

/** The writes whose regions must be dirty in any persisted state from now on. */
function owed(writes: readonly ModelWrite[]): ModelWrite[] {
  return writes.filter((write) => write.status === "issued" && !(write.ended && write.resetAfterEnd));
}

async function runScenario(geometry: Geometry, ops: readonly Op[], seed: number): Promise<void> {
  const random = new SeededRandom(seed);
  const regionCount = Math.ceil(geometry.sizeBytes / geometry.regionBytes);
  const writes: ModelWrite[] = [];
  const failures: string[] = [];
  const checkCellWrite = (bytes: Uint8Array): void => {
    seen.cellWritesChecked++;
    for (const write of owed(writes)) {
      for (let region = write.firstRegion; region <= write.lastRegion; region++) {
        if (!bitOf(bytes, region)) failures.push(`a cell write clears owed region ${region}`);
      }
    }
  };
  let memoryCell = new MemoryDurableCell();
  let cell = new CheckingCell(memoryCell, checkCellWrite, failures);
  let drl = await DirtyRegionLog.open(cell, geometry, { checksum });
  let modelBits = new Array<boolean>(regionCount).fill(false);
  let modelCounts = new Array<number>(regionCount).fill(0);
  let modelInSync = false;

  const expectPersistError = (error: unknown): void => {
    if (!(error instanceof DirtyRegionLogError)) failures.push(`a persist rejected with ${String(error)}`);
  };

  const crash = async (): Promise<void> => {
    if (cell.inFlight > 0) seen.crashesWithWriteInFlight++;
    const survivor = memoryCell.crash(random);
    await settle(); // the interrupted write's waiters reject
    cell = new CheckingCell(survivor, checkCellWrite, failures);
    const reopened = await DirtyRegionLog.open(cell, geometry, { checksum });
    for (const write of owed(writes)) {
      for (let region = write.firstRegion; region <= write.lastRegion; region++) {
        if (!reopened.isDirty(region)) failures.push(`region ${region} is clean after a crash but owed`);
      }
    }
    // The issued writes stay owed until a reset after resync; the others never reached the primary.
    for (const write of writes) {
      if (!write.current) continue;
      write.current = false;
      if (write.status === "waiting") write.status = "lost";
      if (write.status === "issued") write.ended = true;
    }
    memoryCell = survivor;
    drl = reopened;
    modelBits = Array.from({ length: regionCount }, (_, region) => reopened.isDirty(region));
    modelCounts = new Array<number>(regionCount).fill(0);
    modelInSync = false;
  };

  for (const op of ops) {
    switch (op.kind) {
      case "begin": {
        const totalSectors = geometry.sizeBytes / SECTOR_BYTES;
        const sector = op.sector % totalSectors;
        const lengthBytes = Math.min(op.sectors, totalSectors - sector) * SECTOR_BYTES;
        const offsetBytes = sector * SECTOR_BYTES;
        const write: ModelWrite = {
          offsetBytes,
          lengthBytes,
          firstRegion: Math.floor(offsetBytes / geometry.regionBytes),
          lastRegion: Math.floor((offsetBytes + lengthBytes - 1) / geometry.regionBytes),
          status: "waiting",
          ended: false,
          resetAfterEnd: false,
          current: true,
        };
        writes.push(write);
        for (let region = write.firstRegion; region <= write.lastRegion; region++) {
          modelBits[region] = true;
          modelCounts[region]++;
        }
        if (drl.beginWrite(offsetBytes, lengthBytes)) {
          drl.persist().then(
            () => {
              if (write.status === "waiting") write.status = "issued";
            },
            (error: unknown) => {
              expectPersistError(error);
              if (write.status === "waiting") write.status = "refused";
              seen.refusedWrites++;
            },
          );
        } else {
          seen.beginsWithoutPersist++;
          write.status = "issued";
        }
        break;
      }
      case "end": {
        // The appliance acknowledges an issued write, or the splitter gives up on a refused one.
        const endable = writes.filter((write) =>
          write.current && !write.ended && (write.status === "issued" || write.status === "refused")
        );
        if (endable.length === 0) break;
        const write = endable[op.pick % endable.length];
        drl.endWrite(write.offsetBytes, write.lengthBytes);
        write.ended = true;
        for (let region = write.firstRegion; region <= write.lastRegion; region++) modelCounts[region]--;
        break;
      }
      case "persist":
        drl.persist().catch(expectPersistError);
        break;
      case "reset": {
        let expectedCleared = 0;
        if (modelInSync) {
          for (let region = 0; region < regionCount; region++) {
            if (modelBits[region] && modelCounts[region] === 0) {
              modelBits[region] = false;
              expectedCleared++;
            }
          }
          for (const write of writes) if (write.ended) write.resetAfterEnd = true;
        }
        if (expectedCleared > 0) seen.resetsThatCleared++;
        drl.reset().then(
          (cleared) => {
            if (cleared !== expectedCleared) failures.push(`reset cleared ${cleared}, not ${expectedCleared}`);
          },
          expectPersistError,
        );
        break;
      }
      case "inSync":
        drl.setInSync(op.inSync);
        modelInSync = op.inSync;
        break;
      case "markAllDirty":
        drl.markAllDirty();
        modelBits.fill(true);
        break;
      case "failNextWrite":
        memoryCell.faults.failNextWrite = true;
        break;
      case "settle":
        await settle();
        break;
      case "crash":
        await crash();
        break;
    }
    // Memory follows the model exactly, and an in-flight region is always dirty.
    for (let region = 0; region < regionCount; region++) {
      if (drl.isDirty(region) !== modelBits[region] || drl.inFlightCount(region) !== modelCounts[region]) {
        failures.push(`region ${region} differs from the model after ${op.kind}`);
      }
    }
    if (drl.dirtyCount !== modelBits.filter(Boolean).length) failures.push(`dirtyCount is off after ${op.kind}`);
    if (drl.resetsEnabled !== modelInSync) failures.push(`resetsEnabled is off after ${op.kind}`);
    if (failures.length > 0) break;
  }
  await crash();
  expect(failures).toEqual([]);
}

describe("DirtyRegionLog crash model", () => {
  test("Every issued write's regions stay dirty in every persisted state and after any crash", async () => {
    await fc.assert(
      fc.asyncProperty(geometryArbitrary, fc.array(opArbitrary, { minLength: 1, maxLength: 120, size: "max" }), fc.nat(), runScenario),
      { numRuns: 400, seed: 20261122, endOnFailure: true },
    );
    expect(seen.crashesWithWriteInFlight).toBeGreaterThan(20);
    expect(seen.beginsWithoutPersist).toBeGreaterThan(200);
    expect(seen.resetsThatCleared).toBeGreaterThan(50);
    expect(seen.refusedWrites).toBeGreaterThan(10);
    expect(seen.cellWritesChecked).toBeGreaterThan(1000);
  });
});
