/**
 * XXH64 over buffers that live in WebAssembly memory of their own, hashed where they lie.
 *
 * Why: `xxhash-wasm` (the general hash, `checksum.ts`) hashes only its own memory, so it first
 * copies every input there. For a 1 MiB write that copy costs about as much as the hash, and
 * the data path hashes every write twice (the switch when it keeps the copy, the appliance
 * when it checks the batch). Measured here on 1 MiB inputs not in cache: in place ~190 µs
 * per MiB, through `h64Raw` ~250-270 (README.md, "Benchmarks", the NBD analysis, for what it
 * did to the 1 MiB NBD copy).
 *
 * How: {@link InPlaceHashes.allocate} creates a fixed-size `WebAssembly.Memory` (never grown,
 * so views of it stay valid) and an instance of the XXH64 module of `tools/xxh64.wat` that
 * imports it. {@link InPlaceHashes.hash64} recognises a view of such a memory by its
 * `ArrayBuffer` and runs the module on it; any other bytes get `undefined`, for the caller
 * to hash by copy.
 *
 * Each allocation reserves a memory of its own (V8 reserves address space around each), so
 * it is meant for a few long-lived buffers every written byte passes through: the switch's
 * copy buffer, the appliance's frame buffers. A request the runtime cannot meet, or one over
 * `lengthBytesMax` (2 GiB by default, which keeps `offset + length` of the module's i32
 * arithmetic below 2^32), gets plain memory instead: still correct, hashed by copy.
 *
 * @example
 * ```ts
 * import { InPlaceHashes } from "./in_place_hash.ts";
 * const hashes = new InPlaceHashes();
 * const ring = hashes.allocate(1024 * 1024); // zeroed, in a memory of its own
 * ring.set([1, 2, 3], 4096);
 * hashes.hash64(ring.subarray(4096, 4099)); // XXH64 of those 3 bytes, computed in place
 * hashes.hash64(new Uint8Array(3)); // undefined: not from allocate
 * ```
 */
import { xxh64WasmBase64 } from "./xxh64_wasm.ts";

/** Bytes of one WebAssembly page. */
const pageBytes = 65_536;
/** The default cap on one in-place allocation (see the module doc). */
export const inPlaceBytesMaxDefault = 2 ** 31;

type Xxh64 = (atBytes: number, lengthBytes: number, seed: bigint) => bigint;

let compiled: WebAssembly.Module | undefined;

function xxh64Module(): WebAssembly.Module {
  if (compiled === undefined) {
    const text = atob(xxh64WasmBase64);
    const bytes = new Uint8Array(text.length);
    for (let index = 0; index < text.length; index++) bytes[index] = text.charCodeAt(index);
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}

/** See the module doc. */
export class InPlaceHashes {
  readonly lengthBytesMax: number;
  readonly #hashers = new WeakMap<ArrayBufferLike, Xxh64>();
  #plainCount = 0;

  /** @param options.lengthBytesMax the largest allocation made in WebAssembly memory. */
  constructor(options: { lengthBytesMax?: number } = {}) {
    this.lengthBytesMax = Math.min(options.lengthBytesMax ?? inPlaceBytesMaxDefault, inPlaceBytesMaxDefault);
  }

  /** Allocations that got plain memory (over the cap, or refused by the runtime). */
  get plainCount(): number {
    return this.#plainCount;
  }

  /**
   * `lengthBytes` zeroed bytes; {@link hash64} reads any view of them in place unless they
   * had to be plain memory (see {@link plainCount}).
   *
   * @throws {RangeError} when `lengthBytes` is not a non-negative safe integer.
   */
  allocate(lengthBytes: number): Uint8Array {
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) {
      throw new RangeError(`Cannot allocate ${lengthBytes} bytes: it must be a non-negative integer`);
    }
    if (lengthBytes === 0) return new Uint8Array(0);
    if (lengthBytes > this.lengthBytesMax) return this.#plain(lengthBytes);
    const pages = Math.ceil(lengthBytes / pageBytes);
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch (error) {
      if (error instanceof RangeError) return this.#plain(lengthBytes); // no memory for it now
      throw error;
    }
    const instance = new WebAssembly.Instance(xxh64Module(), { env: { memory } });
    this.#hashers.set(memory.buffer, instance.exports.xxh64 as Xxh64);
    return new Uint8Array(memory.buffer, 0, lengthBytes);
  }

  /** XXH64 (seed 0, unsigned) of `bytes` when they view memory from {@link allocate}, else `undefined`. */
  hash64(bytes: Uint8Array): bigint | undefined {
    const xxh64 = this.#hashers.get(bytes.buffer);
    return xxh64 === undefined ? undefined : BigInt.asUintN(64, xxh64(bytes.byteOffset, bytes.length, 0n));
  }

  #plain(lengthBytes: number): Uint8Array {
    this.#plainCount++;
    return new Uint8Array(lengthBytes);
  }
}
