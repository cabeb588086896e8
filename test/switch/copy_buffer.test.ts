/**
 * Proves the CopyBuffer keeps exactly the writes a naive model keeps, in fixed memory: the
 * same entries with the same fields and bytes, in seq order, from any seq; never more than
 * `bytesMax` ring bytes; a refused append changes nothing; and one allocation for the life
 * of the buffer (every entry's data views the same ArrayBuffer).
 *
 * How: fast-check (seeded, printed on failure) drives random appends (1 B to 1 MiB, mostly
 * whole sectors), cumulative releases, iterations from a seq (some stopped early) and clears
 * against an array of copies; half the appends act as a streaming splitter would (when refused,
 * release the oldest entry and retry), which keeps the ring wrapping. The model also places entries on its own: at the newest
 * entry's end if the bytes there are free, else at offset 0 when that is free (the tail skipped
 * is then counted as used), else nowhere. So it checks that an append is refused only when it
 * truly has no room, and that data lands where the ring promises; bytes are compared by XXH64.
 * Counters make sure wrap-arounds, refusals and a full metadata ring came up. Then the edge
 * cases one by one: validation errors, mutation from inside an iteration, seq order. Loans
 * (the link sends ring bytes by reference): lent bytes never change before the loan ends,
 * whatever is acknowledged, cleared or appended meanwhile (examples, then random operations),
 * and the room they hold is free once it ends.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { AssertionError } from "../../src/core/assert.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { fillRandom, SeededRandom } from "../../src/io/random.ts";
import { CopyBuffer, type CopyBufferEntry } from "../../src/switch/copy_buffer.ts";
import { switchLimits } from "../../src/core/limits.ts";
import { firstDifference } from "../io/test_bytes.ts";

const checksum = await createChecksum();
const KiB = 1024;
const MiB = 1024 * KiB;

/** Source of test data: entries are slices of it at seq-dependent offsets (no per-append fill). */
const source = new Uint8Array(2 * MiB);
fillRandom(new SeededRandom(7), source);

function dataFor(seq: number, lengthBytes: number): Uint8Array {
  const startBytes = (seq * 4099) % (source.length - lengthBytes + 1);
  return source.subarray(startBytes, startBytes + lengthBytes);
}

type Op =
  | { kind: "append"; lengthBytes: number; seqStep: number; makeRoom: boolean }
  | { kind: "release"; choice: number; pick: number }
  | { kind: "iterate"; choice: number; pick: number; stopAfter: number }
  | { kind: "clear" };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      // Absolute sizes (whole sectors up to 1 MiB, or odd byte counts), or a share of the
      // buffer (negative: per mille of bytesMax), so small buffers wrap as often as large ones.
      lengthBytes: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 2048 }).map((sectors) => sectors * 512) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 64 }).map((sectors) => sectors * 512) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 600 }) },
        { weight: 8, arbitrary: fc.integer({ min: 10, max: 450 }).map((perMille) => -perMille) },
      ),
      seqStep: fc.constantFrom(1, 1, 1, 2, 5),
      makeRoom: fc.boolean(),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("release" as const), choice: fc.nat(9), pick: fc.nat() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("iterate" as const),
      choice: fc.nat(9),
      pick: fc.nat(),
      stopAfter: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.nat(4)),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "clear" as const }) },
);

interface ModelEntry {
  seq: number;
  timeUs: number;
  offsetBytes: number;
  data: Uint8Array;
  checksum: bigint;
  /** Where the model expects the data in the ring. */
  positionBytes: number;
  /** Where the ring bytes this entry holds begin: its position, or the start of the tail it skipped. */
  spanStartBytes: number;
}

const seen = { wraps: 0, refusedForBytes: 0, refusedForEntries: 0, largeAppends: 0, emptied: 0 };

/** The model's placement: at the newest entry's end if free there, else at 0 if free, else -1. */
function modelPlacement(model: readonly ModelEntry[], bytesMax: number, lengthBytes: number): number {
  if (model.length === 0) return 0;
  const newest = model[model.length - 1];
  const tailBytes = (newest.positionBytes + newest.data.length) % bytesMax;
  const isFree = (startBytes: number, endBytes: number): boolean =>
    model.every((entry) => {
      const entryEnd = entry.positionBytes + entry.data.length;
      // An entry's span may run from a skipped tail at the ring's end round to its data at 0.
      const spans = entry.spanStartBytes === entry.positionBytes
        ? [[entry.positionBytes, entryEnd]]
        : [[entry.spanStartBytes, bytesMax], [0, entryEnd]];
      return spans.every(([spanStart, spanEnd]) => endBytes <= spanStart || startBytes >= spanEnd);
    });
  if (tailBytes + lengthBytes <= bytesMax && isFree(tailBytes, tailBytes + lengthBytes)) return tailBytes;
  // Wrapping skips [tail, bytesMax): it must be free too, and the data must not pass the oldest.
  if (tailBytes !== 0 && isFree(tailBytes, bytesMax) && isFree(0, lengthBytes)) return 0;
  return -1;
}

function describeEntries(buffer: CopyBuffer, fromSeq: number, stopAfter = Number.POSITIVE_INFINITY) {
  const seenEntries: { seq: number; timeUs: number; offsetBytes: number; lengthBytes: number; checksum: bigint; hash: bigint; positionBytes: number; buffer: ArrayBufferLike }[] = [];
  buffer.forEachFrom(fromSeq, (entry: CopyBufferEntry) => {
    seenEntries.push({
      seq: entry.seq,
      timeUs: entry.timeUs,
      offsetBytes: entry.offsetBytes,
      lengthBytes: entry.lengthBytes,
      checksum: entry.checksum,
      hash: checksum.hash64(entry.data),
      positionBytes: entry.data.byteOffset,
      buffer: entry.data.buffer,
    });
    return seenEntries.length < stopAfter;
  });
  return seenEntries;
}

/** Each held entry's seq and ring position. */
function describePositions(buffer: CopyBuffer): number[][] {
  return describeEntries(buffer, 0).map((entry) => [entry.seq, entry.positionBytes]);
}

/** The entries' fields without the ring itself (compared by identity elsewhere). */
function withoutRing(entries: ReturnType<typeof describeEntries>) {
  return entries.map(({ buffer: _ring, ...fields }) => fields);
}

function expectMatchesModel(buffer: CopyBuffer, model: readonly ModelEntry[], ring: { buffer?: ArrayBufferLike }) {
  const entries = describeEntries(buffer, 0);
  expect(entries.map((entry) => entry.seq)).toEqual(model.map((entry) => entry.seq));
  for (let index = 0; index < model.length; index++) {
    const actual = entries[index];
    const expected = model[index];
    expect(actual.timeUs).toBe(expected.timeUs);
    expect(actual.offsetBytes).toBe(expected.offsetBytes);
    expect(actual.lengthBytes).toBe(expected.data.length);
    expect(actual.checksum).toBe(expected.checksum);
    expect(actual.hash, `bytes of seq ${expected.seq}`).toBe(expected.checksum);
    expect(actual.positionBytes).toBe(expected.positionBytes);
    ring.buffer ??= actual.buffer;
    expect(actual.buffer === ring.buffer, "every entry views the one ring").toBe(true);
  }
  const heldBytes = model.reduce((sum, entry) => sum + entry.data.length, 0);
  const skippedBytes = model.reduce(
    (sum, entry) => sum + (entry.spanStartBytes === entry.positionBytes ? 0 : buffer.bytesMax - entry.spanStartBytes),
    0,
  );
  expect(buffer.entryCount).toBe(model.length);
  expect(buffer.usedBytes).toBe(heldBytes + skippedBytes);
  expect(buffer.usedBytes).toBeLessThanOrEqual(buffer.bytesMax);
  expect(buffer.freeBytes).toBe(buffer.bytesMax - buffer.usedBytes);
  expect(buffer.oldestSeq).toBe(model[0]?.seq);
  expect(buffer.newestSeq).toBe(model[model.length - 1]?.seq);
}

/** A seq to release through or iterate from: anywhere, at the edges, or at a held entry. */
function seqFor(model: readonly ModelEntry[], choice: number, pick: number, lastSeq: number): number {
  if (model.length === 0 || choice === 0) return pick % (lastSeq + 3); // anywhere, also past the newest
  if (choice === 1) return model[0].seq - 1; // before the oldest
  if (choice === 2) return lastSeq + 10; // past the newest
  if (choice <= 5) return model[0].seq; // exactly the oldest: a steady FIFO, which wraps
  const entry = model[pick % model.length];
  return choice === 6 ? entry.seq - 1 : entry.seq; // between entries, or exactly one
}

async function runScenario(bytesMax: number, ops: readonly Op[]): Promise<void> {
  const buffer = new CopyBuffer(bytesMax);
  const ring: { buffer?: ArrayBufferLike } = {};
  let model: ModelEntry[] = [];
  let lastSeq = 0;

  /** Appends to both; returns whether the buffer took the write (and checks the model agreed). */
  const append = (lengthBytes: number, seq: number): boolean => {
    const data = dataFor(seq, lengthBytes);
    const write = { seq, timeUs: 1_790_000_000_000_000 + seq * 3, offsetBytes: seq * 512, data, checksum: checksum.hash64(data) };
    const expectedPosition = model.length === buffer.entryCountMax ? -1 : modelPlacement(model, bytesMax, lengthBytes);
    const before = withoutRing(describeEntries(buffer, 0));
    const usedBefore = buffer.usedBytes;
    const appended = buffer.tryAppend(write);
    expect(appended, `append of ${lengthBytes} bytes at seq ${seq}`).toBe(expectedPosition >= 0);
    if (!appended) {
      if (model.length === buffer.entryCountMax) seen.refusedForEntries++;
      else seen.refusedForBytes++;
      expect(withoutRing(describeEntries(buffer, 0))).toEqual(before);
      expect(buffer.usedBytes).toBe(usedBefore);
      return false;
    }
    lastSeq = seq;
    if (lengthBytes >= 512 * KiB) seen.largeAppends++;
    const newest = model[model.length - 1];
    const tailBytes = newest === undefined ? 0 : (newest.positionBytes + newest.data.length) % bytesMax;
    const wrapped = model.length > 0 && expectedPosition !== tailBytes;
    if (wrapped) seen.wraps++;
    model.push({ ...write, positionBytes: expectedPosition, spanStartBytes: wrapped ? tailBytes : expectedPosition });
    return true;
  };

  const releaseThrough = (seq: number): void => {
    const kept = model.filter((entry) => entry.seq > seq);
    expect(buffer.releaseThrough(seq)).toBe(model.length - kept.length);
    model = kept;
    if (model.length === 0) seen.emptied++;
  };

  for (const op of ops) {
    switch (op.kind) {
      case "append": {
        const lengthBytes = op.lengthBytes > 0
          ? Math.min(op.lengthBytes, bytesMax)
          : Math.max(1, Math.round((bytesMax * -op.lengthBytes) / 1000));
        const seq = lastSeq + op.seqStep;
        // A streaming splitter: when the buffer is full, wait for the oldest acknowledgement.
        while (!append(lengthBytes, seq) && op.makeRoom) {
          expect(model.length).toBeGreaterThan(0); // an empty buffer takes any write that can fit
          releaseThrough(model[0].seq);
          expectMatchesModel(buffer, model, ring);
        }
        break;
      }
      case "release":
        releaseThrough(seqFor(model, op.choice, op.pick, lastSeq));
        break;
      case "iterate": {
        const seq = seqFor(model, op.choice, op.pick, lastSeq);
        const expected = model.filter((entry) => entry.seq >= seq).slice(0, op.stopAfter === 0 ? 1 : op.stopAfter);
        const entries = describeEntries(buffer, seq, op.stopAfter === 0 ? 1 : op.stopAfter);
        expect(entries.map((entry) => [entry.seq, entry.hash])).toEqual(expected.map((entry) => [entry.seq, entry.checksum]));
        break;
      }
      case "clear":
        buffer.clear();
        model = [];
        break;
    }
    expectMatchesModel(buffer, model, ring);
  }
}

describe("CopyBuffer against a model of copies", () => {
  test("Holds the same entries and bytes as the model, in fixed memory, refusing only when full", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2 * KiB, 4 * KiB, 64 * KiB + 512, MiB, MiB + 3 * 512, 3 * MiB),
        fc.array(opArbitrary, { minLength: 1, maxLength: 60, size: "max" }),
        runScenario,
      ),
      { numRuns: 300, seed: 20261122, endOnFailure: true },
    );
    expect(seen.wraps).toBeGreaterThan(100);
    expect(seen.refusedForBytes).toBeGreaterThan(100);
    expect(seen.refusedForEntries).toBeGreaterThan(0);
    expect(seen.largeAppends).toBeGreaterThan(100);
    expect(seen.emptied).toBeGreaterThan(50);
  });
});

describe("CopyBuffer edge cases", () => {
  const write = (seq: number, lengthBytes: number) => ({
    seq,
    timeUs: 1_790_000_000_000_000,
    offsetBytes: 0,
    data: dataFor(seq, lengthBytes),
    checksum: 0n,
  });

  test("A new buffer is empty and sized by its limits", () => {
    const buffer = new CopyBuffer(4 * KiB);
    expect(buffer.entryCountMax).toBe(8);
    expect(buffer.oldestSeq).toBeUndefined();
    expect(buffer.newestSeq).toBeUndefined();
    expect(buffer.usedBytes).toBe(0);
    expect(buffer.freeBytes).toBe(4 * KiB);
    expect(new CopyBuffer(1000).entryCountMax).toBe(2);
    expect(new CopyBuffer().bytesMax).toBe(switchLimits.copyBufferBytesDefault);
  });

  test("Given a checksum, it hashes a write appended without one in place, over the ring's copy", () => {
    const buffer = new CopyBuffer(4 * KiB, { checksum });
    const data = dataFor(1, 1000);
    expect(buffer.tryAppend({ seq: 1, timeUs: 1_790_000_000_000_000, offsetBytes: 0, data })).toBe(true);
    expect(buffer.tryAppend({ ...write(2, 1000), checksum: 42n })).toBe(true); // a given checksum is kept
    // The wrap puts seq 3 at offset 0 (its 2,100 bytes do not fit after seq 2's end).
    buffer.releaseThrough(2);
    expect(buffer.tryAppend({ seq: 3, timeUs: 1_790_000_000_000_000, offsetBytes: 0, data: dataFor(3, 2100) })).toBe(true);
    const checksums: bigint[] = [];
    const ringBuffers = new Set<ArrayBufferLike>();
    buffer.forEachFrom(3, (entry) => {
      checksums.push(entry.checksum);
      expect(entry.positionBytes).toBe(0);
      ringBuffers.add(entry.data.buffer);
      expect(checksum.hash64(entry.data)).toBe(checksum.hash64(entry.data.slice())); // read in place
    });
    expect(checksums).toEqual([checksum.hash64(dataFor(3, 2100))]);
    expect(ringBuffers.size).toBe(1);
    const again = new CopyBuffer(4 * KiB, { checksum });
    again.tryAppend({ seq: 1, timeUs: 1_790_000_000_000_000, offsetBytes: 0, data });
    again.forEachFrom(1, (entry) => expect(entry.checksum).toBe(checksum.hash64(data)));
  });

  test("Without a checksum, a write must bring its own", () => {
    const buffer = new CopyBuffer(4 * KiB);
    expect(() => buffer.tryAppend({ seq: 1, timeUs: 1_790_000_000_000_000, offsetBytes: 0, data: dataFor(1, 10) })).toThrow(AssertionError);
    expect(buffer.entryCount).toBe(0);
  });

  test("A buffer touched at start holds and gives back writes as an untouched one does", () => {
    const touched = new CopyBuffer(4 * KiB, { touch: true });
    const untouched = new CopyBuffer(4 * KiB);
    for (const buffer of [touched, untouched]) {
      for (let seq = 1; seq <= 6; seq++) expect(buffer.tryAppend(write(seq, 1024))).toBe(seq <= 4);
      buffer.releaseThrough(2);
      expect(buffer.tryAppend(write(5, 1024))).toBe(true);
    }
    const seen = (buffer: CopyBuffer) => describeEntries(buffer, 3).map(({ buffer: _, ...entry }) => entry);
    expect(seen(touched)).toEqual(seen(untouched));
    expect(seen(touched).map((entry) => entry.seq)).toEqual([3, 4, 5]);
  });

  test.each([0, 511, 4096.5, switchLimits.copyBufferBytesMax + 1, Number.NaN])(
    "A buffer of %s bytes is refused with a RangeError",
    (bytesMax) => {
      expect(() => new CopyBuffer(bytesMax)).toThrow(RangeError);
    },
  );

  test("A write that could never fit, an invalid field or seq, is a RangeError and changes nothing", () => {
    const buffer = new CopyBuffer(4 * KiB);
    buffer.tryAppend(write(1, 512));
    const bad = [
      { ...write(2, 512), data: new Uint8Array(4 * KiB + 1) },
      { ...write(2, 512), data: new Uint8Array(0) },
      { ...write(2, 512), seq: -1 },
      { ...write(2, 512), seq: 2.5 },
      { ...write(2, 512), timeUs: Number.NaN },
      { ...write(2, 512), offsetBytes: -512 },
      { ...write(2, 512), checksum: -1n },
      { ...write(2, 512), checksum: 1n << 64n },
    ];
    for (const input of bad) expect(() => buffer.tryAppend(input)).toThrow(RangeError);
    expect(() => buffer.releaseThrough(Number.NaN)).toThrow(RangeError);
    expect(() => buffer.forEachFrom(1.5, () => {})).toThrow(RangeError);
    expect(buffer.entryCount).toBe(1);
    expect(buffer.usedBytes).toBe(512);
  });

  test("A write exactly as large as the buffer fits an empty buffer only", () => {
    const buffer = new CopyBuffer(4 * KiB);
    expect(buffer.tryAppend(write(1, 4 * KiB))).toBe(true);
    expect(buffer.freeBytes).toBe(0);
    expect(buffer.tryAppend(write(2, 1))).toBe(false);
    buffer.releaseThrough(1);
    expect(buffer.tryAppend(write(2, 512))).toBe(true);
    expect(buffer.tryAppend(write(3, 4 * KiB))).toBe(false);
  });

  test("Writes that fit exactly fit: at the end, after a wrap, and up to the oldest entry", () => {
    const buffer = new CopyBuffer(4 * KiB);
    const positions = () => describePositions(buffer);
    expect(buffer.tryAppend(write(1, 2 * KiB))).toBe(true);
    expect(buffer.tryAppend(write(2, 1536))).toBe(true);
    expect(buffer.releaseThrough(1)).toBe(1);
    // 512 bytes left at the end: too short, so seq 3 wraps to 0, exactly up to seq 2.
    expect(buffer.tryAppend(write(3, 2 * KiB))).toBe(true);
    expect(positions()).toEqual([[2, 2 * KiB], [3, 0]]);
    expect(buffer.usedBytes).toBe(4 * KiB); // the skipped 512 bytes count as used
    expect(buffer.tryAppend(write(4, 1))).toBe(false);
    expect(buffer.releaseThrough(2)).toBe(1);
    expect(buffer.usedBytes).toBe(2560); // seq 3 still holds the tail it skipped
    expect(buffer.tryAppend(write(4, 1536))).toBe(true); // exactly the gap before the skipped tail
    expect(positions()).toEqual([[3, 0], [4, 2 * KiB]]);
    expect(buffer.freeBytes).toBe(0);
    expect(buffer.releaseThrough(3)).toBe(1);
    expect(buffer.tryAppend(write(5, 512))).toBe(true); // exactly the end, once seq 3 freed its tail
    expect(positions()).toEqual([[4, 2 * KiB], [5, 3584]]);
    expect(buffer.tryAppend(write(6, 2 * KiB))).toBe(true); // from 0 up to seq 4, no skip
    expect(positions()).toEqual([[4, 2 * KiB], [5, 3584], [6, 0]]);
    expect(buffer.usedBytes).toBe(4 * KiB);
  });

  test("Seqs must grow, also across a clear", () => {
    const buffer = new CopyBuffer(4 * KiB);
    buffer.tryAppend(write(5, 512));
    expect(() => buffer.tryAppend(write(5, 512))).toThrow(AssertionError);
    buffer.clear();
    expect(() => buffer.tryAppend(write(4, 512))).toThrow(AssertionError);
    expect(buffer.tryAppend(write(6, 512))).toBe(true);
    expect(buffer.oldestSeq).toBe(6);
  });

  test("The buffer cannot be changed from inside forEachFrom, and stays usable after", () => {
    const buffer = new CopyBuffer(4 * KiB);
    buffer.tryAppend(write(1, 512));
    buffer.tryAppend(write(2, 512));
    expect(() => buffer.forEachFrom(0, () => void buffer.releaseThrough(1))).toThrow(AssertionError);
    expect(() => buffer.forEachFrom(0, () => void buffer.tryAppend(write(3, 512)))).toThrow(AssertionError);
    expect(() => buffer.forEachFrom(0, () => buffer.clear())).toThrow(AssertionError);
    expect(() => buffer.forEachFrom(0, () => buffer.forEachFrom(0, () => {}))).toThrow(AssertionError);
    expect(buffer.entryCount).toBe(2);
    expect(buffer.releaseThrough(2)).toBe(2);
  });

  test("The entry view is reused and its data is the ring's bytes, not a copy", () => {
    const buffer = new CopyBuffer(4 * KiB);
    buffer.tryAppend(write(1, 512));
    buffer.tryAppend(write(2, 1024));
    const views: CopyBufferEntry[] = [];
    const buffers = new Set<ArrayBufferLike>();
    buffer.forEachFrom(0, (entry) => {
      views.push(entry);
      buffers.add(entry.data.buffer);
    });
    expect(views[0]).toBe(views[1]);
    expect(buffers.size).toBe(1);
    expect([...buffers][0].byteLength).toBe(4 * KiB);
  });
});

describe("CopyBuffer loans (the link sends ring bytes without a copy)", () => {
  const sector = (seq: number, lengthBytes = KiB) => new Uint8Array(lengthBytes).fill(seq);
  const append = (buffer: CopyBuffer, seq: number, lengthBytes = KiB) =>
    buffer.tryAppend({ seq, timeUs: seq, offsetBytes: seq * lengthBytes, data: sector(seq, lengthBytes), checksum: 0n });
  const bytesOf = (views: readonly Uint8Array[]) => views.map((view) => [...new Set(view)]);

  test("Lent bytes stay unchanged through an acknowledgement until the loan ends; only then is the room free", () => {
    const buffer = new CopyBuffer(4 * KiB);
    for (let seq = 1; seq <= 4; seq++) expect(append(buffer, seq)).toBe(true);
    const views = buffer.lend(2, 3);
    expect(views.length).toBe(1);
    expect(views[0].length).toBe(2 * KiB);
    expect(buffer.releaseThrough(4)).toBe(4);
    // The metadata is gone at once; the lent bytes (and those after them) stay counted.
    expect(buffer.entryCount).toBe(0);
    expect(buffer.usedBytes).toBe(3 * KiB);
    expect(append(buffer, 5, 2 * KiB)).toBe(false);
    expect(append(buffer, 5)).toBe(true); // the 1 KiB before the loan was freed
    expect(bytesOf([views[0].subarray(0, KiB), views[0].subarray(KiB)])).toEqual([[2], [3]]);
    buffer.endLend();
    expect(buffer.isLent).toBe(false);
    expect(buffer.usedBytes).toBe(KiB);
    expect(append(buffer, 6, 3 * KiB)).toBe(true);
  });

  test("A loan across the ring's end is two views, in seq order", () => {
    const buffer = new CopyBuffer(3 * KiB);
    for (let seq = 1; seq <= 3; seq++) append(buffer, seq);
    buffer.releaseThrough(1);
    expect(append(buffer, 4)).toBe(true); // wraps to offset 0
    const views = buffer.lend(2, 4);
    expect(views.map((view) => [view.byteOffset, view.length])).toEqual([[KiB, 2 * KiB], [0, KiB]]);
    expect(views.map((view) => view[0])).toEqual([2, 4]);
    buffer.endLend();
  });

  test("A clear while lent keeps the lent bytes until the loan ends, and seqs keep growing", () => {
    const buffer = new CopyBuffer(4 * KiB);
    for (let seq = 1; seq <= 4; seq++) append(buffer, seq);
    const views = buffer.lend(1, 2);
    buffer.clear();
    expect(buffer.entryCount).toBe(0);
    expect(buffer.freeBytes).toBe(0);
    expect(append(buffer, 5)).toBe(false);
    expect(views.map((view) => view[KiB])).toEqual([2]);
    buffer.endLend();
    expect(buffer.usedBytes).toBe(0);
    expect(append(buffer, 5, 4 * KiB)).toBe(true);
    expect(() => append(buffer, 5)).toThrow(AssertionError);
  });

  test("Entries released before the loan free their room at once; a second loan is a programmer error", () => {
    const buffer = new CopyBuffer(4 * KiB);
    for (let seq = 1; seq <= 4; seq++) append(buffer, seq);
    const views = buffer.lend(3, 4);
    expect(() => buffer.lend(3, 3)).toThrow(AssertionError);
    buffer.releaseThrough(2);
    expect(buffer.freeBytes).toBe(2 * KiB);
    expect(append(buffer, 5, 2 * KiB)).toBe(true);
    expect(views[0][0]).toBe(3);
    expect(views[0][KiB]).toBe(4);
    buffer.endLend();
    expect(buffer.usedBytes).toBe(4 * KiB);
    expect(() => buffer.lend(4, 6)).toThrow(AssertionError);
  });

  test("Random appends, releases, clears and loans never change lent bytes before the loan ends", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant("append" as const), sectors: fc.integer({ min: 1, max: 6 }) }),
            fc.record({ kind: fc.constant("release" as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
            fc.record({ kind: fc.constant("lend" as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
            fc.record({ kind: fc.constant("endLend" as const) }),
            fc.record({ kind: fc.constant("clear" as const) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const buffer = new CopyBuffer(8 * KiB);
          let seq = 0;
          let lent: { views: Uint8Array[]; copies: Uint8Array[] } | null = null;
          const checkLent = () => {
            if (lent === null) return;
            lent.views.forEach((view, index) => expect(firstDifference(view, lent!.copies[index])).toBe(-1));
          };
          for (const op of ops) {
            if (op.kind === "append") {
              const data = dataFor(seq + 1, op.sectors * 512);
              if (buffer.tryAppend({ seq: seq + 1, timeUs: 0, offsetBytes: 0, data, checksum: 0n })) seq++;
            } else if (op.kind === "release") {
              const oldest = buffer.oldestSeq;
              if (oldest !== undefined) buffer.releaseThrough(oldest + Math.floor(op.fraction * (seq - oldest + 1)));
            } else if (op.kind === "lend" && lent === null && buffer.oldestSeq !== undefined) {
              const oldest = buffer.oldestSeq;
              const first = oldest + Math.floor(op.fraction * (seq - oldest + 1));
              const views = buffer.lend(Math.min(first, seq), seq);
              lent = { views, copies: views.map((view) => view.slice()) };
              expect(views.reduce((sum, view) => sum + view.length, 0)).toBeLessThanOrEqual(buffer.usedBytes);
            } else if (op.kind === "endLend") {
              checkLent();
              buffer.endLend();
              lent = null;
            } else if (op.kind === "clear") {
              buffer.clear();
            }
            checkLent();
            expect(buffer.usedBytes).toBeLessThanOrEqual(buffer.bytesMax);
            if (lent === null && buffer.entryCount === 0) expect(buffer.usedBytes).toBe(0);
          }
        },
      ),
      { seed: 20261201, numRuns: 300 },
    );
  });
});
