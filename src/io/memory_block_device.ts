/**
 * An in-memory {@link BlockDevice} that can crash, in the style of
 * `memory_segment_store.ts` (FoundationDB's simulated file): every write since the last
 * `flush()` is pending; `crash()` decides for each pending write, from a seeded
 * {@link Random}, whether it was lost, kept, or torn, and returns a new device holding only
 * what survived. A write with `fua` is durable when it resolves, so a crash always keeps it.
 *
 * @example
 * ```ts
 * import { MemoryBlockDevice } from "./memory_block_device.ts";
 * import { SeededRandom } from "./random.ts";
 *
 * const device = new MemoryBlockDevice(1024 * 1024);
 * await device.write(0, new Uint8Array(4096).fill(7));
 * const afterCrash = device.crash(new SeededRandom(1)); // the write may be gone
 * ```
 */
import { assert } from "../core/assert.ts";
import {
  assertBlockRange,
  type BlockDevice,
  type BlockDeviceCapabilities,
  ReadOnlyDeviceError,
  SECTOR_BYTES,
  type WriteOptions,
} from "./block_device.ts";
import { type Random, randomInt } from "./random.ts";

/** Faults a test can arm; each fires once then disarms. */
export interface MemoryBlockDeviceFaults {
  /** The next `read` rejects (and leaves the target untouched). */
  failNextRead?: boolean;
  /** The next `write` rejects (and changes nothing). */
  failNextWrite?: boolean;
  /** The next `flush` rejects (and makes nothing durable). */
  failNextFlush?: boolean;
}

/** Options of the {@link MemoryBlockDevice} constructor. */
export interface MemoryBlockDeviceOptions {
  /** Writes reject with {@link ReadOnlyDeviceError} (an image, a snapshot). */
  readonly readOnly?: boolean;
  /** Initial contents (copied; durable); its length must equal `sizeBytes`. */
  readonly contents?: Uint8Array;
}

interface PendingWrite {
  readonly offsetBytes: number;
  readonly bytes: Uint8Array;
  /** Written with force unit access: durable when it resolved, so a crash keeps it. */
  readonly fua: boolean;
}

/** How a crash treats one pending write. */
export const CrashFate = {
  lost: 0,
  kept: 1,
  /** A prefix survives, cut at a sector boundary (a device that writes whole sectors). */
  tornAtSector: 2,
  /** A prefix survives, cut at any byte (a device without atomic sectors). */
  tornAtByte: 3,
} as const;

/** The in-memory block device; see the module doc. */
export class MemoryBlockDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly capabilities: BlockDeviceCapabilities;
  /** Faults armed by a test. */
  readonly faults: MemoryBlockDeviceFaults = {};
  /** Counters, for tests that check how the device was used. */
  readonly stats = { reads: 0, writes: 0, flushes: 0, bytesRead: 0, bytesWritten: 0 };
  /** What a reader sees now: durable bytes with every pending write applied. */
  #current: Uint8Array;
  /** What survives a crash for sure. */
  #durable: Uint8Array;
  /** Writes since the last flush, in order (fua writes included, marked). */
  #pending: PendingWrite[] = [];
  #closed = false;

  /**
   * @throws {RangeError} when `sizeBytes` is not a positive multiple of {@link SECTOR_BYTES}
   *   or `contents` has another length.
   */
  constructor(sizeBytes: number, options: MemoryBlockDeviceOptions = {}) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR_BYTES !== 0) {
      throw new RangeError(
        `Cannot create a device of ${sizeBytes} bytes: not a positive multiple of ${SECTOR_BYTES}`,
      );
    }
    if (options.contents !== undefined && options.contents.length !== sizeBytes) {
      throw new RangeError(
        `Cannot create a device of ${sizeBytes} bytes from ${options.contents.length} bytes of contents`,
      );
    }
    this.sizeBytes = sizeBytes;
    const readOnly = options.readOnly ?? false;
    this.capabilities = { writable: !readOnly, flush: !readOnly, fua: !readOnly };
    this.#current = options.contents?.slice() ?? new Uint8Array(sizeBytes);
    this.#durable = this.#current.slice();
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertBlockRange(this.sizeBytes, offsetBytes, target.length);
    if (this.faults.failNextRead) {
      this.faults.failNextRead = false;
      throw new Error(`Injected read failure at offset ${offsetBytes}`);
    }
    target.set(this.#current.subarray(offsetBytes, offsetBytes + target.length));
    this.stats.reads++;
    this.stats.bytesRead += target.length;
  }

  async write(offsetBytes: number, source: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.#checkOpen();
    if (!this.capabilities.writable) throw new ReadOnlyDeviceError();
    assertBlockRange(this.sizeBytes, offsetBytes, source.length);
    if (this.faults.failNextWrite) {
      this.faults.failNextWrite = false;
      throw new Error(`Injected write failure at offset ${offsetBytes}`);
    }
    this.#current.set(source, offsetBytes);
    this.#pending.push({ offsetBytes, bytes: source.slice(), fua: options.fua ?? false });
    this.stats.writes++;
    this.stats.bytesWritten += source.length;
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    if (this.faults.failNextFlush) {
      this.faults.failNextFlush = false;
      throw new Error("Injected flush failure");
    }
    for (const write of this.#pending) this.#durable.set(write.bytes, write.offsetBytes);
    this.#pending = [];
    this.stats.flushes++;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /**
   * Synchronous read for callers that know the device is in memory (the oracle, tests).
   *
   * @throws {RangeError} like {@link read}.
   */
  readSync(offsetBytes: number, target: Uint8Array): void {
    assertBlockRange(this.sizeBytes, offsetBytes, target.length);
    target.set(this.#current.subarray(offsetBytes, offsetBytes + target.length));
  }

  /** A copy of everything a reader sees now, for tests that compare whole devices. */
  bytes(): Uint8Array {
    return this.#current.slice();
  }

  /** Bytes of writes since the last flush (what a crash may lose; fua writes excluded). */
  pendingBytes(): number {
    let total = 0;
    for (const write of this.#pending) if (!write.fua) total += write.bytes.length;
    return total;
  }

  /**
   * Simulates power loss: returns a new device with the durable state plus, for each pending
   * write in order, a {@link CrashFate}: nothing (lost), all of it (kept), or a prefix cut at
   * a random sector boundary or a random byte (torn). Writes made with `fua` are always
   * kept. Applying the survivors in write order keeps a newer write over an older one.
   * This device is closed afterwards, like a process that died.
   */
  crash(random: Random): MemoryBlockDevice {
    const bytes = this.#durable.slice();
    for (const write of this.#pending) {
      const keptBytes = write.fua ? write.bytes.length : survivingBytes(random, write.bytes.length);
      bytes.set(write.bytes.subarray(0, keptBytes), write.offsetBytes);
    }
    this.#closed = true;
    return new MemoryBlockDevice(this.sizeBytes, {
      readOnly: !this.capabilities.writable,
      contents: bytes,
    });
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use the block device: it is closed");
  }
}

/** How many leading bytes of a pending write of `lengthBytes` survive a crash. */
function survivingBytes(random: Random, lengthBytes: number): number {
  const fate = random.nextUint32() % 4;
  switch (fate) {
    case CrashFate.lost:
      return 0;
    case CrashFate.kept:
      return lengthBytes;
    case CrashFate.tornAtSector:
      return randomInt(random, 0, lengthBytes / SECTOR_BYTES) * SECTOR_BYTES;
    case CrashFate.tornAtByte:
      return randomInt(random, 0, lengthBytes);
  }
  assert(false, `Unknown crash fate ${fate}`);
}
