/**
 * Reusable buffers for the NBD server's data path (STYLE.md: "buffers on the data path are
 * allocated at start and reused"): WRITE payloads are assembled into them as the bytes
 * arrive and READ data is read into them, so a busy connection allocates nothing per
 * request once the pool is warm, and the garbage collector has nothing to chase (it took
 * ~15% of the server's time when every request allocated its payload or reply).
 *
 * Buffers come in power-of-two classes from `classBytesMin` to the largest payload; `take`
 * hands out a view of exactly the length asked for, `give` puts its buffer back. The pool
 * keeps at most `retainedBytesMax` of idle buffers (more are left to the collector), so its
 * memory is bounded whatever the clients do; buffers in use are bounded by the server's
 * in-flight window, not by the pool.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 *
 * const pool = new BufferPool({ bytesMax: 4 * 1024 * 1024, retainedBytesMax: 16 * 1024 * 1024 });
 * const payload = pool.take(4096); // a 4096-byte view
 * pool.give(payload); // the next take of up to 4096 bytes reuses it
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";

/** The smallest class: one sector. */
const classBytesMin = 512;

/** Options of {@link BufferPool}. */
export interface BufferPoolOptions {
  /** The largest buffer a `take` may ask for. */
  readonly bytesMax: number;
  /** Idle bytes the pool keeps for reuse. */
  readonly retainedBytesMax: number;
}

/** See the module doc. */
export class BufferPool {
  readonly #bytesMax: number;
  readonly #retainedBytesMax: number;
  /** Idle buffers per class (index `k` holds buffers of `classBytesMin << k` bytes). */
  readonly #idle: ArrayBuffer[][];
  /** The idle buffers, so a buffer given back twice (two owners at once) is caught. */
  readonly #idleBuffers = new WeakSet<ArrayBuffer>();
  #retainedBytes = 0;

  /** @throws {RangeError} when a limit is not a positive integer. */
  constructor(options: BufferPoolOptions) {
    for (const [name, value] of Object.entries(options)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`Cannot use ${name} ${value}: not a positive integer`);
    }
    this.#bytesMax = options.bytesMax;
    this.#retainedBytesMax = options.retainedBytesMax;
    this.#idle = Array.from({ length: classOf(options.bytesMax) + 1 }, () => []);
  }

  /** Idle bytes kept for reuse now. */
  get retainedBytes(): number {
    return this.#retainedBytes;
  }

  /** A view of `lengthBytes` (1 to `bytesMax`) bytes, reused or new; its contents are undefined. */
  take(lengthBytes: number): Uint8Array {
    if (!(lengthBytes >= 1 && lengthBytes <= this.#bytesMax)) assert(false, `A pooled buffer holds 1 to ${this.#bytesMax} bytes`);
    const bufferClass = classOf(lengthBytes);
    const buffer = this.#idle[bufferClass].pop();
    if (buffer === undefined) return new Uint8Array(classBytesMin << bufferClass).subarray(0, lengthBytes);
    this.#idleBuffers.delete(buffer);
    this.#retainedBytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, lengthBytes);
  }

  /** Returns a view `take` gave; nothing may use it afterwards. */
  give(view: Uint8Array): void {
    const buffer = view.buffer as ArrayBuffer;
    const bufferClass = classOf(buffer.byteLength);
    assert(view.byteOffset === 0 && buffer.byteLength === classBytesMin << bufferClass, "A pooled buffer comes back whole");
    assert(!this.#idleBuffers.has(buffer), "A pooled buffer is given back once");
    if (this.#retainedBytes + buffer.byteLength > this.#retainedBytesMax) return;
    this.#idle[bufferClass].push(buffer);
    this.#idleBuffers.add(buffer);
    this.#retainedBytes += buffer.byteLength;
  }
}

/** The class whose buffers hold `lengthBytes`: the smallest `k` with `classBytesMin << k >= lengthBytes`. */
function classOf(lengthBytes: number): number {
  let bufferClass = 0;
  while (classBytesMin << bufferClass < lengthBytes) bufferClass++;
  return bufferClass;
}
