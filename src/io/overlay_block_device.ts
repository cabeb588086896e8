/**
 * A copy-on-write overlay over a read-only `next` {@link BlockDevice}, in the shape of
 * nbdkit's cow filter (`filters/cow/blk.c`): writes go to a throw-away scratch store, reads
 * take each block from the overlay when it was written and from `next` otherwise. It backs
 * the writable scratch images of SPEC.md (`VOL@POINT+rw`): a recovery point can be mounted,
 * fsck'ed or booted without touching the journal. Nothing written here ever reaches `next`.
 *
 * How it works:
 * - The device is cut into blocks of `blockBytes` (default 4 KiB, the NBD preferred block
 *   size, so 4 KiB writes need no read-modify-write). A block is in one of the states of
 *   {@link overlayBlockStates}: `base` (never written: read from `next`) or `overlay` (its
 *   bytes live in a scratch slot). A partial write to a `base` block reads the whole block from
 *   `next` first and merges the new bytes into it (read-modify-write).
 * - Block states live in typed arrays, not objects: an open-addressing hash table (linear
 *   probing, `Float64Array` of block numbers and `Int32Array` of slot numbers), sized at
 *   construction for the most blocks the overlay may hold. Its memory follows the overlay
 *   limit, not the volume size (a 1 PiB volume costs the same as a 1 GiB one). Blocks never
 *   leave the overlay (it is thrown away whole on close), so the table needs no deletion.
 * - Scratch slots live in memory, in arenas of `overlayLimits.arenaBytes` allocated lazily as
 *   writes need them, up to `overlayBytesMax` (default {@link overlayLimits.overlayBytesMaxDefault},
 *   256 MiB). A write that would need more fails with {@link OverlayFullError} before
 *   anything changes (the NBD server answers ENOSPC); the blocks already in the overlay stay
 *   writable. Concurrent writes to one new block each reserve it until one publishes it, so
 *   near the limit a write first waits for the writes holding reservations to settle, and is
 *   refused only on an exact count (never for room a race only seemed to take).
 * - Whole I/O or an error: a write reserves its new slots and reads the base of its partial
 *   blocks before it touches the overlay; when a base read fails the write fails and changes
 *   nothing. Concurrent writes to one new block are merged, never lost: the first to publish
 *   its slot wins and the other writes its bytes into that slot.
 * - `flush` is a no-op and `fua` means nothing: the overlay is thrown away by design
 *   (capabilities say `flush: false`, `fua: false`).
 * - Reads and writes allocate nothing per request once the arenas they touch exist; a read
 *   sends each run of consecutive `base` blocks to `next` as one read.
 *
 * @example
 * ```ts
 * import { MemoryBlockDevice } from "./memory_block_device.ts";
 * import { OverlayBlockDevice } from "./overlay_block_device.ts";
 *
 * const base = new MemoryBlockDevice(1024 * 1024, { readOnly: true });
 * const scratch = new OverlayBlockDevice(base, { overlayBytesMax: 64 * 1024 });
 * await scratch.write(4096, new Uint8Array(512).fill(7)); // reads block 1 of base, merges
 * const sector = new Uint8Array(512);
 * await scratch.read(4096, sector); // sector[0] === 7; base still holds zeros
 * await scratch.close(); // the writes are gone
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import {
  assertBlockRange,
  type BlockDevice,
  type BlockDeviceCapabilities,
  SECTOR_BYTES,
} from "./block_device.ts";

/** The overlay's limits (TigerBeetle: a limit on everything), checked at load. */
export const overlayLimits = {
  /** Block size when none is given: the NBD preferred block size. */
  blockBytesDefault: 4096,
  /** Smallest block: one sector. */
  blockBytesMin: SECTOR_BYTES,
  /** Largest block: a read-modify-write copies one block per partial end. */
  blockBytesMax: 1024 * 1024,
  /** Scratch bytes one overlay holds when none is given (in memory, per open writable image). */
  overlayBytesMaxDefault: 256 * 1024 * 1024,
  /** Largest scratch an overlay may be given (slot numbers are 32-bit; it is all memory). */
  overlayBytesMaxLimit: 64 * 1024 * 1024 * 1024,
  /** Scratch memory is allocated in arenas of this size, lazily, as writes need them. */
  arenaBytes: 1024 * 1024,
} as const;

assert(overlayLimits.blockBytesMin % SECTOR_BYTES === 0, "A block is whole sectors");
assert(overlayLimits.blockBytesMax <= overlayLimits.arenaBytes, "An arena holds at least one block");
assert(overlayLimits.arenaBytes % overlayLimits.blockBytesMax === 0, "Arenas hold whole blocks of every size");
assert(overlayLimits.overlayBytesMaxDefault <= overlayLimits.overlayBytesMaxLimit, "The default is within the limit");
assert(
  overlayLimits.overlayBytesMaxLimit / overlayLimits.blockBytesMin <= 2 ** 31 - 1,
  "Slot numbers fit an Int32Array",
);

/** Where a block's current bytes are (nbdkit cow: "allocated" or "hole"). */
export const overlayBlockStates = {
  /** Never written through the overlay: read from `next`. */
  base: 0,
  /** Written: its bytes are in a scratch slot. */
  overlay: 1,
} as const;

export type OverlayBlockState = typeof overlayBlockStates[keyof typeof overlayBlockStates];

/** A write needs more scratch than the overlay may hold (the NBD server answers ENOSPC). */
export class OverlayFullError extends Error {
  override name = "OverlayFullError";
}

/** Options of {@link OverlayBlockDevice}. */
export interface OverlayBlockDeviceOptions {
  /** Block size: a power of two from 512 bytes to 1 MiB; default 4 KiB. */
  readonly blockBytes?: number;
  /** Scratch bytes the overlay may hold; default 256 MiB. Rounded down to whole blocks. */
  readonly overlayBytesMax?: number;
}

const overlayCapabilities: BlockDeviceCapabilities = { writable: true, flush: false, fua: false };

/**
 * Checks overlay options and fills in the defaults (so a server can refuse bad options at
 * start, not at the first writable connection).
 *
 * @example
 * ```ts
 * import { checkOverlayOptions } from "./overlay_block_device.ts";
 *
 * checkOverlayOptions({ overlayBytesMax: 1 << 20 }); // { blockBytes: 4096, overlayBytesMax: 1048576 }
 * ```
 * @throws {RangeError} for a block size that is not a power of two from 512 bytes to 1 MiB,
 *   or an overlay limit that is not a whole number of bytes from one block to
 *   {@link overlayLimits.overlayBytesMaxLimit}.
 */
export function checkOverlayOptions(options: OverlayBlockDeviceOptions): { blockBytes: number; overlayBytesMax: number } {
  const blockBytes = options.blockBytes ?? overlayLimits.blockBytesDefault;
  if (
    !Number.isSafeInteger(blockBytes) || blockBytes < overlayLimits.blockBytesMin ||
    blockBytes > overlayLimits.blockBytesMax || (blockBytes & (blockBytes - 1)) !== 0
  ) {
    throw new RangeError(
      `Cannot use an overlay block of ${blockBytes} bytes: use a power of two from ` +
        `${overlayLimits.blockBytesMin} to ${overlayLimits.blockBytesMax}`,
    );
  }
  const overlayBytesMax = options.overlayBytesMax ?? overlayLimits.overlayBytesMaxDefault;
  if (
    !Number.isSafeInteger(overlayBytesMax) || overlayBytesMax < blockBytes ||
    overlayBytesMax > overlayLimits.overlayBytesMaxLimit
  ) {
    throw new RangeError(
      `Cannot hold an overlay of ${overlayBytesMax} bytes: use ${blockBytes} to ${overlayLimits.overlayBytesMaxLimit} bytes`,
    );
  }
  return { blockBytes, overlayBytesMax };
}

/** Marks an empty slot of the hash table. */
const EMPTY_KEY = -1;

/** The copy-on-write overlay; see the module doc. */
export class OverlayBlockDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly capabilities = overlayCapabilities;
  readonly blockBytes: number;
  /** Scratch bytes this overlay may hold: whole blocks, and never more blocks than the device has. */
  readonly overlayBytesMax: number;
  readonly #next: BlockDevice;
  readonly #blockShift: number;
  readonly #slotsMax: number;
  readonly #slotsPerArena: number;
  readonly #arenaBytes: number;
  /** Scratch arenas, allocated on first use. */
  readonly #arenas: (Uint8Array | null)[];
  // The block table: open addressing, linear probing, never deleted from.
  readonly #tableKeys: Float64Array;
  readonly #tableSlots: Int32Array;
  readonly #tableMask: number;
  /** Blocks in the table (`overlay` state). */
  #blockCount = 0;
  /** Slots handed out (published in the table, or held by a write that is reading its base). */
  #slotsTaken = 0;
  /** Slots never handed out yet start here. */
  #nextFreshSlot = 0;
  /** Slots given back by writes that lost a race; reused before fresh ones. */
  readonly #returnedSlots: Int32Array;
  #returnedCount = 0;
  /** Slots promised to writes in progress but not yet taken. */
  #slotsReserved = 0;
  /** Writes at the limit waiting for writes holding reservations to settle. */
  readonly #settleWaiters: (() => void)[] = [];
  #closed = false;

  /**
   * @throws {RangeError} for bad options (see {@link checkOverlayOptions}) or a `next`
   *   device whose size is not a multiple of 512.
   */
  constructor(next: BlockDevice, options: OverlayBlockDeviceOptions = {}) {
    const { blockBytes, overlayBytesMax: requestedBytes } = checkOverlayOptions(options);
    if (next.sizeBytes % SECTOR_BYTES !== 0) {
      throw new RangeError(`Cannot overlay a device of ${next.sizeBytes} bytes: not a multiple of ${SECTOR_BYTES}`);
    }
    this.#next = next;
    this.sizeBytes = next.sizeBytes;
    this.blockBytes = blockBytes;
    this.#blockShift = Math.log2(blockBytes);
    const volumeBlocks = Math.ceil(next.sizeBytes / blockBytes);
    // No more slots than the device has blocks: a small device never reserves a large table.
    this.#slotsMax = Math.min(Math.floor(requestedBytes / blockBytes), volumeBlocks);
    this.overlayBytesMax = this.#slotsMax * blockBytes;
    this.#arenaBytes = Math.min(overlayLimits.arenaBytes, this.#slotsMax * blockBytes);
    this.#slotsPerArena = this.#arenaBytes / blockBytes;
    this.#arenas = new Array(Math.ceil(this.#slotsMax / this.#slotsPerArena)).fill(null);
    // A load factor of at most one half keeps linear probes short.
    let tableSize = 1;
    while (tableSize < this.#slotsMax * 2) tableSize *= 2;
    this.#tableKeys = new Float64Array(tableSize).fill(EMPTY_KEY);
    this.#tableSlots = new Int32Array(tableSize);
    this.#tableMask = tableSize - 1;
    this.#returnedSlots = new Int32Array(Math.max(1, this.#slotsMax));
  }

  /** Scratch bytes in use (written blocks, whole). */
  get overlayBytes(): number {
    return this.#blockCount * this.blockBytes;
  }

  /** Blocks written through the overlay. */
  get overlayBlockCount(): number {
    return this.#blockCount;
  }

  /** Scratch memory allocated so far (arenas), for metrics and tests of the limit. */
  get allocatedBytes(): number {
    let bytes = 0;
    for (const arena of this.#arenas) if (arena !== null) bytes += arena.length;
    return bytes;
  }

  /** The state of the block holding `offsetBytes` (tests, metrics). */
  blockStateAt(offsetBytes: number): OverlayBlockState {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes >= this.sizeBytes) {
      throw new RangeError(`Cannot look up offset ${offsetBytes}: not within the ${this.sizeBytes}-byte device`);
    }
    return this.#find(Math.floor(offsetBytes / this.blockBytes)) < 0 ? overlayBlockStates.base : overlayBlockStates.overlay;
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertBlockRange(this.sizeBytes, offsetBytes, target.length);
    if (target.length === 0) return;
    const blockBytes = this.blockBytes;
    const endBytes = offsetBytes + target.length;
    let single: Promise<void> | undefined;
    let many: Promise<void>[] | undefined;
    /** Start (device offset) of the run of `base` blocks not yet sent to `next`, or -1. */
    let baseRunBytes = -1;
    let atBytes = offsetBytes;
    while (atBytes < endBytes) {
      const block = Math.floor(atBytes / blockBytes);
      const pieceEndBytes = Math.min(endBytes, (block + 1) * blockBytes);
      const slot = this.#find(block);
      const state: OverlayBlockState = slot < 0 ? overlayBlockStates.base : overlayBlockStates.overlay;
      switch (state) {
        case overlayBlockStates.base:
          if (baseRunBytes < 0) baseRunBytes = atBytes;
          break;
        case overlayBlockStates.overlay: {
          if (baseRunBytes >= 0) {
            const pending = this.#readNext(baseRunBytes, target.subarray(baseRunBytes - offsetBytes, atBytes - offsetBytes));
            if (single === undefined) single = pending;
            else (many ??= [single]).push(pending);
            baseRunBytes = -1;
          }
          const arena = this.#arenaOf(slot);
          const fromBytes = this.#slotStartBytes(slot) + (atBytes - block * blockBytes);
          target.set(arena.subarray(fromBytes, fromBytes + (pieceEndBytes - atBytes)), atBytes - offsetBytes);
          break;
        }
        default:
          assert(false, `Unknown overlay block state ${state satisfies never}`);
      }
      atBytes = pieceEndBytes;
    }
    if (baseRunBytes >= 0) {
      const pending = this.#readNext(baseRunBytes, target.subarray(baseRunBytes - offsetBytes));
      if (single === undefined) single = pending;
      else (many ??= [single]).push(pending);
    }
    if (many !== undefined) await Promise.all(many);
    else if (single !== undefined) await single;
  }

  /**
   * Writes into the overlay; `next` is never written.
   *
   * @throws {RangeError} for a misaligned or out-of-range request (nothing changes).
   * @throws {OverlayFullError} when the blocks it would add do not fit the limit (nothing changes).
   * @throws whatever `next` threw reading the base of a partial block (nothing changes).
   */
  async write(offsetBytes: number, source: Uint8Array): Promise<void> {
    this.#checkOpen();
    assertBlockRange(this.sizeBytes, offsetBytes, source.length);
    if (source.length === 0) return;
    const blockBytes = this.blockBytes;
    const endBytes = offsetBytes + source.length;
    const firstBlock = Math.floor(offsetBytes / blockBytes);
    const lastBlock = Math.floor((endBytes - 1) / blockBytes);
    let newBlocks = this.#countNewBlocks(firstBlock, lastBlock);
    while (this.#slotsTaken + this.#slotsReserved + newBlocks > this.#slotsMax) {
      // Concurrent writes to one new block each reserve it until they publish, so the count
      // is exact only when no other write holds reservations: refuse only then, else wait.
      if (this.#slotsReserved === 0 && this.#slotsTaken === this.#blockCount) {
        throw new OverlayFullError(
          `Cannot write ${source.length} bytes at offset ${offsetBytes} of the scratch image: it needs ` +
            `${newBlocks} more ${blockBytes}-byte blocks and ${this.#blockCount} of ${this.#slotsMax} are in use ` +
            `(the overlay limit is ${this.#slotsMax * blockBytes} bytes)`,
        );
      }
      await new Promise<void>((resolve) => this.#settleWaiters.push(resolve));
      this.#checkOpen();
      newBlocks = this.#countNewBlocks(firstBlock, lastBlock);
    }
    // Every block counted new here is either taken below or published by a concurrent write
    // meanwhile (blocks never leave the table); what is left is given back at the end.
    this.#slotsReserved += newBlocks;
    let reservedLeft = newBlocks;
    // Partial ends not in the overlay yet: their base is read into a private slot first.
    let headSlot = -1;
    let tailSlot = -1;
    try {
      const headPartial = offsetBytes > firstBlock * blockBytes || endBytes < this.#blockEndBytes(firstBlock);
      const tailPartial = lastBlock !== firstBlock && endBytes < this.#blockEndBytes(lastBlock);
      let headRead: Promise<void> | undefined;
      let tailRead: Promise<void> | undefined;
      if (headPartial && this.#find(firstBlock) < 0) {
        headSlot = this.#takeSlot();
        reservedLeft--;
        headRead = this.#readBlockBase(firstBlock, headSlot);
      }
      if (tailPartial && this.#find(lastBlock) < 0) {
        tailSlot = this.#takeSlot();
        reservedLeft--;
        tailRead = this.#readBlockBase(lastBlock, tailSlot);
      }
      if (headRead !== undefined && tailRead !== undefined) await Promise.all([headRead, tailRead]);
      else if (headRead !== undefined) await headRead;
      else if (tailRead !== undefined) await tailRead;
      this.#checkOpen();
    } catch (error) {
      if (headSlot >= 0) this.#returnSlot(headSlot);
      if (tailSlot >= 0) this.#returnSlot(tailSlot);
      this.#slotsReserved -= reservedLeft;
      this.#wakeSettleWaiters();
      throw error;
    }
    // From here on everything is synchronous: the write lands whole.
    for (let block = firstBlock; block <= lastBlock; block++) {
      const blockStartBytes = block * blockBytes;
      const fromBytes = Math.max(offsetBytes, blockStartBytes);
      const toBytes = Math.min(endBytes, blockStartBytes + blockBytes);
      const privateSlot = block === firstBlock ? headSlot : block === lastBlock ? tailSlot : -1;
      let slot = this.#find(block);
      if (slot >= 0) {
        // In the overlay already (maybe published by a concurrent write while this one read
        // its base): write into that slot; the private copy of the base is not needed.
        if (privateSlot >= 0) this.#returnSlot(privateSlot);
      } else if (privateSlot >= 0) {
        slot = privateSlot;
        this.#publish(block, slot);
      } else {
        slot = this.#takeSlot();
        reservedLeft--;
        this.#publish(block, slot);
      }
      this.#arenaOf(slot).set(
        source.subarray(fromBytes - offsetBytes, toBytes - offsetBytes),
        this.#slotStartBytes(slot) + (fromBytes - blockStartBytes),
      );
    }
    this.#slotsReserved -= reservedLeft;
    if (headSlot >= 0 || tailSlot >= 0) this.#wakeSettleWaiters();
    assert(this.#slotsReserved >= 0 && reservedLeft >= 0, "Reservations are never overdrawn");
    assert(this.#slotsTaken <= this.#slotsMax, "The overlay never holds more than its limit");
  }

  /** A no-op: the overlay is thrown away, so there is nothing to make durable. */
  flush(): Promise<void> {
    this.#checkOpen();
    return Promise.resolve();
  }

  /** Drops every overlay block (the scratch memory). Does not close `next`. */
  close(): Promise<void> {
    this.#closed = true;
    this.#arenas.fill(null);
    this.#wakeSettleWaiters();
    return Promise.resolve();
  }

  // -------------------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use the scratch image: it is closed");
  }

  /** Reads from `next`, where `base` blocks are. */
  #readNext(offsetBytes: number, target: Uint8Array): Promise<void> {
    return this.#next.read(offsetBytes, target);
  }

  /** Reads the base of a whole block (clipped at the device's end) into a private slot. */
  #readBlockBase(block: number, slot: number): Promise<void> {
    const blockStartBytes = block * this.blockBytes;
    const lengthBytes = this.#blockEndBytes(block) - blockStartBytes;
    const start = this.#slotStartBytes(slot);
    return this.#next.read(blockStartBytes, this.#arenaOf(slot).subarray(start, start + lengthBytes));
  }

  /** Blocks of [first, last] in the `base` state. */
  #countNewBlocks(firstBlock: number, lastBlock: number): number {
    let count = 0;
    for (let block = firstBlock; block <= lastBlock; block++) if (this.#find(block) < 0) count++;
    return count;
  }

  /** Wakes writes waiting at the limit for others to settle (rare: only near the limit). */
  #wakeSettleWaiters(): void {
    if (this.#settleWaiters.length === 0) return;
    const waiters = this.#settleWaiters.splice(0);
    for (const wake of waiters) wake();
  }

  /** Where a block ends: the next block's start, or the device's end for the last one. */
  #blockEndBytes(block: number): number {
    return Math.min((block + 1) * this.blockBytes, this.sizeBytes);
  }

  #hash(block: number): number {
    const low = block >>> 0;
    const high = Math.floor(block / 0x1_0000_0000) >>> 0;
    return Math.imul(low ^ Math.imul(high, 0x85eb_ca6b), 0x9e37_79b1) >>> 0;
  }

  /** The slot of `block`, or -1 when it is in the `base` state. */
  #find(block: number): number {
    const keys = this.#tableKeys;
    const mask = this.#tableMask;
    for (let index = this.#hash(block) & mask; ; index = (index + 1) & mask) {
      const key = keys[index];
      if (key === block) return this.#tableSlots[index];
      if (key === EMPTY_KEY) return -1;
    }
  }

  #publish(block: number, slot: number): void {
    const keys = this.#tableKeys;
    const mask = this.#tableMask;
    assert(this.#blockCount < this.#slotsMax, "The table has room for every slot");
    for (let index = this.#hash(block) & mask; ; index = (index + 1) & mask) {
      const key = keys[index];
      if (key === block) assert(false, `Block ${block} is published once`);
      if (key === EMPTY_KEY) {
        keys[index] = block;
        this.#tableSlots[index] = slot;
        this.#blockCount++;
        return;
      }
    }
  }

  /** Takes a reserved slot (returned ones first), allocating its arena when new. */
  #takeSlot(): number {
    assert(this.#slotsReserved > 0, "A slot is taken against a reservation");
    this.#slotsReserved--;
    this.#slotsTaken++;
    let slot: number;
    if (this.#returnedCount > 0) {
      slot = this.#returnedSlots[--this.#returnedCount];
    } else {
      slot = this.#nextFreshSlot++;
      assert(slot < this.#slotsMax, "Fresh slots stay within the limit");
      const arenaIndex = Math.floor(slot / this.#slotsPerArena);
      this.#arenas[arenaIndex] ??= new Uint8Array(this.#arenaBytes);
    }
    return slot;
  }

  /** Gives back a slot a write took but did not publish. */
  #returnSlot(slot: number): void {
    this.#slotsTaken--;
    this.#returnedSlots[this.#returnedCount++] = slot;
  }

  #arenaOf(slot: number): Uint8Array {
    const arena = this.#arenas[Math.floor(slot / this.#slotsPerArena)];
    if (arena === null) assert(false, `Slot ${slot} has its arena`);
    return arena;
  }

  #slotStartBytes(slot: number): number {
    return (slot % this.#slotsPerArena) << this.#blockShift;
  }
}
