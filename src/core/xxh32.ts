/**
 * XXH32 (seed 0) in plain JavaScript, for the small headers of wire frames and journal
 * records. It gives the same values as xxhash-wasm's XXH32 (`core/checksum.ts`, which tests
 * compare it with), but reads the bytes where they are: a call into WebAssembly first copies
 * its input into the module's memory and costs more than hashing a header. Measured here
 * (Node 20, 52-byte journal record headers): ~0.05 µs per header in JavaScript, ~0.14 µs
 * through xxhash-wasm; encoding and sealing a record header went from 0.66 to 0.42 µs with
 * it. Payloads stay with the WebAssembly XXH64, which is faster on bulk data.
 *
 * @example
 * ```ts
 * import { xxh32 } from "./xxh32.ts";
 * const header = new Uint8Array(56);
 * const check = xxh32(header, 0, 52); // the first 52 bytes, an unsigned 32-bit number
 * ```
 *
 * @module
 */
const prime32n2 = 0x85ebca77;
const prime32n3 = 0xc2b2ae3d;
const prime32n4 = 0x27d4eb2f;
const prime32n5 = 0x165667b1;

const prime32n1 = 0x9e3779b1;

/** XXH32 (seed 0) of `lengthBytes` bytes of `bytes` from `atBytes`, an unsigned 32-bit number. */
export function xxh32(bytes: Uint8Array, atBytes: number, lengthBytes: number): number {
  const endBytes = atBytes + lengthBytes;
  let i = atBytes;
  let hash: number;
  if (lengthBytes >= 16) {
    let v1 = (prime32n1 + prime32n2) | 0;
    let v2 = prime32n2;
    let v3 = 0;
    let v4 = (0 - prime32n1) | 0;
    for (; i + 16 <= endBytes; i += 16) {
      v1 = round(v1, readUint32(bytes, i));
      v2 = round(v2, readUint32(bytes, i + 4));
      v3 = round(v3, readUint32(bytes, i + 8));
      v4 = round(v4, readUint32(bytes, i + 12));
    }
    hash = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    hash = prime32n5;
  }
  hash = (hash + lengthBytes) | 0;
  for (; i + 4 <= endBytes; i += 4) {
    hash = (hash + Math.imul(readUint32(bytes, i), prime32n3)) | 0;
    hash = Math.imul(rotl(hash, 17), prime32n4);
  }
  for (; i < endBytes; i++) {
    hash = (hash + Math.imul(bytes[i], prime32n5)) | 0;
    hash = Math.imul(rotl(hash, 11), prime32n1);
  }
  hash ^= hash >>> 15;
  hash = Math.imul(hash, prime32n2);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, prime32n3);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

function round(accumulator: number, input: number): number {
  return Math.imul(rotl((accumulator + Math.imul(input, prime32n2)) | 0, 13), prime32n1);
}

function rotl(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function readUint32(bytes: Uint8Array, atBytes: number): number {
  return bytes[atBytes] | (bytes[atBytes + 1] << 8) | (bytes[atBytes + 2] << 16) | (bytes[atBytes + 3] << 24);
}
