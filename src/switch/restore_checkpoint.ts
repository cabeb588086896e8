/**
 * The restore checkpoint (issue "Restore": a restore survives a crash of the switch by
 * resuming): what a running {@link RestoreSession} has left to copy, kept in a
 * {@link DurableCell} beside the volume's DRL (`--state/VOL.restore`).
 *
 * What makes a resume exact — the rules the session keeps:
 * 1. The checkpoint is written as the copy starts (after the restore marker entered the write
 *    stream). A crash before it is durable leaves no checkpoint: the DRL holds every region
 *    the restore may have touched, and the resync after the restart's gap journals the
 *    primary's partial state there (recorded, never silent; the restore is not resumed).
 * 2. A chunk's bit is cleared only after its restored bytes are durable on the primary (one
 *    primary flush, then the cell write).
 * 3. A host write may touch a chunk only once its bit is cleared durably. So after a crash every
 *    chunk still marked holds exactly the primary's state from before the restore, which the
 *    target's bytes replace; and every cleared chunk holds the target's bytes plus host writes,
 *    which the DRL and resync carry to the journal as usual.
 *
 * Persisted form (little-endian):
 *
 * | offset | bytes | field            | meaning                                            |
 * | -----: | ----: | ---------------- | -------------------------------------------------- |
 * |      0 |     4 | magic u32        | `ARST` (bytes 0x41 0x52 0x53 0x54)                 |
 * |      4 |     2 | version u16      | 1                                                  |
 * |      6 |     2 | flags u16        | bit 0: a restore is active; bit 1: instant         |
 * |      8 |     4 | chunkBytes u32   | copy granularity of the bitmap                     |
 * |     12 |     4 | chunkCount u32   | bits in the bitmap (0 when inactive)               |
 * |     16 |     8 | sizeBytes f64    | the volume's size                                  |
 * |     24 |     8 | toSeq f64        | the point restored to                              |
 * |     32 |     8 | toTimeUs f64     | its time                                           |
 * |     40 |     8 | markerSeq f64    | the restore marker in the journal                  |
 * |     48 |     8 | requestId f64    | the appliance's restore request (0: one process)   |
 * |     56 |     B | bitmap           | bit c set: chunk c still to restore (B = ⌈count/8⌉) |
 * |   56+B |     8 | checksum u64     | XXH64 of bytes 0 .. 56+B                           |
 *
 * Memory: the bitmap (at most `switchLimits.restoreChunksMax` bits) and one encoded copy per
 * cell write.
 *
 * @example
 * ```ts
 * // const checkpoint = await RestoreCheckpoint.open(cell, { sizeBytes, checksum });
 * // if (checkpoint.active !== null) ... resume: RestoreSession.resume(deps, checkpoint)
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { switchLimits } from "../core/limits.ts";
import type { DurableCell } from "../io/durable_cell.ts";

/** `ARST` read as a little-endian u32. */
const checkpointMagic = 0x54535241;
const checkpointVersion = 1;
const headerBytes = 56;
const flagActive = 1;
const flagInstant = 2;

/** What a restore in progress is, as the checkpoint keeps it. */
export interface RestoreCheckpointRecord {
  readonly toSeq: number;
  readonly toTimeUs: number;
  readonly markerSeq: number;
  readonly instant: boolean;
  /** The appliance's restore request id (a restore run through the link), 0 when switch and appliance share one program. */
  readonly requestId: number;
  readonly chunkBytes: number;
}

/** The cell does not hold a valid checkpoint (length, magic, version, checksum, geometry). */
export class RestoreCheckpointError extends Error {
  override name = "RestoreCheckpointError";
}

/** See the module doc. */
export class RestoreCheckpoint {
  readonly sizeBytes: number;
  readonly #cell: DurableCell;
  readonly #checksum: Checksum;
  #record: RestoreCheckpointRecord | null = null;
  /** Bit c set: chunk c still to restore (in memory; the cell has it once a persist resolved). */
  #bits: Uint8Array = new Uint8Array(0);
  #chunkCount = 0;
  /** The persist waiting to start (it encodes the bits when it starts), shared by its callers. */
  #queued: Promise<void> | null = null;
  /** The cell write under way. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(cell: DurableCell, checksum: Checksum, sizeBytes: number) {
    this.#cell = cell;
    this.#checksum = checksum;
    this.sizeBytes = sizeBytes;
  }

  /**
   * Loads the checkpoint kept in `cell` (an empty cell: no restore in progress).
   *
   * @throws {RestoreCheckpointError} for a cell that does not hold a valid checkpoint for a
   *   volume of `sizeBytes` (nothing is changed: the operator decides).
   */
  static async open(cell: DurableCell, options: { sizeBytes: number; checksum: Checksum }): Promise<RestoreCheckpoint> {
    const checkpoint = new RestoreCheckpoint(cell, options.checksum, options.sizeBytes);
    const stored = await cell.read();
    if (stored !== null) checkpoint.#decode(stored);
    return checkpoint;
  }

  /** The restore in progress, or `null`. */
  get active(): RestoreCheckpointRecord | null {
    return this.#record;
  }

  get chunkCount(): number {
    return this.#chunkCount;
  }

  /** Whether chunk `chunk` is still to restore. */
  isPending(chunk: number): boolean {
    return (this.#bits[chunk >>> 3] & (1 << (chunk & 7))) !== 0;
  }

  /** Chunks still to restore. */
  pendingCount(): number {
    let count = 0;
    for (let chunk = 0; chunk < this.#chunkCount; chunk++) if (this.isPending(chunk)) count++;
    return count;
  }

  /**
   * Starts a checkpoint: `pending(c)` tells which chunks are to restore. Durable when it resolves.
   *
   * @throws {RangeError} for a bad chunk size; the cell's error when it cannot be written.
   */
  async begin(record: RestoreCheckpointRecord, pending: (chunk: number) => boolean): Promise<void> {
    const { chunkBytes } = record;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 512 || chunkBytes > switchLimits.restoreChunkBytesMax) {
      throw new RangeError(`Cannot keep a restore checkpoint in chunks of ${chunkBytes} bytes`);
    }
    const chunkCount = Math.ceil(this.sizeBytes / chunkBytes);
    assert(chunkCount <= switchLimits.restoreChunksMax, "A checkpoint tracks at most restoreChunksMax chunks");
    const bits = new Uint8Array(Math.ceil(chunkCount / 8));
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      if (pending(chunk)) bits[chunk >>> 3] |= 1 << (chunk & 7);
    }
    this.#record = { ...record };
    this.#bits = bits;
    this.#chunkCount = chunkCount;
    await this.persist();
  }

  /** Marks a chunk restored (in memory; durable after the next {@link persist}). */
  markDone(chunk: number): void {
    assert(this.#record !== null && chunk >= 0 && chunk < this.#chunkCount, "markDone of a chunk of the active checkpoint");
    this.#bits[chunk >>> 3] &= ~(1 << (chunk & 7));
  }

  /**
   * Makes the state in memory durable. Callers meanwhile share one cell write, which starts
   * after the one under way and carries every change made before it starts.
   */
  persist(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    const queued = this.#writing.catch(() => {}).then(() => {
      this.#queued = null;
      const write = this.#cell.write(this.#encode());
      this.#writing = write;
      return write;
    });
    this.#queued = queued;
    return queued;
  }

  /** Ends the checkpoint (the restore finished, or its partial state was recorded). Durable when it resolves. */
  async clear(): Promise<void> {
    this.#record = null;
    this.#bits = new Uint8Array(0);
    this.#chunkCount = 0;
    await this.persist();
  }

  #encode(): Uint8Array {
    const record = this.#record;
    const bitmapBytes = this.#bits.length;
    const bytes = new Uint8Array(headerBytes + bitmapBytes + 8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, checkpointMagic, true);
    view.setUint16(4, checkpointVersion, true);
    view.setUint16(6, record === null ? 0 : flagActive | (record.instant ? flagInstant : 0), true);
    view.setUint32(8, record?.chunkBytes ?? 0, true);
    view.setUint32(12, this.#chunkCount, true);
    view.setFloat64(16, this.sizeBytes, true);
    view.setFloat64(24, record?.toSeq ?? 0, true);
    view.setFloat64(32, record?.toTimeUs ?? 0, true);
    view.setFloat64(40, record?.markerSeq ?? 0, true);
    view.setFloat64(48, record?.requestId ?? 0, true);
    bytes.set(this.#bits, headerBytes);
    view.setBigUint64(headerBytes + bitmapBytes, this.#checksum.hash64(bytes.subarray(0, headerBytes + bitmapBytes)), true);
    return bytes;
  }

  #decode(bytes: Uint8Array): void {
    const what = "Cannot resume the restore checkpoint";
    if (bytes.length < headerBytes + 8) throw new RestoreCheckpointError(`${what}: it has ${bytes.length} bytes, fewer than a header`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    if (view.getUint32(0, true) !== checkpointMagic) throw new RestoreCheckpointError(`${what}: it is not a restore checkpoint`);
    const version = view.getUint16(4, true);
    if (version !== checkpointVersion) throw new RestoreCheckpointError(`${what}: version ${version}, this switch reads ${checkpointVersion}`);
    const flags = view.getUint16(6, true);
    const chunkBytes = view.getUint32(8, true);
    const chunkCount = view.getUint32(12, true);
    const bitmapBytes = Math.ceil(chunkCount / 8);
    if (bytes.length !== headerBytes + bitmapBytes + 8) {
      throw new RestoreCheckpointError(`${what}: ${bytes.length} bytes, not the ${headerBytes + bitmapBytes + 8} its ${chunkCount} chunks take`);
    }
    const stored = view.getBigUint64(headerBytes + bitmapBytes, true);
    if (this.#checksum.hash64(bytes.subarray(0, headerBytes + bitmapBytes)) !== stored) {
      throw new RestoreCheckpointError(`${what}: its checksum does not match (the file is damaged)`);
    }
    const sizeBytes = view.getFloat64(16, true);
    if ((flags & flagActive) === 0) return;
    if (sizeBytes !== this.sizeBytes || chunkBytes < 512 || chunkCount !== Math.ceil(sizeBytes / chunkBytes)) {
      throw new RestoreCheckpointError(
        `${what}: it was written for a ${sizeBytes}-byte volume in ${chunkBytes}-byte chunks, not this ${this.sizeBytes}-byte volume`,
      );
    }
    this.#record = {
      toSeq: view.getFloat64(24, true),
      toTimeUs: view.getFloat64(32, true),
      markerSeq: view.getFloat64(40, true),
      requestId: view.getFloat64(48, true),
      instant: (flags & flagInstant) !== 0,
      chunkBytes,
    };
    this.#bits = bytes.slice(headerBytes, headerBytes + bitmapBytes);
    this.#chunkCount = chunkCount;
  }
}
