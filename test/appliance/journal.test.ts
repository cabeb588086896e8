// Proves the journal's contract on the in-memory, crashable segment store: records come back
// in order after flush and reopen; durability is reported only after a sync and never after a
// failed one; records roll over small segments without straddling them; full group buffers
// push back; bad records are rejected without a trace. The crash property test (fast-check,
// seeded, 200 runs) appends random writes and markers, flushes and yields at random points,
// crashes the store (each unsynced write lost, kept or torn), reopens, and checks that every
// record reported durable is recovered intact, that the recovered records are a prefix of
// those appended, that a cut is logged exactly when garbage was left, and that the same holds
// after appending and crashing a second time; it also counts how often the interesting cases
// (unsynced writes in two segments, cuts) came up, so a weakened generator fails loudly.
// Corruption of a durable record that later records vouch for is refused with
// JournalCorruptionError, and a scan from a given address reads nothing before it.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  ChecksumMismatchError,
  Journal,
  JournalCorruptionError,
  JournalFailedError,
  type JournalOptions,
  type JournalRecordInput,
  type RecoveredRecord,
} from "../../src/appliance/journal.ts";
import {
  journalRecordBytes,
  journalRecordHeaderBytes,
  type JournalRecordKind,
  journalRecordKinds,
} from "../../src/appliance/journal_record.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { isAligned } from "../../src/io/aligned_memory.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { fillRandom, type Random, randomInt, SeededRandom } from "../../src/io/random.ts";
import type { SegmentStore } from "../../src/io/segment_store.ts";

const KiB = 1024;
const startTimeUs = 1_790_000_000_000_000;

/**
 * A SegmentStore wrapper that can hold syncs until released, records every read, and knows
 * which segments have unsynced writes (what a crash can tear).
 */
class GatedStore implements SegmentStore {
  readonly inner: MemorySegmentStore;
  holdSyncs = false;
  /** Writes wait (unapplied, invisible to reads) while this is set. */
  holdWrites = false;
  readonly reads: { segmentId: number; offsetBytes: number; lengthBytes: number }[] = [];
  readonly unsyncedSegmentIds = new Set<number>();
  #heldSyncs: (() => void)[] = [];
  #heldWrites: (() => void)[] = [];

  constructor(inner = new MemorySegmentStore()) {
    this.inner = inner;
  }

  releaseSyncs(): void {
    this.holdSyncs = false;
    for (const release of this.#heldSyncs.splice(0)) release();
  }

  releaseWrites(): void {
    this.holdWrites = false;
    for (const release of this.#heldWrites.splice(0)) release();
  }

  list(): Promise<number[]> {
    return this.inner.list();
  }
  create(segmentId: number, sizeBytes: number): Promise<void> {
    return this.inner.create(segmentId, sizeBytes);
  }
  sizeOf(segmentId: number): Promise<number> {
    return this.inner.sizeOf(segmentId);
  }
  async write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void> {
    if (this.holdWrites) await new Promise<void>((resolve) => this.#heldWrites.push(resolve));
    this.unsyncedSegmentIds.add(segmentId);
    return this.inner.write(segmentId, offsetBytes, source);
  }
  read(segmentId: number, offsetBytes: number, target: Uint8Array): Promise<void> {
    this.reads.push({ segmentId, offsetBytes, lengthBytes: target.length });
    return this.inner.read(segmentId, offsetBytes, target);
  }
  async sync(segmentId: number): Promise<void> {
    if (this.holdSyncs) await new Promise<void>((resolve) => this.#heldSyncs.push(resolve));
    await this.inner.sync(segmentId);
    this.unsyncedSegmentIds.delete(segmentId);
  }

  /** Crashes the inner store (see `MemorySegmentStore.crash`) and wraps the survivor. */
  crash(random: Random): GatedStore {
    return new GatedStore(this.inner.crash(random));
  }
  remove(segmentId: number): Promise<void> {
    return this.inner.remove(segmentId);
  }
  readManifest(): Promise<Uint8Array | null> {
    return this.inner.readManifest();
  }
  writeManifest(bytes: Uint8Array): Promise<void> {
    return this.inner.writeManifest(bytes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** What the test appended, to compare recovery against. */
interface AppendedRecord {
  kind: number;
  seq: number;
  timeUs: number;
  offsetBytes: number;
  payload: Uint8Array;
  payloadAddressBytes: number;
}

function recordEndAddress(record: { payloadAddressBytes: number; payload: Uint8Array }): number {
  return record.payloadAddressBytes - journalRecordHeaderBytes + journalRecordBytes(record.payload.length);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function tick(count = 1): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

/** Opens a journal and returns it with copies of the records and log lines recovery produced. */
async function openCollecting(store: SegmentStore, options: JournalOptions = {}) {
  const recovered: AppendedRecord[] = [];
  const logLines: string[] = [];
  const journal = await Journal.open({ store, log: (line) => logLines.push(line) }, {
    ...options,
    onRecord: (record: RecoveredRecord) => {
      expect(record.payloadAddressBytes).toBe(record.recordAddressBytes + journalRecordHeaderBytes);
      recovered.push({
        kind: record.kind,
        seq: record.seq,
        timeUs: record.timeUs,
        offsetBytes: record.offsetBytes,
        payload: record.payload.slice(),
        payloadAddressBytes: record.payloadAddressBytes,
      });
    },
  });
  return { journal, recovered, logLines };
}

/** Builds records with consecutive seqs and seeded payloads. */
class RecordMaker {
  readonly random: SeededRandom;
  nextSeq: number;
  timeUs = startTimeUs;

  constructor(seed: number, nextSeq = 1) {
    this.random = new SeededRandom(seed);
    this.nextSeq = nextSeq;
  }

  write(lengthBytes: number): JournalRecordInput {
    const payload = new Uint8Array(lengthBytes);
    fillRandom(this.random, payload);
    this.timeUs += randomInt(this.random, 0, 1000);
    return {
      kind: journalRecordKinds.write,
      seq: this.nextSeq++,
      timeUs: this.timeUs,
      offsetBytes: randomInt(this.random, 0, 1 << 20) * 512,
      payload,
    };
  }

  marker(kind: JournalRecordKind, lengthBytes: number): JournalRecordInput {
    const payload = new Uint8Array(lengthBytes);
    fillRandom(this.random, payload);
    return { kind, seq: this.nextSeq++, timeUs: this.timeUs, offsetBytes: 0, payload };
  }

  baseline(offsetBytes: number, lengthBytes: number): JournalRecordInput {
    const payload = new Uint8Array(lengthBytes);
    fillRandom(this.random, payload);
    return { kind: journalRecordKinds.baseline, seq: 0, timeUs: this.timeUs, offsetBytes, payload };
  }
}

function remember(record: JournalRecordInput, payloadAddressBytes: number): AppendedRecord {
  return {
    kind: record.kind,
    seq: record.seq,
    timeUs: record.timeUs,
    offsetBytes: record.offsetBytes,
    payload: record.payload.slice(),
    payloadAddressBytes,
  };
}

function expectSameRecords(actual: AppendedRecord[], expected: AppendedRecord[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expectSameRecord(actual[i], expected[i], i);
}

function expectSameRecord(actual: AppendedRecord, expected: AppendedRecord, index: number): void {
  const { payload: actualPayload, ...actualFields } = actual;
  const { payload: expectedPayload, ...expectedFields } = expected;
  expect(actualFields, `record ${index}`).toEqual(expectedFields);
  expect(bytesEqual(actualPayload, expectedPayload), `payload of record ${index} (seq ${expected.seq})`).toBe(true);
}

const markerKinds = Object.values(journalRecordKinds).filter(
  (kind) => kind !== journalRecordKinds.write && kind !== journalRecordKinds.baseline,
) as JournalRecordKind[];

describe("Journal", () => {
  test("appends, flushes and reopens with every record in order", async () => {
    const store = new MemorySegmentStore();
    const { journal, recovered: nothing } = await openCollecting(store, { segmentSizeBytes: 1024 * KiB, groupBytesMax: 256 * KiB });
    expect(nothing).toEqual([]);
    expect(journal.headSeq).toBe(-1);
    const maker = new RecordMaker(1, 1);
    const appended: AppendedRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const record = maker.baseline(i * 64 * KiB, 64 * KiB);
      appended.push(remember(record, await journal.append(record)));
    }
    for (let i = 0; i < 100; i++) {
      const record = i % 10 === 9 ? maker.marker(journalRecordKinds.snapshot, 37) : maker.write(512 * (1 + (i % 16)));
      appended.push(remember(record, await journal.append(record)));
    }
    expect(journal.headSeq).toBe(100);
    await journal.flush();
    expect(journal.durableSeq).toBe(100);
    expect(journal.durableAddressBytes).toBe(journal.endAddressBytes);
    await journal.close();

    const reopened = await openCollecting(store, { segmentSizeBytes: 1024 * KiB, groupBytesMax: 256 * KiB });
    expectSameRecords(reopened.recovered, appended);
    expect(reopened.logLines).toEqual([]);
    expect(reopened.journal.headSeq).toBe(100);
    expect(reopened.journal.durableSeq).toBe(100);
    expect(reopened.journal.endAddressBytes).toBe(recordEndAddress(appended[appended.length - 1]));

    // Appending goes on after the recovered tail.
    const next = maker.write(4096);
    const address = await reopened.journal.append(next);
    expect(address).toBe(recordEndAddress(appended[appended.length - 1]) + journalRecordHeaderBytes);
    await reopened.journal.close();
  });

  test("onDurable reports increasing seqs only after the sync made them durable", async () => {
    const store = new GatedStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    const reports: { seq: number; addressBytes: number; syncs: number; pendingBytes: number }[] = [];
    journal.onDurable((seq, addressBytes) => {
      // Unsynced bytes may exist (groups written while the sync ran), but none at or before
      // the address reported durable.
      const pendingBytes = store.inner.pendingWrites()
        .filter((write) => write.segmentId * 64 * KiB + write.offsetBytes < addressBytes)
        .reduce((total, write) => total + write.lengthBytes, 0);
      reports.push({ seq, addressBytes, syncs: store.inner.stats.syncs, pendingBytes });
    });
    const maker = new RecordMaker(2);
    store.holdSyncs = true;
    for (let i = 0; i < 3; i++) journal.tryAppend(maker.write(2048));
    await tick(20);
    expect(store.inner.stats.writes).toBe(1); // the group was written ...
    expect(reports).toEqual([]); // ... but not synced: nothing is durable yet
    expect(journal.durableSeq).toBe(-1);
    store.releaseSyncs();
    await journal.flush();
    expect(reports).toEqual([{ seq: 3, addressBytes: journal.endAddressBytes, syncs: 1, pendingBytes: 0 }]);

    for (let i = 0; i < 200; i++) {
      await journal.append(maker.write(512 * (1 + (i % 8))));
      if (i % 7 === 0) await tick(3);
    }
    await journal.flush();
    expect(journal.durableSeq).toBe(203);
    for (let i = 1; i < reports.length; i++) {
      expect(reports[i].seq).toBeGreaterThan(reports[i - 1].seq);
      expect(reports[i].addressBytes).toBeGreaterThan(reports[i - 1].addressBytes);
      expect(reports[i].syncs).toBeGreaterThan(reports[i - 1].syncs);
      expect(reports[i].pendingBytes).toBe(0);
    }
    expect(reports[reports.length - 1].seq).toBe(203);
    await journal.close();
  });

  test("a small group waits for the sync in flight and goes in one write; a large one is written at once", async () => {
    const store = new GatedStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 256 * KiB, groupBytesMax: 64 * KiB });
    const maker = new RecordMaker(2);
    store.holdSyncs = true;
    journal.tryAppend(maker.write(1024));
    await tick(20);
    expect(journal.counters).toMatchObject({ groupWrites: 1, syncs: 0 }); // its sync is held
    // Small records in separate turns: the group stays below half of groupBytesMax and waits.
    for (let i = 0; i < 5; i++) {
      journal.tryAppend(maker.write(1024));
      await tick(5);
    }
    expect(journal.counters.groupWrites).toBe(1);
    store.releaseSyncs();
    await journal.flush();
    expect(journal.counters).toMatchObject({ groupWrites: 2, syncs: 2 }); // the five in one write
    expect(journal.durableSeq).toBe(6);

    // A group past half of groupBytesMax is written while the sync is still in flight.
    store.holdSyncs = true;
    journal.tryAppend(maker.write(1024));
    await tick(20);
    expect(journal.counters.groupWrites).toBe(3);
    for (let i = 0; i < 4; i++) journal.tryAppend(maker.write(10 * KiB));
    await tick(20);
    expect(journal.counters).toMatchObject({ groupWrites: 4, syncs: 2 });
    store.releaseSyncs();
    await journal.flush();
    expect(journal.durableSeq).toBe(11);
    await journal.close();
  });

  test("counters count group writes, their record bytes and syncs, and time them by the clock", async () => {
    const store = new GatedStore();
    const clock = new ManualClock(startTimeUs);
    const journal = await Journal.open({ store, clock }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    expect(journal.counters).toEqual({ groupWrites: 0, groupWriteBytes: 0, writeInFlightUs: 0, syncs: 0, syncInFlightUs: 0 });
    const maker = new RecordMaker(2);
    store.holdWrites = true;
    store.holdSyncs = true;
    for (let i = 0; i < 3; i++) journal.tryAppend(maker.write(2048));
    await tick(20);
    clock.advanceUs(1500); // the write is held 1.5 ms
    store.releaseWrites();
    await tick(20);
    expect(journal.counters).toMatchObject({ groupWrites: 1, groupWriteBytes: 3 * journalRecordBytes(2048), writeInFlightUs: 1500, syncs: 0 });
    clock.advanceUs(4000); // then the sync 4 ms
    store.releaseSyncs();
    await journal.flush();
    expect(journal.counters).toEqual({
      groupWrites: 1,
      groupWriteBytes: 3 * journalRecordBytes(2048),
      writeInFlightUs: 1500,
      syncs: 1,
      syncInFlightUs: 4000,
    });
    await journal.append(maker.write(512));
    await journal.flush();
    expect(journal.counters).toMatchObject({ groupWrites: 2, groupWriteBytes: 3 * journalRecordBytes(2048) + journalRecordBytes(512), syncs: 2 });
    expect(journal.counters.groupWriteBytes).toBe(journal.endAddressBytes); // nothing skipped at the start of a segment
    await journal.close();
  });

  test("records roll over many small segments, never straddle one, and segments are created ahead", async () => {
    const store = new MemorySegmentStore();
    const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 32 * KiB };
    const { journal } = await openCollecting(store, options);
    const maker = new RecordMaker(3);
    const appended: AppendedRecord[] = [];
    const random = new SeededRandom(33);
    for (let i = 0; i < 400; i++) {
      const record = i % 13 === 0
        ? maker.marker(markerKinds[i % markerKinds.length], randomInt(random, 0, 600))
        : maker.write(512 * randomInt(random, 1, 32));
      const address = journal.tryAppend(record);
      appended.push(remember(record, address >= 0 ? address : await journal.append(record)));
      if (i % 5 === 0) await tick(2);
    }
    await journal.flush();
    const segmentIds = await store.list();
    const tailSegmentId = Math.floor((journal.endAddressBytes - 1) / (64 * KiB));
    expect(tailSegmentId).toBeGreaterThan(40);
    expect(segmentIds).toEqual([...Array(tailSegmentId + 2).keys()]); // the next one is ready
    for (const record of appended) {
      const firstSegment = Math.floor((record.payloadAddressBytes - journalRecordHeaderBytes) / (64 * KiB));
      const lastSegment = Math.floor((recordEndAddress(record) - 1) / (64 * KiB));
      expect(lastSegment).toBe(firstSegment);
      const readBack = new Uint8Array(record.payload.length);
      await journal.read(record.payloadAddressBytes, readBack);
      expect(bytesEqual(readBack, record.payload)).toBe(true);
    }
    // One write and one sync per segment a group touched.
    expect(store.stats.writes).toBe(store.stats.syncs);
    await journal.close();

    const reopened = await openCollecting(store, options);
    expectSameRecords(reopened.recovered, appended);
    expect(reopened.logLines).toEqual([]);
    await reopened.journal.close();
  });

  for (const sizes of [
    { segmentSizeBytes: 1024 * KiB, groupBytesMax: 256 * KiB, allAligned: true },
    // Groups larger than segments: more rollovers than the skip budget aligns.
    { segmentSizeBytes: 16 * KiB, groupBytesMax: 64 * KiB, allAligned: false },
  ]) {
    test(`group writes sit in aligned memory at their segment offset modulo 4 KiB (segments ${sizes.segmentSizeBytes / KiB} KiB, groups ${sizes.groupBytesMax / KiB} KiB)`, async () => {
      const alignedWrites: boolean[] = [];
      const store = new (class extends GatedStore {
        override write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void> {
          const headBytes = (4096 - (offsetBytes % 4096)) % 4096;
          // Only a write with whole blocks after its head has a middle to write directly.
          if (source.length >= headBytes + 4096) alignedWrites.push(isAligned(source.subarray(headBytes), 4096));
          return super.write(segmentId, offsetBytes, source);
        }
      })();
      const { journal } = await openCollecting(store, sizes);
      const maker = new RecordMaker(5);
      const appended: AppendedRecord[] = [];
      const random = new SeededRandom(55);
      for (let i = 0; i < 600; i++) {
        const record = i % 5 === 0
          ? maker.marker(markerKinds[i % markerKinds.length], randomInt(random, 0, 600))
          : maker.write(512 * randomInt(random, 1, 24));
        const address = journal.tryAppend(record);
        appended.push(remember(record, address >= 0 ? address : await journal.append(record)));
        if (i % 7 === 0) await tick(1);
      }
      await journal.flush();
      expect(alignedWrites.length).toBeGreaterThan(20);
      if (sizes.allAligned) expect(alignedWrites.every(Boolean)).toBe(true);
      else expect(alignedWrites.some(Boolean)).toBe(true);
      for (const record of appended) {
        const readBack = new Uint8Array(record.payload.length);
        await journal.read(record.payloadAddressBytes, readBack);
        expect(bytesEqual(readBack, record.payload)).toBe(true);
      }
      await journal.close();
      const reopened = await openCollecting(store.inner, sizes);
      expectSameRecords(reopened.recovered, appended);
      expect(reopened.logLines).toEqual([]);
      await reopened.journal.close();
    });
  }

  test("tryAppend returns -1 when both group buffers are full and append waits for space", async () => {
    const store = new GatedStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    const maker = new RecordMaker(4);
    // A group's buffer is free once its write reaches the store, so space runs out when the
    // store's writes stall (syncs stalling alone never blocks appends).
    store.holdWrites = true;
    const records = Array.from({ length: 8 }, () => maker.write(4 * KiB));
    // Three 4 KiB records fill a 16 KiB group; the fourth swaps the buffers (a commit starts).
    for (let i = 0; i < 6; i++) expect(journal.tryAppend(records[i])).toBeGreaterThanOrEqual(0);
    expect(journal.tryAppend(records[6])).toBe(-1);
    expect(journal.headSeq).toBe(6);
    let appendedAddress = -1;
    const waiting = journal.append(records[6]).then((address) => (appendedAddress = address));
    expect(journal.tryAppend(records[7])).toBe(-1); // queued appends go first
    await tick(20);
    expect(appendedAddress).toBe(-1);
    store.releaseWrites();
    await waiting;
    expect(appendedAddress).toBeGreaterThan(0);
    expect(journal.headSeq).toBe(7);
    expect(await journal.append(records[7])).toBeGreaterThan(appendedAddress);
    await journal.flush();
    expect(journal.durableSeq).toBe(8);
    await journal.close();
  });

  test("reads return records that are not durable yet from the group buffers", async () => {
    const store = new GatedStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    const maker = new RecordMaker(5);
    store.holdWrites = true;
    const appended: AppendedRecord[] = [];
    for (let i = 0; i < 6; i++) {
      const record = maker.write(4 * KiB);
      appended.push(remember(record, journal.tryAppend(record)));
    }
    await tick(5); // first group in flight (sync held), second group filling
    for (const record of appended) {
      const readBack = new Uint8Array(1024);
      await journal.read(record.payloadAddressBytes + 1024, readBack);
      expect(bytesEqual(readBack, record.payload.subarray(1024, 2048))).toBe(true);
    }
    await expect(journal.read(journal.endAddressBytes, new Uint8Array(512))).rejects.toThrow(RangeError);
    await expect(journal.read(64 * KiB - 512, new Uint8Array(1024))).rejects.toThrow(/not inside one segment/);
    store.releaseWrites();
    await journal.flush();
    for (const record of appended) {
      const readBack = new Uint8Array(record.payload.length);
      await journal.read(record.payloadAddressBytes, readBack);
      expect(bytesEqual(readBack, record.payload)).toBe(true);
    }
    await journal.close();
  });

  test("a payload checksum mismatch is refused and appends nothing", async () => {
    const checksum = await createChecksum();
    const store = new MemorySegmentStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    const maker = new RecordMaker(6);
    const first = maker.write(4096);
    await journal.append({ ...first, payloadChecksum: checksum.hash64(first.payload) });
    const endBefore = journal.endAddressBytes;
    const second = maker.write(4096);
    const wrongChecksum = checksum.hash64(second.payload) ^ 1n;
    expect(() => journal.tryAppend({ ...second, payloadChecksum: wrongChecksum })).toThrow(ChecksumMismatchError);
    await expect(journal.append({ ...second, payloadChecksum: wrongChecksum })).rejects.toThrow(/payload checksum/);
    expect(journal.headSeq).toBe(1);
    expect(journal.endAddressBytes).toBe(endBefore);
    await journal.flush();
    expect(journal.durableSeq).toBe(1);
    // The same seq with the right checksum goes in.
    await journal.append({ ...second, payloadChecksum: checksum.hash64(second.payload) });
    await journal.close();
    const reopened = await openCollecting(store, { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB });
    expect(reopened.recovered.map((record) => record.seq)).toEqual([1, 2]);
    await reopened.journal.close();
  });

  test("records that break the seq rule or a limit are refused and append nothing", async () => {
    const journal = await Journal.open({ store: new MemorySegmentStore() }, {
      segmentSizeBytes: 64 * KiB,
      groupBytesMax: 16 * KiB,
    });
    const maker = new RecordMaker(7);
    const write = maker.write(4096);
    expect(() => journal.tryAppend({ ...write, seq: 2 })).toThrow(/seq 1 comes next/);
    expect(() => journal.tryAppend({ ...write, payload: new Uint8Array(1000) })).toThrow(RangeError);
    expect(() => journal.tryAppend({ ...write, offsetBytes: 100 })).toThrow(RangeError);
    expect(() => journal.tryAppend({ ...write, payload: new Uint8Array(16 * KiB) })).toThrow(/exceed/);
    expect(journal.dataPayloadBytesMax).toBe(31 * 512); // 16 KiB less a header and a pad, in sectors
    expect(() => journal.tryAppend({ ...write, payload: new Uint8Array(32 * 512) })).toThrow(/exceed/);
    expect(() => journal.tryAppend({ ...write, kind: 99 })).toThrow(TypeError);
    expect(() => journal.tryAppend({ ...write, timeUs: -5 })).toThrow(RangeError);
    expect(journal.headSeq).toBe(-1);
    expect(journal.endAddressBytes).toBe(0);
    expect(journal.tryAppend(maker.baseline(0, 4096))).toBeGreaterThan(0); // baselines first ...
    expect(journal.tryAppend(write)).toBeGreaterThan(0);
    expect(() => journal.tryAppend(maker.baseline(4096, 4096))).toThrow(/baseline record cannot follow seq 1/);
    await journal.close();
  });

  test("a failed sync fails the journal: durability does not advance and every append rejects", async () => {
    const store = new MemorySegmentStore();
    const logLines: string[] = [];
    const journal = await Journal.open({ store, log: (line) => logLines.push(line) }, {
      segmentSizeBytes: 64 * KiB,
      groupBytesMax: 16 * KiB,
    });
    const maker = new RecordMaker(8);
    await journal.append(maker.write(4096));
    await journal.flush();
    expect(journal.durableSeq).toBe(1);
    const durableAddressBytes = journal.durableAddressBytes;
    const reports: number[] = [];
    journal.onDurable((seq) => reports.push(seq));

    store.faults.failNextSync = true;
    await journal.append(maker.write(4096));
    const flushed = journal.flush();
    await expect(flushed).rejects.toThrow(JournalFailedError);
    const failure = await flushed.catch((error: unknown) => error);
    expect((failure as JournalFailedError).cause).toBeInstanceOf(Error);
    expect(((failure as JournalFailedError).cause as Error).message).toMatch(/Injected sync failure/);
    expect(journal.failure).toBe(failure);
    expect(journal.durableSeq).toBe(1);
    expect(journal.durableAddressBytes).toBe(durableAddressBytes);
    expect(reports).toEqual([]);
    expect(() => journal.tryAppend(maker.write(512))).toThrow(JournalFailedError);
    await expect(journal.append(maker.write(512))).rejects.toThrow(JournalFailedError);
    await expect(journal.flush()).rejects.toThrow(JournalFailedError);
    await expect(journal.close()).rejects.toThrow(JournalFailedError);
    expect(logLines.some((line) => line.includes("Injected sync failure"))).toBe(true);
  });

  test("a failed write fails the journal and rejects the waiting appends", async () => {
    const store = new MemorySegmentStore();
    const journal = await Journal.open({ store }, { segmentSizeBytes: 64 * KiB, groupBytesMax: 8 * KiB });
    const maker = new RecordMaker(9);
    store.faults.failNextWrite = true;
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => journal.append(maker.write(4096))));
    const rejected = results.filter((result) => result.status === "rejected");
    expect(rejected.length).toBeGreaterThan(0);
    for (const result of rejected) expect((result as PromiseRejectedResult).reason).toBeInstanceOf(JournalFailedError);
    await expect(journal.flush()).rejects.toThrow(JournalFailedError);
    expect(journal.durableSeq).toBe(-1);
    expect(journal.durableAddressBytes).toBe(0);
  });

  test("recovery cuts a torn tail, zeroes it and logs one line", async () => {
    const store = new MemorySegmentStore();
    const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB };
    const { journal } = await openCollecting(store, options);
    const maker = new RecordMaker(10);
    for (let i = 0; i < 5; i++) await journal.append(maker.write(4096));
    await journal.close();
    const endAddressBytes = journal.endAddressBytes;
    // Garbage after the end that no durable record vouches for: a torn group commit.
    const garbage = new Uint8Array(3000).fill(0xa5);
    await store.write(0, endAddressBytes + 16, garbage);
    await store.write(1, 100, garbage);
    await store.sync(0);
    await store.sync(1);

    const reopened = await openCollecting(store, options);
    expect(reopened.recovered.map((record) => record.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(reopened.logLines).toHaveLength(1);
    expect(reopened.logLines[0]).toMatch(
      new RegExp(`^Journal recovery cut a torn tail at segment 0 offset ${endAddressBytes} after seq 5 `),
    );
    const tail = new Uint8Array(64 * KiB - endAddressBytes);
    store.readSync(0, endAddressBytes, tail);
    expect(tail.every((byte) => byte === 0)).toBe(true);
    const next = new Uint8Array(64 * KiB);
    store.readSync(1, 0, next);
    expect(next.every((byte) => byte === 0)).toBe(true);
    expect(reopened.journal.endAddressBytes).toBe(endAddressBytes);
    await reopened.journal.close();
  });

  test("a group commit that spans two segments, losing the first write and keeping the second, is cut", async () => {
    const store = new GatedStore();
    const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 128 * KiB };
    const { journal } = await openCollecting(store, options);
    const maker = new RecordMaker(14);
    const durable: AppendedRecord[] = [];
    for (let i = 0; i < 10; i++) {
      const record = maker.write(4096);
      durable.push(remember(record, await journal.append(record)));
    }
    await journal.flush();
    store.holdSyncs = true;
    for (let i = 0; i < 8; i++) expect(journal.tryAppend(maker.write(8192))).toBeGreaterThan(0); // one group
    await tick(10);
    expect([...store.unsyncedSegmentIds]).toEqual([0, 1]);
    // Fates in segment order: 0 = lost (segment 0's write), 1 = kept (segment 1's write).
    const fates = [0, 1];
    const crashed = store.crash({ nextUint32: () => fates.shift()! });
    const reopened = await openCollecting(crashed, options);
    expectSameRecords(reopened.recovered, durable);
    expect(reopened.logLines).toHaveLength(1);
    expect(reopened.logLines[0]).toMatch(/^Journal recovery cut a torn tail at segment 0 offset 41520 after seq 10 /);
    const segment1 = new Uint8Array(64 * KiB);
    crashed.inner.readSync(1, 0, segment1);
    expect(segment1.every((byte) => byte === 0)).toBe(true);
    await reopened.journal.close();
  });

  test("corruption of a durable record that later records vouch for throws JournalCorruptionError", async () => {
    for (const where of ["payload", "header"] as const) {
      const store = new MemorySegmentStore();
      const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB };
      const { journal } = await openCollecting(store, options);
      const maker = new RecordMaker(11);
      const appended: AppendedRecord[] = [];
      for (let batch = 0; batch < 3; batch++) {
        for (let i = 0; i < 10; i++) {
          const record = maker.write(4096);
          appended.push(remember(record, await journal.append(record)));
        }
        await journal.flush();
      }
      await journal.close();
      const victim = appended[3]; // seq 4
      const recordAddressBytes = victim.payloadAddressBytes - journalRecordHeaderBytes;
      const segmentId = Math.floor(recordAddressBytes / (64 * KiB));
      const offsetBytes = recordAddressBytes - segmentId * 64 * KiB;
      store.corrupt(segmentId, where === "payload" ? offsetBytes + journalRecordHeaderBytes + 777 : offsetBytes + 9);

      const opened = openCollecting(store, options);
      await expect(opened).rejects.toThrow(JournalCorruptionError);
      const error = (await opened.catch((caught: unknown) => caught)) as JournalCorruptionError;
      expect(error.segmentId).toBe(segmentId);
      expect(error.offsetBytes).toBe(offsetBytes);
      expect(error.lastGoodSeq).toBe(3);
      expect(error.message).toContain(`segment ${segmentId} offset ${offsetBytes} after seq 3`);
      // Nothing was cut: the records after the corruption are still there.
      const probe = new Uint8Array(appended[29].payload.length);
      store.readSync(
        Math.floor(appended[29].payloadAddressBytes / (64 * KiB)),
        appended[29].payloadAddressBytes % (64 * KiB),
        probe,
      );
      expect(bytesEqual(probe, appended[29].payload)).toBe(true);
    }
  });

  test("corruption inside the newest durable group cannot be told from a torn tail: it is cut and logged", async () => {
    const store = new MemorySegmentStore();
    const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 64 * KiB };
    const { journal } = await openCollecting(store, options);
    const maker = new RecordMaker(12);
    for (let i = 0; i < 4; i++) journal.tryAppend(maker.write(4096)); // one group
    await journal.close();
    store.corrupt(0, journalRecordBytes(4096) * 2 + journalRecordHeaderBytes + 5); // seq 3
    const reopened = await openCollecting(store, options);
    expect(reopened.recovered.map((record) => record.seq)).toEqual([1, 2]);
    expect(reopened.logLines[0]).toMatch(/cut a torn tail at segment 0 offset 8304 after seq 2 \(found a payload checksum mismatch/);
    await reopened.journal.close();
  });

  test("recovery from a given address reads nothing before it", async () => {
    const inner = new MemorySegmentStore();
    const options = { segmentSizeBytes: 64 * KiB, groupBytesMax: 16 * KiB };
    const { journal } = await openCollecting(inner, options);
    const maker = new RecordMaker(13);
    const appended: AppendedRecord[] = [];
    for (let i = 0; i < 60; i++) {
      const record = maker.write(4096);
      appended.push(remember(record, await journal.append(record)));
      if (i % 4 === 0) await journal.flush();
    }
    await journal.close();
    // Damage an early record: a full scan would refuse the journal, a scan from later does not.
    inner.corrupt(0, appended[2].payloadAddressBytes + 10);
    await expect(openCollecting(inner, options)).rejects.toThrow(JournalCorruptionError);

    const resumeFrom = appended[39];
    const recoverFromAddressBytes = resumeFrom.payloadAddressBytes - journalRecordHeaderBytes;
    const store = new GatedStore(inner);
    const reopened = await openCollecting(store, { ...options, recoverFromAddressBytes, recoverFromSeq: 39 });
    expectSameRecords(reopened.recovered, appended.slice(39));
    expect(reopened.journal.headSeq).toBe(60);
    for (const read of store.reads) {
      expect(read.segmentId * 64 * KiB + read.offsetBytes).toBeGreaterThanOrEqual(recoverFromAddressBytes);
    }
    await reopened.journal.close();

    // A wrong seq hint does not make recovery cut durable records: it refuses instead.
    await expect(openCollecting(inner, { ...options, recoverFromAddressBytes, recoverFromSeq: 37 })).rejects.toThrow(
      JournalCorruptionError,
    );
    await expect(openCollecting(inner, { ...options, recoverFromAddressBytes: recoverFromAddressBytes + 4 })).rejects
      .toThrow(RangeError);
  });

  test("a crash at any moment loses no durable record, and a second crash after recovery neither", async () => {
    type Op =
      | { type: "write"; sectors: number }
      | { type: "marker"; kind: JournalRecordKind; lengthBytes: number }
      | { type: "burst"; count: number; sectors: number }
      | { type: "flush" }
      | { type: "yield"; ticks: number }
      | { type: "stallSyncs" };
    const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
      { weight: 12, arbitrary: fc.record({ type: fc.constant("write" as const), sectors: fc.integer({ min: 1, max: 128 }) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          type: fc.constant("marker" as const),
          kind: fc.constantFrom(...markerKinds),
          lengthBytes: fc.integer({ min: 0, max: 300 }),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          type: fc.constant("burst" as const),
          count: fc.integer({ min: 2, max: 8 }),
          sectors: fc.integer({ min: 1, max: 128 }),
        }),
      },
      { weight: 2, arbitrary: fc.constant({ type: "flush" as const }) },
      { weight: 4, arbitrary: fc.record({ type: fc.constant("yield" as const), ticks: fc.integer({ min: 1, max: 12 }) }) },
      // A slow disk: syncs hang from here to the crash, so written groups stay unsynced.
      { weight: 1, arbitrary: fc.constant({ type: "stallSyncs" as const }) },
    );
    const scenario = fc.record({
      // Segments barely larger than the largest record and groups larger than segments make
      // group commits that span two or three segments, the case where a crash can keep a later
      // segment's write and lose an earlier one's.
      segmentSizeBytes: fc.constantFrom(72 * KiB, 80 * KiB, 192 * KiB),
      groupBytesMax: fc.constantFrom(72 * KiB, 128 * KiB, 200 * KiB),
      baselineCount: fc.integer({ min: 0, max: 3 }),
      firstOps: fc.array(opArbitrary, { minLength: 1, maxLength: 30 }),
      secondOps: fc.array(opArbitrary, { minLength: 0, maxLength: 20 }),
      dataSeed: fc.integer({ min: 0, max: 2 ** 31 }),
      crashes: fc.tuple(
        fc.record({ ticks: fc.integer({ min: 0, max: 10 }), seed: fc.integer({ min: 0, max: 2 ** 31 }) }),
        fc.record({ ticks: fc.integer({ min: 0, max: 10 }), seed: fc.integer({ min: 0, max: 2 ** 31 }) }),
      ),
    });
    /** How often the interesting cases came up, so a weakened generator cannot pass quietly. */
    const coverage = { crashes: 0, unsyncedAtCrash: 0, unsyncedInTwoSegments: 0, cuts: 0, undurableKept: 0, appendedLost: 0 };

    /**
     * Runs ops against an open journal, waits `crash.ticks` microtasks and crashes its store in
     * that same step (often mid-commit); returns the records appended, the durable address
     * heard before the crash, and the store that survived.
     */
    async function runAndCrash(
      journal: Journal,
      store: GatedStore,
      maker: RecordMaker,
      ops: Op[],
      crash: { ticks: number; seed: number },
    ) {
      const appended: AppendedRecord[] = [];
      let durableAddressBytes = journal.durableAddressBytes;
      journal.onDurable((_seq, addressBytes) => {
        expect(addressBytes).toBeGreaterThan(durableAddressBytes);
        durableAddressBytes = addressBytes;
      });
      // `append` yields to the commit loop; a burst of `tryAppend` calls does not (big groups).
      // Once syncs stall, nothing may wait for space or durability: full buffers drop the record.
      const append = async (record: JournalRecordInput) => {
        if (store.holdSyncs) return void tryAppend(record);
        appended.push(remember(record, await journal.append(record)));
      };
      /** Appends without yielding if there is room; returns false when the record must wait. */
      const tryAppend = (record: JournalRecordInput): boolean => {
        const address = journal.tryAppend(record);
        if (address < 0) {
          maker.nextSeq--;
          return false;
        }
        appended.push(remember(record, address));
        return true;
      };
      for (const op of ops) {
        if (op.type === "write") await append(maker.write(op.sectors * 512));
        if (op.type === "marker") await append(maker.marker(op.kind, op.lengthBytes));
        if (op.type === "burst") {
          for (let i = 0; i < op.count; i++) {
            if (tryAppend(maker.write(op.sectors * 512))) continue;
            if (!store.holdSyncs) await append(maker.write(op.sectors * 512));
          }
        }
        if (op.type === "flush" && !store.holdSyncs) await journal.flush();
        if (op.type === "yield") await tick(op.ticks);
        if (op.type === "stallSyncs") store.holdSyncs = true;
      }
      await tick(crash.ticks);
      coverage.crashes++;
      if (store.unsyncedSegmentIds.size > 0) coverage.unsyncedAtCrash++;
      if (store.unsyncedSegmentIds.size > 1) coverage.unsyncedInTwoSegments++;
      const survivor = store.crash(new SeededRandom(crash.seed));
      return { appended, durableAddressBytes, survivor };
    }

    /** Copies every segment of a store (after a crash, before recovery touches it). */
    async function snapshot(store: GatedStore): Promise<Map<number, Uint8Array>> {
      const copies = new Map<number, Uint8Array>();
      for (const segmentId of await store.list()) {
        const bytes = new Uint8Array(await store.sizeOf(segmentId));
        store.inner.readSync(segmentId, 0, bytes);
        copies.set(segmentId, bytes);
      }
      return copies;
    }

    function hasNonzeroAfter(copies: Map<number, Uint8Array>, addressBytes: number, segmentSizeBytes: number): boolean {
      for (const [segmentId, bytes] of copies) {
        const fromBytes = Math.max(0, addressBytes - segmentId * segmentSizeBytes);
        for (let i = fromBytes; i < bytes.length; i++) if (bytes[i] !== 0) return true;
      }
      return false;
    }

    /** Reopens a crashed store and checks recovery against what was appended and heard durable. */
    async function recoverAndCheck(
      store: GatedStore,
      options: { segmentSizeBytes: number; groupBytesMax: number },
      expected: AppendedRecord[],
      durableAddressBytes: number,
    ) {
      const before = await snapshot(store);
      const { recovered, logLines, journal } = await openCollecting(store, options);
      // A prefix of what was appended, intact and in order ...
      expect(recovered.length).toBeLessThanOrEqual(expected.length);
      for (let i = 0; i < recovered.length; i++) expectSameRecord(recovered[i], expected[i], i);
      // ... holding every record reported durable.
      const durableCount = expected.filter((record) => recordEndAddress(record) <= durableAddressBytes).length;
      expect(recovered.length).toBeGreaterThanOrEqual(durableCount);
      if (recovered.length > durableCount) coverage.undurableKept++;
      if (recovered.length < expected.length) coverage.appendedLost++;
      const endAddressBytes = recovered.length === 0
        ? journal.endAddressBytes
        : recordEndAddress(recovered[recovered.length - 1]);
      expect(journal.endAddressBytes).toBe(endAddressBytes);
      expect(journal.durableAddressBytes).toBe(endAddressBytes);
      expect(journal.headSeq).toBe(recovered.length === 0 ? -1 : recovered[recovered.length - 1].seq);
      // The cut is logged exactly when bytes were left after the end, and they are zero now.
      const { segmentSizeBytes } = options;
      if (hasNonzeroAfter(before, endAddressBytes, segmentSizeBytes)) {
        coverage.cuts++;
        expect(logLines).toHaveLength(1);
        const match = /^Journal recovery cut a torn tail at segment (\d+) offset (\d+) /.exec(logLines[0]);
        expect(match, logLines[0]).not.toBeNull();
        expect(Number(match![1]) * segmentSizeBytes + Number(match![2])).toBe(endAddressBytes);
      } else {
        expect(logLines).toEqual([]);
      }
      expect(hasNonzeroAfter(await snapshot(store), endAddressBytes, segmentSizeBytes)).toBe(false);
      return { journal, recovered };
    }

    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const options = { segmentSizeBytes: s.segmentSizeBytes, groupBytesMax: s.groupBytesMax };
        const store = new GatedStore();
        const first = await Journal.open({ store }, options);
        const maker = new RecordMaker(s.dataSeed);
        const baselines: AppendedRecord[] = [];
        for (let i = 0; i < s.baselineCount; i++) {
          const record = maker.baseline(i * 8 * KiB, 8 * KiB);
          baselines.push(remember(record, await first.append(record)));
        }
        const firstRun = await runAndCrash(first, store, maker, s.firstOps, s.crashes[0]);
        await tick(30); // let the dead journal notice its store is gone
        const afterFirst = await recoverAndCheck(
          firstRun.survivor,
          options,
          [...baselines, ...firstRun.appended],
          firstRun.durableAddressBytes,
        );

        // Append on top of the recovered journal, crash again, recover again.
        const lastSeq = afterFirst.journal.headSeq;
        maker.nextSeq = lastSeq < 0 ? 1 : lastSeq + 1;
        const secondRun = await runAndCrash(afterFirst.journal, firstRun.survivor, maker, s.secondOps, s.crashes[1]);
        await tick(30);
        const afterSecond = await recoverAndCheck(
          secondRun.survivor,
          options,
          [...afterFirst.recovered, ...secondRun.appended],
          secondRun.durableAddressBytes,
        );
        await afterSecond.journal.close();
      }),
      { numRuns: 200, seed: 20261122, endOnFailure: true },
    );
    const seen = `coverage ${JSON.stringify(coverage)}`;
    expect(coverage.crashes, seen).toBe(400);
    expect(coverage.unsyncedAtCrash, seen).toBeGreaterThan(100);
    expect(coverage.unsyncedInTwoSegments, seen).toBeGreaterThan(30);
    expect(coverage.cuts, seen).toBeGreaterThan(50);
    expect(coverage.undurableKept, seen).toBeGreaterThan(50);
    expect(coverage.appendedLost, seen).toBeGreaterThan(100);
  });
});
