/**
 * The `Clock` seam. Only `targets/` read the system clock; everything in `src/` gets time
 * from here so a simulation can drive it.
 */
export interface Clock {
  /** Wall-clock time in microseconds since the Unix epoch. */
  nowUs(): number;
  /** Resolves after `ms` milliseconds of this clock's time. */
  sleep(ms: number): Promise<void>;
  /**
   * Resolves on a later turn of the event loop, after the I/O callbacks already waiting have
   * run: what long CPU work (building and persisting delta maps on the appliance) awaits
   * between its slices, so it does not hold up the ingest. Not time: the system clock uses a zero timer (on
   * Node at least 1 ms), a simulation may resolve it at once.
   */
  nextTurn(): Promise<void>;
}

/**
 * A clock moved by hand, for tests and simulation: `sleep` resolves when `advance` passes
 * its deadline.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(1_000_000);
 * clock.advanceUs(5);
 * clock.nowUs(); // 1_000_005
 * ```
 */
export class ManualClock implements Clock {
  #nowUs: number;
  #sleepers: { deadlineUs: number; resolve: () => void }[] = [];

  constructor(startUs = Date.UTC(2026, 10, 22, 10, 0, 0) * 1000) {
    this.#nowUs = startUs;
  }

  nowUs(): number {
    return this.#nowUs;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#sleepers.push({ deadlineUs: this.#nowUs + ms * 1000, resolve });
    });
  }

  /** At once (a microtask): a simulation has no I/O waiting behind the current turn. */
  nextTurn(): Promise<void> {
    return Promise.resolve();
  }

  /** Moves time forward (or, with a negative step, models a clock jump back). */
  advanceUs(stepUs: number): void {
    this.#nowUs += stepUs;
    const due = this.#sleepers.filter((s) => s.deadlineUs <= this.#nowUs);
    this.#sleepers = this.#sleepers.filter((s) => s.deadlineUs > this.#nowUs);
    for (const sleeper of due) sleeper.resolve();
  }
}
