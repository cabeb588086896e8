/**
 * Always-on assertions for programmer errors and invariants (TigerBeetle style: they stay on
 * in production, because a broken invariant in a storage engine must stop, not spread).
 *
 * @example
 * ```ts
 * import { assert } from "./assert.ts";
 * assert(1 + 1 === 2, "arithmetic works");
 * ```
 */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Throws {@link AssertionError} when `condition` is false. */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}
