/**
 * Byte helpers shared by the I/O tests: recognisable test data, and a comparison of large
 * buffers that reports the first differing byte (vitest's deep equality walks typed arrays
 * element by element, slowly, and prints megabytes when they differ).
 */
import { expect } from "vitest";

/** Bytes that are never zero, so a test can tell written bytes from zero-filled ones. */
export function patternBytes(lengthBytes: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) bytes[i] = ((i * 31 + seed * 7) % 255) + 1;
  return bytes;
}

/** The index of the first byte where `a` and `b` differ, or -1 when they are equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const lengthBytes = Math.min(a.length, b.length);
  for (let i = 0; i < lengthBytes; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : lengthBytes;
}

/** Expects `actual` to hold exactly `expected`. */
export function expectBytes(actual: Uint8Array | null, expected: Uint8Array): void {
  expect(actual).not.toBeNull();
  expect(actual!.length).toBe(expected.length);
  expect(firstDifference(actual!, expected), "the first differing byte").toBe(-1);
}

/** Whether every byte is zero. */
export function isAllZero(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte === 0);
}
