/**
 * An in-memory {@link SegmentStore} that can crash (FoundationDB's simulated file): every
 * write since the segment's last sync is pending; `crash()` decides for each pending write,
 * from a seeded {@link Random}, whether it was lost, kept, or torn at a random byte, and
 * returns a new store holding only what survived.
 */
import { assert } from "../core/assert.ts";
import { type Random, randomInt } from "./random.ts";
import { assertSegmentRange, SegmentNotFoundError, type SegmentStore } from "./segment_store.ts";

interface PendingWrite {
  readonly offsetBytes: number;
  readonly bytes: Uint8Array;
}

interface MemorySegment {
  /** What a reader sees now: durable bytes with every pending write applied. */
  readonly current: Uint8Array;
  /** What survives a crash for sure. */
  readonly durable: Uint8Array;
  pending: PendingWrite[];
}

/** Faults a test can arm; each fires once then disarms. */
export interface MemorySegmentStoreFaults {
  /** The next `sync` rejects (and makes nothing durable). */
  failNextSync?: boolean;
  /** The next `write` rejects (and changes nothing). */
  failNextWrite?: boolean;
}

/** The in-memory segment store; see the module doc. */
export class MemorySegmentStore implements SegmentStore {
  #segments = new Map<number, MemorySegment>();
  #manifest: Uint8Array | null = null;
  #closed = false;
  /** Faults armed by a test. */
  readonly faults: MemorySegmentStoreFaults = {};
  /** Counters, for tests that check how often the store was asked to sync. */
  readonly stats = { writes: 0, syncs: 0, bytesWritten: 0, reads: 0, bytesRead: 0 };

  async list(): Promise<number[]> {
    this.#checkOpen();
    return Promise.resolve([...this.#segments.keys()].sort((a, b) => a - b));
  }

  async create(segmentId: number, sizeBytes: number): Promise<void> {
    this.#checkOpen();
    assert(Number.isSafeInteger(segmentId) && segmentId >= 0, `Bad segment id ${segmentId}`);
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes > 0, `Bad segment size ${sizeBytes}`);
    if (this.#segments.has(segmentId)) {
      return Promise.reject(new SegmentNotFoundError(`Cannot create segment ${segmentId}: it exists`));
    }
    this.#segments.set(segmentId, {
      current: new Uint8Array(sizeBytes),
      durable: new Uint8Array(sizeBytes),
      pending: [],
    });
    return Promise.resolve();
  }

  async sizeOf(segmentId: number): Promise<number> {
    return Promise.resolve(this.#segment(segmentId).current.length);
  }

  async write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void> {
    const segment = this.#segment(segmentId);
    assertSegmentRange(segmentId, segment.current.length, offsetBytes, source.length);
    if (this.faults.failNextWrite) {
      this.faults.failNextWrite = false;
      return Promise.reject(new Error(`Injected write failure on segment ${segmentId}`));
    }
    segment.current.set(source, offsetBytes);
    segment.pending.push({ offsetBytes, bytes: source.slice() });
    this.stats.writes++;
    this.stats.bytesWritten += source.length;
  }

  async read(segmentId: number, offsetBytes: number, target: Uint8Array): Promise<void> {
    const segment = this.#segment(segmentId);
    assertSegmentRange(segmentId, segment.current.length, offsetBytes, target.length);
    target.set(segment.current.subarray(offsetBytes, offsetBytes + target.length));
    this.stats.reads++;
    this.stats.bytesRead += target.length;
  }

  /** Synchronous read for callers that know the store is in memory (the oracle, tests). */
  readSync(segmentId: number, offsetBytes: number, target: Uint8Array): void {
    const segment = this.#segment(segmentId);
    assertSegmentRange(segmentId, segment.current.length, offsetBytes, target.length);
    target.set(segment.current.subarray(offsetBytes, offsetBytes + target.length));
  }

  async sync(segmentId: number): Promise<void> {
    const segment = this.#segment(segmentId);
    if (this.faults.failNextSync) {
      this.faults.failNextSync = false;
      return Promise.reject(new Error(`Injected sync failure on segment ${segmentId}`));
    }
    for (const write of segment.pending) segment.durable.set(write.bytes, write.offsetBytes);
    segment.pending = [];
    this.stats.syncs++;
  }

  async remove(segmentId: number): Promise<void> {
    this.#segment(segmentId);
    this.#segments.delete(segmentId);
    return Promise.resolve();
  }

  async readManifest(): Promise<Uint8Array | null> {
    this.#checkOpen();
    return Promise.resolve(this.#manifest === null ? null : this.#manifest.slice());
  }

  async writeManifest(bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    this.#manifest = bytes.slice();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** The unsynced writes, in order (what a crash may lose, keep or tear). */
  pendingWrites(): { segmentId: number; offsetBytes: number; lengthBytes: number }[] {
    const writes: { segmentId: number; offsetBytes: number; lengthBytes: number }[] = [];
    for (const [segmentId, segment] of this.#segments) {
      for (const write of segment.pending) writes.push({ segmentId, offsetBytes: write.offsetBytes, lengthBytes: write.bytes.length });
    }
    return writes;
  }

  /** Bytes of unsynced writes across all segments (what a crash may lose). */
  pendingBytes(): number {
    let total = 0;
    for (const segment of this.#segments.values()) {
      for (const write of segment.pending) total += write.bytes.length;
    }
    return total;
  }

  /**
   * Simulates power loss: returns a new store with the durable state plus, for each pending
   * write in order, nothing (lost), all of it (kept) or a prefix cut at a random byte (torn).
   * This store is closed afterwards, like a process that died.
   */
  crash(random: Random): MemorySegmentStore {
    const survivor = new MemorySegmentStore();
    for (const [segmentId, segment] of this.#segments) {
      const bytes = segment.durable.slice();
      for (const write of segment.pending) {
        const fate = random.nextUint32() % 3;
        if (fate === 1) bytes.set(write.bytes, write.offsetBytes);
        if (fate === 2) {
          const keptBytes = randomInt(random, 0, write.bytes.length);
          bytes.set(write.bytes.subarray(0, keptBytes), write.offsetBytes);
        }
      }
      survivor.#segments.set(segmentId, { current: bytes, durable: bytes.slice(), pending: [] });
    }
    survivor.#manifest = this.#manifest === null ? null : this.#manifest.slice();
    this.#closed = true;
    return survivor;
  }

  /** Flips one byte of durable and current state: bit rot, for corruption tests. */
  corrupt(segmentId: number, offsetBytes: number): void {
    const segment = this.#segment(segmentId);
    segment.current[offsetBytes] ^= 0xff;
    segment.durable[offsetBytes] ^= 0xff;
  }

  #segment(segmentId: number): MemorySegment {
    this.#checkOpen();
    const segment = this.#segments.get(segmentId);
    if (segment === undefined) {
      throw new SegmentNotFoundError(`Segment ${segmentId} does not exist`);
    }
    return segment;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use the segment store: it is closed");
  }
}
