/**
 * Checksums for data at rest and on the wire: xxHash64 for payloads, xxHash32 for small
 * headers, both from xxhash-wasm (WebAssembly, so the same code runs on Node and Deno).
 *
 * Why xxHash and not CRC32C: measured here on 64 KiB inputs, xxhash-wasm's XXH64 runs at
 * ~6-8 GB/s on both runtimes, WASM CRC32C at ~1.5-2 GB/s, pure-JS CRC32C at ~0.09 GB/s
 * (DESIGN.md, "Figures"). The journal hashes every payload once on append and once on
 * recovery, so the hash must not be the bottleneck of the write path.
 *
 * The WebAssembly module is instantiated once per process; every caller shares it. Buffers
 * from `allocate` are hashed in place by a module of our own (`in_place_hash.ts`), since
 * xxhash-wasm must copy each input into its memory first.
 *
 * @example
 * ```ts
 * import { createChecksum } from "./checksum.ts";
 * const checksum = await createChecksum();
 * const payloadChecksum = checksum.hash64(new Uint8Array(4096)); // a bigint in [0, 2^64)
 * const headerChecksum = checksum.hash32(new Uint8Array(52)); // a number in [0, 2^32)
 * const ring = checksum.allocate(1024 * 1024); // hash64 reads views of it in place
 * ```
 */
import xxhash from "xxhash-wasm";
import { InPlaceHashes } from "./in_place_hash.ts";

/** Hash functions over bytes; not cryptographic (they detect accidents, not attacks). */
export interface Checksum {
  /**
   * XXH64 (seed 0) of `bytes`, an unsigned 64-bit bigint. Bytes in a buffer from
   * {@link allocate} are hashed where they lie; others are copied into the hash's memory first.
   */
  hash64(bytes: Uint8Array): bigint;
  /** XXH32 (seed 0) of `bytes`, an unsigned 32-bit number. */
  hash32(bytes: Uint8Array): number;
  /**
   * `lengthBytes` zeroed bytes that {@link hash64} reads in place, without the copy: for the
   * few long-lived buffers every written byte passes through (`in_place_hash.ts`).
   */
  allocate(lengthBytes: number): Uint8Array;
}

let checksumPromise: Promise<Checksum> | undefined;

/**
 * Resolves to the shared {@link Checksum}; the WebAssembly module is instantiated on the
 * first call only. A failed instantiation is not cached, so a later call retries.
 */
export function createChecksum(): Promise<Checksum> {
  if (checksumPromise === undefined) {
    checksumPromise = instantiate();
    checksumPromise.catch(() => {
      checksumPromise = undefined;
    });
  }
  return checksumPromise;
}

async function instantiate(): Promise<Checksum> {
  const api = await xxhash();
  const inPlace = new InPlaceHashes();
  return {
    hash64: (bytes: Uint8Array): bigint => inPlace.hash64(bytes) ?? api.h64Raw(bytes),
    hash32: (bytes: Uint8Array): number => api.h32Raw(bytes),
    allocate: (lengthBytes: number): Uint8Array => inPlace.allocate(lengthBytes),
  };
}
