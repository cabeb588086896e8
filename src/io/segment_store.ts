/**
 * The `SegmentStore` seam: numbered fixed-size segments written append-only by their owner
 * (the journal, the map catalogue), plus one manifest replaced atomically.
 *
 * Durability contract (what the crash simulation in `memory_segment_store.ts` enforces):
 * - `create` is durable when it resolves (a zero-filled, preallocated segment of `sizeBytes`).
 * - `write` is visible to `read` at once but durable only after a later `sync` of that segment
 *   resolves; at a crash each unsynced write is lost, kept, or torn at a byte.
 * - `writeManifest` is atomic and durable when it resolves: after a crash `readManifest`
 *   returns either the old or the new bytes, never a mix.
 * - `remove` is durable when it resolves.
 */
export interface SegmentStore {
  /** Ids of existing segments, ascending. */
  list(): Promise<number[]>;
  /** Creates a zero-filled segment; rejects if `segmentId` exists. */
  create(segmentId: number, sizeBytes: number): Promise<void>;
  /** Size of an existing segment in bytes. */
  sizeOf(segmentId: number): Promise<number>;
  /** Writes all of `source` at `offsetBytes` inside the segment (bounds checked). */
  write(segmentId: number, offsetBytes: number, source: Uint8Array): Promise<void>;
  /** Fills all of `target` from `offsetBytes` inside the segment (bounds checked). */
  read(segmentId: number, offsetBytes: number, target: Uint8Array): Promise<void>;
  /** Makes every resolved write to the segment durable. */
  sync(segmentId: number): Promise<void>;
  remove(segmentId: number): Promise<void>;
  readManifest(): Promise<Uint8Array | null>;
  writeManifest(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Rejection for a segment id that does not exist (or already exists, on create). */
export class SegmentNotFoundError extends Error {
  override name = "SegmentNotFoundError";
}

/** Checks a segment access once, at the boundary. */
export function assertSegmentRange(
  segmentId: number,
  segmentSizeBytes: number,
  offsetBytes: number,
  lengthBytes: number,
): void {
  if (
    !Number.isSafeInteger(offsetBytes) || offsetBytes < 0 ||
    offsetBytes + lengthBytes > segmentSizeBytes
  ) {
    throw new RangeError(
      `Cannot access ${lengthBytes} bytes at offset ${offsetBytes} of segment ${segmentId}: ` +
        `it holds ${segmentSizeBytes} bytes`,
    );
  }
}
