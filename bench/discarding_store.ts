/**
 * A segment store that keeps segment sizes and discards data, syncing at once: the engine's
 * and the appliance's CPU cost with the disk out of the picture (`engine.ts`, `wire_child.ts`).
 * Reads return zeros.
 *
 * @module
 */
import type { SegmentStore } from "../src/io/segment_store.ts";

/** See the module doc. */
export class DiscardingSegmentStore implements SegmentStore {
  readonly #sizes = new Map<number, number>();
  list() {
    return Promise.resolve([...this.#sizes.keys()].sort((a, b) => a - b));
  }
  create(segmentId: number, sizeBytes: number) {
    this.#sizes.set(segmentId, sizeBytes);
    return Promise.resolve();
  }
  sizeOf(segmentId: number) {
    return Promise.resolve(this.#sizes.get(segmentId)!);
  }
  write() {
    return Promise.resolve();
  }
  read(_segmentId: number, _offsetBytes: number, target: Uint8Array) {
    target.fill(0);
    return Promise.resolve();
  }
  sync() {
    return Promise.resolve();
  }
  remove(segmentId: number) {
    this.#sizes.delete(segmentId);
    return Promise.resolve();
  }
  readManifest() {
    return Promise.resolve(null);
  }
  writeManifest() {
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
}
