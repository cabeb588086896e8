/**
 * An in-memory {@link DurableCell}. A `write` commits atomically just before its promise
 * resolves (one microtask after the call), so a crash taken while a write is in flight can
 * see the old value or, when a {@link Random} is given, either one; `crash()` without a
 * random keeps the last value whose write resolved.
 *
 * @example
 * ```ts
 * import { MemoryDurableCell } from "./memory_durable_cell.ts";
 *
 * const cell = new MemoryDurableCell();
 * await cell.write(new Uint8Array([1, 2, 3]));
 * const survivor = cell.crash();
 * await survivor.read(); // Uint8Array [1, 2, 3]
 * ```
 */
import type { DurableCell } from "./durable_cell.ts";
import type { Random } from "./random.ts";

/** Faults a test can arm; each fires once then disarms. */
export interface MemoryDurableCellFaults {
  /** The next `write` rejects (and changes nothing). */
  failNextWrite?: boolean;
}

/** The in-memory durable cell; see the module doc. */
export class MemoryDurableCell implements DurableCell {
  /** Faults armed by a test. */
  readonly faults: MemoryDurableCellFaults = {};
  /** Counters, for tests that check how often the cell was written. */
  readonly stats = { writes: 0, bytesWritten: 0 };
  #value: Uint8Array | null;
  /** The newest write that was called but has not resolved yet. */
  #inFlight: Uint8Array | null = null;
  #closed = false;

  /** @param initial the value a first `read` returns (copied), `null` for an empty cell. */
  constructor(initial: Uint8Array | null = null) {
    this.#value = initial === null ? null : initial.slice();
  }

  async read(): Promise<Uint8Array | null> {
    this.#checkOpen();
    return this.#value === null ? null : this.#value.slice();
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (this.faults.failNextWrite) {
      this.faults.failNextWrite = false;
      throw new Error("Injected durable cell write failure");
    }
    const copy = bytes.slice();
    this.#inFlight = copy;
    await Promise.resolve();
    // A crash in between closed this cell: the write did not (knowingly) happen.
    if (this.#closed) throw new Error("Cannot finish the write: the durable cell crashed");
    this.#value = copy;
    if (this.#inFlight === copy) this.#inFlight = null;
    this.stats.writes++;
    this.stats.bytesWritten += copy.length;
  }

  /**
   * Simulates power loss: returns a new cell holding the last value whose write resolved, or,
   * if a write is in flight and `random` is given, the in-flight value half of the time.
   * This cell is closed afterwards, like a process that died.
   */
  crash(random?: Random): MemoryDurableCell {
    let survivor = this.#value;
    if (this.#inFlight !== null && random !== undefined && random.nextUint32() % 2 === 1) {
      survivor = this.#inFlight;
    }
    this.#closed = true;
    return new MemoryDurableCell(survivor);
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use the durable cell: it is closed");
  }
}
