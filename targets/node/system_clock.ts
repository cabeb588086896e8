/**
 * The system {@link Clock}: wall-clock microseconds with sub-millisecond precision.
 *
 * `Date.now()` gives wall time in whole milliseconds; `performance.now()` gives a monotonic
 * clock with microsecond precision. `nowUs` reads the monotonic clock from an origin anchored
 * on the wall clock, and re-anchors when the two part by more than
 * {@link WALL_CLOCK_DRIFT_US_MAX} (the wall clock was stepped, or NTP slewed it). Times never
 * go backwards within a process: after a backward step `nowUs` holds still until the wall
 * clock catches up, so journal record times stay ordered along `seq` and a search by time
 * stays a binary search. A forward step is followed at once.
 *
 * This file uses only Web-standard globals (`Date`, `performance`, `setTimeout`), so the Deno
 * target re-exports it.
 *
 * @example
 * ```ts
 * import { SystemClock } from "./system_clock.ts";
 *
 * const clock = new SystemClock();
 * const startUs = clock.nowUs();
 * await clock.sleep(10);
 * clock.nowUs() - startUs; // about 10_000
 * ```
 */
import type { Clock } from "../../src/io/clock.ts";

/** How far the monotonic estimate may part from the wall clock before it is re-anchored. */
export const WALL_CLOCK_DRIFT_US_MAX = 2_000;

/** The system clock; see the module doc. */
export class SystemClock implements Clock {
  /** Wall time in µs at `performance.now() === 0`, as last anchored. */
  #originUs: number;
  #lastUs = 0;

  constructor() {
    this.#originUs = anchorOriginUs();
  }

  /** Wall-clock microseconds since the Unix epoch; never less than an earlier result. */
  nowUs(): number {
    const monotonicUs = performance.now() * 1000;
    let estimateUs = this.#originUs + monotonicUs;
    // Date.now() floors to the millisecond: the true time is in [wallMs, wallMs + 1) ms.
    const wallMidUs = Date.now() * 1000 + 500;
    if (Math.abs(estimateUs - wallMidUs) > WALL_CLOCK_DRIFT_US_MAX) {
      this.#originUs = wallMidUs - monotonicUs;
      estimateUs = wallMidUs;
    }
    const nowUs = Math.max(this.#lastUs, Math.floor(estimateUs));
    this.#lastUs = nowUs;
    return nowUs;
  }

  /**
   * Resolves after `ms` milliseconds (a timer: not before, perhaps a little after).
   *
   * @throws {RangeError} when `ms` is negative or not finite.
   */
  sleep(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) {
      return Promise.reject(new RangeError(`Cannot sleep ${ms} ms: not a finite, non-negative number`));
    }
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Resolves on a later turn of the event loop: a zero timer (Node holds it at least 1 ms). */
  nextTurn(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** The wall time at the monotonic clock's zero, to within half a millisecond. */
function anchorOriginUs(): number {
  return Date.now() * 1000 + 500 - performance.now() * 1000;
}
