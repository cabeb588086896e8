/**
 * A {@link DurableCell} whose writes wait until the test finishes or fails them, one at a
 * time, in call order: lets a test hold a DRL persist in flight, look at what was written,
 * and decide the outcome. Also reports the most writes it ever had in flight at once.
 */
import type { DurableCell } from "../../src/io/durable_cell.ts";

interface PendingWrite {
  bytes: Uint8Array;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GatedDurableCell implements DurableCell {
  /** The value a `read` returns: the last write finished successfully. */
  value: Uint8Array | null;
  /** Every write called, in call order (copies). */
  readonly written: Uint8Array[] = [];
  /** The most writes ever in flight at once. */
  inFlightMax = 0;
  readonly #pending: PendingWrite[] = [];

  constructor(initial: Uint8Array | null = null) {
    this.value = initial === null ? null : initial.slice();
  }

  get pendingCount(): number {
    return this.#pending.length;
  }

  read(): Promise<Uint8Array | null> {
    return Promise.resolve(this.value === null ? null : this.value.slice());
  }

  write(bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    this.written.push(copy);
    return new Promise((resolve, reject) => {
      this.#pending.push({ bytes: copy, resolve, reject });
      this.inFlightMax = Math.max(this.inFlightMax, this.#pending.length);
    });
  }

  /** Commits the oldest pending write and resolves it; then lets promise callbacks run. */
  async finishNext(): Promise<void> {
    const write = this.#pending.shift();
    if (write === undefined) throw new Error("No write is pending");
    this.value = write.bytes;
    write.resolve();
    await settle();
  }

  /** Rejects the oldest pending write (the value stays); then lets promise callbacks run. */
  async failNext(error = new Error("Injected gated cell failure")): Promise<void> {
    const write = this.#pending.shift();
    if (write === undefined) throw new Error("No write is pending");
    write.reject(error);
    await settle();
  }
}

/** Lets every queued promise callback run (a macrotask turn drains the microtask queue). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
