/**
 * Proves the JavaScript XXH32 (`core/xxh32.ts`) gives xxhash-wasm's values: for any bytes,
 * at any offset and length (every tail length, the 16-byte stripes and none), and that it
 * reads only the range it is given.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createChecksum } from "../../src/core/checksum.ts";
import { xxh32 } from "../../src/core/xxh32.ts";

describe("xxh32", () => {
  it("matches the reference values of XXH32 (seed 0)", () => {
    expect(xxh32(new Uint8Array(0), 0, 0)).toBe(0x02cc5d05);
    expect(xxh32(new TextEncoder().encode("a"), 0, 1)).toBe(0x550d7456);
    expect(xxh32(new TextEncoder().encode("abc"), 0, 3)).toBe(0x32d153ff);
  });

  it("agrees with xxhash-wasm for any bytes, offset and length", async () => {
    const checksum = await createChecksum();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const atBytes = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const lengthBytes = b % (bytes.length - atBytes + 1);
        expect(xxh32(bytes, atBytes, lengthBytes)).toBe(checksum.hash32(bytes.subarray(atBytes, atBytes + lengthBytes)));
      }),
      { numRuns: 500 },
    );
  });

  it("reads only the range it is given", () => {
    const bytes = new Uint8Array(100).fill(9);
    const before = xxh32(bytes, 10, 52);
    bytes.fill(1, 0, 10);
    bytes.fill(2, 62);
    expect(xxh32(bytes, 10, 52)).toBe(before);
  });
});
