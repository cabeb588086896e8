/**
 * Page-aligned memory, for writes that go around the page cache (`FileSystem.directIo`):
 * such a write must start at an aligned address, which a plain `ArrayBuffer` does not
 * promise. A WebAssembly memory is mapped whole by the engine (V8 reserves it with mmap), so
 * its first byte starts a page. Were that not so on some engine, the file system would refuse
 * the first direct write and the segment store would turn direct writes off
 * (`file_segment_store.ts`): slower, never wrong.
 *
 * @example
 * ```ts
 * import { allocateAligned, isAligned } from "./aligned_memory.ts";
 *
 * const bytes = allocateAligned(1024 * 1024);
 * isAligned(bytes.subarray(4096), 4096); // true
 * isAligned(bytes.subarray(100), 4096); // false
 * isAligned(new Uint8Array(4096), 4096); // false: not from here
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";

/** The alignment every view at a multiple of it from an allocation's start has. */
export const ALIGNED_MEMORY_BYTES = 4096;

const wasmPageBytes = 65536;

/** The buffers {@link allocateAligned} made (weakly held: they go when their views do). */
const alignedBuffers = new WeakSet<ArrayBufferLike>();

/** `lengthBytes` of zeroed memory whose first byte is page-aligned; fixed size. */
export function allocateAligned(lengthBytes: number): Uint8Array {
  assert(Number.isSafeInteger(lengthBytes) && lengthBytes > 0, `Bad aligned allocation of ${lengthBytes} bytes`);
  const pages = Math.ceil(lengthBytes / wasmPageBytes);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  alignedBuffers.add(memory.buffer);
  return new Uint8Array(memory.buffer, 0, lengthBytes);
}

/** Whether `view` starts at an address that is a multiple of `alignmentBytes`, as far as is known. */
export function isAligned(view: Uint8Array, alignmentBytes: number): boolean {
  return alignmentBytes <= ALIGNED_MEMORY_BYTES && ALIGNED_MEMORY_BYTES % alignmentBytes === 0 &&
    alignedBuffers.has(view.buffer) && view.byteOffset % alignmentBytes === 0;
}
