/**
 * The `BlockDevice` seam (nbdkit-shaped): whole I/O or an error, offsets and lengths in
 * bytes and multiples of {@link SECTOR_BYTES}. Primary volumes, images and overlays are
 * BlockDevices; layers wrap a `next` device and override only what they change.
 */

/** The unit every offset and length on a block device is a multiple of. */
export const SECTOR_BYTES = 512;

/** What a device can do; callers branch on these, never on the device's class. */
export interface BlockDeviceCapabilities {
  readonly writable: boolean;
  /** `flush()` makes earlier writes durable (false: flush is a no-op). */
  readonly flush: boolean;
  /** `write(..., {fua: true})` is durable when it resolves. */
  readonly fua: boolean;
}

/** Options of {@link BlockDevice.write}. */
export interface WriteOptions {
  /** Force unit access: the write is durable when the promise resolves. */
  readonly fua?: boolean;
}

/** A random-access device of fixed size. */
export interface BlockDevice {
  readonly sizeBytes: number;
  readonly capabilities: BlockDeviceCapabilities;
  /** Fills all of `target` from `offsetBytes`, or rejects. */
  read(offsetBytes: number, target: Uint8Array): Promise<void>;
  /** Writes all of `source` at `offsetBytes`, or rejects. Read-only devices reject. */
  write(offsetBytes: number, source: Uint8Array, options?: WriteOptions): Promise<void>;
  /** Makes every resolved write durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Checks an I/O request against a device once, at the boundary.
 *
 * @throws {RangeError} when the request is misaligned, empty or past the end.
 */
export function assertBlockRange(
  sizeBytes: number,
  offsetBytes: number,
  lengthBytes: number,
): void {
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) {
    throw new RangeError(`Cannot access offset ${offsetBytes}: not a non-negative integer`);
  }
  if (offsetBytes % SECTOR_BYTES !== 0 || lengthBytes % SECTOR_BYTES !== 0) {
    throw new RangeError(
      `Cannot access ${lengthBytes} bytes at offset ${offsetBytes}: not a multiple of ${SECTOR_BYTES} bytes`,
    );
  }
  if (offsetBytes + lengthBytes > sizeBytes) {
    throw new RangeError(
      `Cannot access ${lengthBytes} bytes at offset ${offsetBytes}: past the end of a ${sizeBytes}-byte device`,
    );
  }
}

/** The error a read-only device rejects writes with. */
export class ReadOnlyDeviceError extends Error {
  override name = "ReadOnlyDeviceError";
  constructor(what = "device") {
    super(`Cannot write: the ${what} is read-only`);
  }
}
