/**
 * The system {@link Clock} for Deno. The Node target's clock uses only Web-standard globals
 * (`Date`, `performance`, `setTimeout`), which Deno has with the same precision (µs from
 * `performance.now()`), so one implementation serves both runtimes.
 *
 * @example
 * ```ts
 * import { SystemClock } from "./system_clock.ts";
 *
 * const clock = new SystemClock();
 * clock.nowUs(); // microseconds since the Unix epoch
 * ```
 *
 * @module
 */
export { SystemClock, WALL_CLOCK_DRIFT_US_MAX } from "../node/system_clock.ts";
