/**
 * Proves the in-place XXH64 (`core/in_place_hash.ts`, the module of `tools/xxh64.wat`) gives
 * xxhash-wasm's values for any bytes at any offset of an allocated buffer (every tail length,
 * the 32-byte stripes and none), reads only the range it is given, and that the buffers it
 * cannot place in WebAssembly memory fall back to plain memory, hashed by copy; and that the
 * checked-in module is what the WAT assembles to.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFile } from "node:fs/promises";
import { createChecksum } from "../../src/core/checksum.ts";
import { InPlaceHashes } from "../../src/core/in_place_hash.ts";
import { xxh64WasmBase64 } from "../../src/core/xxh64_wasm.ts";
import { assembleXxh64Wat, xxh64WatUrl } from "../../tools/xxh64_wat.ts";

describe("InPlaceHashes", () => {
  it("matches the reference values of XXH64 (seed 0)", () => {
    const hashes = new InPlaceHashes();
    const buffer = hashes.allocate(64);
    buffer.set(new TextEncoder().encode("abc"), 5);
    expect(hashes.hash64(buffer.subarray(0, 0))).toBe(0xef46db3751d8e999n);
    expect(hashes.hash64(buffer.subarray(5, 8))).toBe(0x44bc2cf5ad770999n);
  });

  it("agrees with xxhash-wasm for any bytes, offset and length", async () => {
    const checksum = await createChecksum();
    const hashes = new InPlaceHashes();
    const buffer = hashes.allocate(4096);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.nat(4096 - 700), (bytes, atBytes) => {
        buffer.set(bytes, atBytes);
        const view = buffer.subarray(atBytes, atBytes + bytes.length);
        expect(hashes.hash64(view)).toBe(checksum.hash64(bytes.slice()));
      }),
      { numRuns: 500 },
    );
  });

  it("hashes a large buffer in place, to its last byte", async () => {
    const checksum = await createChecksum();
    const hashes = new InPlaceHashes();
    const lengthBytes = 3 * 65_536 + 7; // not a whole page: the memory is larger than the view
    const buffer = hashes.allocate(lengthBytes);
    expect(buffer.length).toBe(lengthBytes);
    expect(buffer.every((byte) => byte === 0)).toBe(true);
    for (let index = 0; index < lengthBytes; index++) buffer[index] = (index * 151) & 255;
    expect(hashes.hash64(buffer)).toBe(checksum.hash64(buffer.slice()));
    expect(hashes.hash64(buffer.subarray(lengthBytes - 1))).toBe(checksum.hash64(buffer.slice(lengthBytes - 1)));
  });

  it("reads only the range it is given", () => {
    const hashes = new InPlaceHashes();
    const buffer = hashes.allocate(200).fill(9);
    const before = hashes.hash64(buffer.subarray(10, 110));
    buffer.fill(1, 0, 10);
    buffer.fill(2, 110);
    expect(hashes.hash64(buffer.subarray(10, 110))).toBe(before);
  });

  it("answers undefined for bytes it did not allocate, and gives each buffer a memory of its own", () => {
    const hashes = new InPlaceHashes();
    expect(hashes.hash64(new Uint8Array(16))).toBeUndefined();
    const first = hashes.allocate(100).fill(1);
    const second = hashes.allocate(100).fill(2);
    expect(first.buffer).not.toBe(second.buffer);
    expect(hashes.hash64(first)).not.toBe(hashes.hash64(second));
    expect(hashes.allocate(0).length).toBe(0);
    expect(hashes.plainCount).toBe(0);
  });

  it("gives plain memory over its cap, which Checksum still hashes (by copy)", async () => {
    const hashes = new InPlaceHashes({ lengthBytesMax: 65_536 });
    const plain = hashes.allocate(65_537).fill(3);
    expect(plain.length).toBe(65_537);
    expect(hashes.plainCount).toBe(1);
    expect(hashes.hash64(plain)).toBeUndefined();
    const checksum = await createChecksum();
    const placed = checksum.allocate(65_537).fill(3);
    expect(checksum.hash64(placed)).toBe(checksum.hash64(plain));
  });

  it("refuses a length that is not a non-negative integer", () => {
    const hashes = new InPlaceHashes();
    expect(() => hashes.allocate(-1)).toThrow(RangeError);
    expect(() => hashes.allocate(1.5)).toThrow(RangeError);
  });
});

describe("xxh64_wasm.ts", () => {
  it("holds the module tools/xxh64.wat assembles to (regenerate: npx tsx tools/build_xxh64_wasm.ts)", async () => {
    const assembled = await assembleXxh64Wat(await readFile(xxh64WatUrl, "utf8"));
    const embedded = Uint8Array.from(atob(xxh64WasmBase64), (character) => character.charCodeAt(0));
    expect(embedded).toEqual(assembled);
  });
});
