/**
 * A point-in-time image: a read-only {@link BlockDevice} over the journal, built from a
 * stack of delta maps captured when it was opened (seed 004 [0034]: "selectively play back
 * portions of the write log such that the resulting point-in-time image is the same as if
 * the log were played back one write at a time"). Opening copies no data; a read resolves
 * its range through the layers (newest first) and reads the journal where they point. What
 * no layer maps was never written: zeros. A zero run (a restore to a point where those bytes
 * were never written, seed 003 [0075]) reads as zeros too, and hides what older layers map.
 */
import { HOLE, isZeroAddress } from "../core/delta_map.ts";
import type { DeltaMap } from "../core/delta_map.ts";
import { resolveLayers } from "../core/layered_lookup.ts";
import {
  assertBlockRange,
  type BlockDevice,
  type BlockDeviceCapabilities,
  ReadOnlyDeviceError,
} from "../io/block_device.ts";

/** Where an image stands: the exact record it was resolved to. */
export interface ResolvedPoint {
  /** Sequence number of the last record included (0 = the base). */
  readonly seq: number;
  /** Time of that record (or of the base), microseconds since the epoch. */
  readonly timeUs: number;
  /** Write-index rows included: rows [0, rowEnd). */
  readonly rowEnd: number;
  /**
   * The time the POINT asked for, when it was a time or relative (`-5m`); absent otherwise.
   * A time inside a gap resolves to the last write before the gap, so the suspect check needs
   * the time as well as `seq` (guarantee 3).
   */
  readonly requestedTimeUs?: number;
}

/** Reads journal bytes at a journal address. */
export type JournalReader = (addressBytes: number, target: Uint8Array) => Promise<void>;

const readOnlyCapabilities: BlockDeviceCapabilities = { writable: false, flush: false, fua: false };

/** The read-only image of a volume at a resolved point. */
export class ImageDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly capabilities = readOnlyCapabilities;
  readonly point: ResolvedPoint;
  readonly #layers: readonly DeltaMap[];
  readonly #readJournal: JournalReader;
  #closed = false;

  constructor(
    readJournal: JournalReader,
    options: { sizeBytes: number; layers: readonly DeltaMap[]; point: ResolvedPoint },
  ) {
    this.#readJournal = readJournal;
    this.sizeBytes = options.sizeBytes;
    this.#layers = options.layers;
    this.point = options.point;
  }

  /** How many maps a read consults (for metrics and benchmarks). */
  get layerCount(): number {
    return this.#layers.length;
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    if (this.#closed) throw new Error("Cannot read: the image is closed");
    assertBlockRange(this.sizeBytes, offsetBytes, target.length);
    let single: Promise<void> | undefined;
    let many: Promise<void>[] | undefined;
    resolveLayers(this.#layers, offsetBytes, target.length, (pieceOffsetBytes, pieceLengthBytes, addressBytes) => {
      const from = pieceOffsetBytes - offsetBytes;
      if (addressBytes === HOLE || isZeroAddress(addressBytes)) {
        target.fill(0, from, from + pieceLengthBytes);
        return;
      }
      const pending = this.#readJournal(addressBytes, target.subarray(from, from + pieceLengthBytes));
      if (single === undefined) single = pending;
      else (many ??= [single]).push(pending);
    });
    if (many !== undefined) await Promise.all(many);
    else if (single !== undefined) await single;
  }

  write(): Promise<void> {
    return Promise.reject(new ReadOnlyDeviceError("point-in-time image"));
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
