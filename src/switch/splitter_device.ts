/**
 * The switch's write path as a {@link BlockDevice}: what the NBD server serves read-write
 * under a protected volume's name (SPEC.md, "NBD": "A write is acknowledged after the
 * primary has it (and, if it dirtied a clean region, after the dirty region log is
 * durable)"). Every call goes to the {@link Splitter}, which already checks ranges, orders
 * overlapping writes, keeps the DRL and copies each write to the appliance; this adapter only
 * gives it the seam's shape (nbdkit: a filter overrides only what it changes).
 *
 * - `write(..., {fua})` hands `fua` to the splitter, which hands it to the primary's write:
 *   the write is durable on the primary when it resolves. `flush` flushes the primary.
 *   The product's primaries (`FileBlockDevice`, `MemoryBlockDevice`) honour both.
 * - One splitter serves many connections: each connection gets its own adapter, and
 *   `close()` ends only that adapter (later calls reject); the splitter outlives it.
 *
 * @example
 * ```ts
 * import { ManualClock } from "../io/clock.ts";
 * import { MemoryBlockDevice } from "../io/memory_block_device.ts";
 * import { MemoryDurableCell } from "../io/memory_durable_cell.ts";
 * import { Splitter } from "./splitter.ts";
 * import { SplitterDevice } from "./splitter_device.ts";
 *
 * const splitter = await Splitter.open(
 *   { primary: new MemoryBlockDevice(1 << 20), drlCell: new MemoryDurableCell(), clock: new ManualClock() },
 *   { name: "db" },
 * );
 * const device = new SplitterDevice(splitter);
 * await device.write(0, new Uint8Array(4096).fill(1), { fua: true }); // primary has it, copy seq 1 kept
 * await device.close(); // the splitter keeps running
 * ```
 *
 * @module
 */
import type { BlockDevice, BlockDeviceCapabilities, WriteOptions } from "../io/block_device.ts";
import type { Splitter } from "./splitter.ts";

const splitterCapabilities: BlockDeviceCapabilities = { writable: true, flush: true, fua: true };

/** A protected volume, as hosts see it; see the module doc. */
export class SplitterDevice implements BlockDevice {
  readonly capabilities = splitterCapabilities;
  readonly #splitter: Splitter;
  #closed = false;

  constructor(splitter: Splitter) {
    this.#splitter = splitter;
  }

  /** The volume's name (the NBD export name). */
  get name(): string {
    return this.#splitter.name;
  }

  get sizeBytes(): number {
    return this.#splitter.sizeBytes;
  }

  /** Reads the primary (not ordered against writes in flight, as NBD allows). */
  read(offsetBytes: number, target: Uint8Array): Promise<void> {
    if (this.#closed) return this.#rejectClosed();
    return this.#splitter.read(offsetBytes, target);
  }

  /**
   * The host write: resolves once the primary has it (durably with `fua`) and the DRL covers
   * it. Errors are the splitter's (`RangeError`, `SplitterBusyError`, `PrimaryWriteError`, ...).
   */
  write(offsetBytes: number, source: Uint8Array, options?: WriteOptions): Promise<void> {
    if (this.#closed) return this.#rejectClosed();
    return this.#splitter.write(offsetBytes, source, options);
  }

  flush(): Promise<void> {
    if (this.#closed) return this.#rejectClosed();
    return this.#splitter.flush();
  }

  /** Ends this adapter; the splitter and its primary stay open. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #rejectClosed(): Promise<never> {
    return Promise.reject(new Error(`Cannot use volume "${this.#splitter.name}" here: its device is closed`));
  }
}
