/**
 * Always-on assertions for programmer errors and invariants (TigerBeetle style: they stay on
 * in production, because a broken invariant in a storage engine must stop, not spread).
 *
 * @example
 * ```ts
 * import { assert } from "./assert.ts";
 * assert(1 + 1 === 2, "arithmetic works");
 * // On a hot path, build the message only on failure (a template literal is evaluated
 * // before the call: number-to-string conversions showed up in the journal's profile):
 * const lengthBytes = 4096;
 * if (lengthBytes % 512 !== 0) assert(false, `${lengthBytes} bytes is not whole sectors`);
 * ```
 */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Throws {@link AssertionError} when `condition` is false. */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}
