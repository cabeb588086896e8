/**
 * The splitter: one protected volume's write path on the switch (seed 004 [0043]-[0046],
 * seed 003 [0045]-[0053], SPEC.md guarantees 2, 3 and 5).
 *
 * A host write goes through these steps:
 * 1. Its range is checked once, at the boundary: whole I/O or an error, nothing changed.
 * 2. It takes a slot of the fixed in-flight table (`switchLimits.splitterInFlightMax`); a host
 *    with more writes in flight waits in a bounded FIFO (`splitterQueuedWritesMax`), past
 *    which it is refused with {@link SplitterBusyError}.
 * 3. DRL: two holds are begun on its regions, one for the primary write and one for the copy,
 *    and if a bit is not yet durable the DRL is persisted before anything else happens (seed
 *    003 [0049]); a failed persist fails the host write. Each hold ends on its own: the primary
 *    hold when the primary write settles, the copy hold when the appliance acknowledges the
 *    copy (or at once when no copy is kept). So a region's bit can only be reset once both
 *    the primary and the appliance have the write ([0050]: a clear bit must never lie).
 * 4. Copy: while `protecting`, the write gets the next seq and a copy in the {@link CopyBuffer},
 *    and the link is told. When it does not fit: `onFull: "mark"` drops to `marking` (no
 *    copies, DRL resets disabled, a gap to record later); `onFull: "wait"` holds the write in
 *    FIFO order until acknowledgements free room. Seqs go only to records of the copy stream
 *    (copied writes and markers), so the appliance's seqs stay gapless.
 * 5. Ordering: the write is issued to the primary only after every earlier-ordered in-flight
 *    write overlapping it has settled, so for overlapping writes the primary sees them in
 *    the journal's (seq) order. The order is fixed synchronously in step 4.
 * 6. Primary write; the host is acknowledged when it resolves. When it fails, the host gets a
 *    {@link PrimaryWriteError} and, if the write was copied, a `primaryWriteError` marker
 *    naming its seq follows it in the copy stream (seed 004 [0044], [0046]).
 *
 * Markers (snapshot, gap, primaryWriteError) share the seq with writes and sit in a small
 * fixed ring (`splitterMarkersMax`) until acknowledged; the copy buffer holds only writes.
 *
 * Gaps are recorded, never silent (guarantee 3): leaving marking mode queues a `gap` marker
 * (reason "marking mode"), and a switch that restarts with dirty DRL bits starts with a `gap`
 * marker (reason "switch restart") as its first record. After a gap the volume needs resync
 * ({@link Splitter.needsResync}); the DRL stays out of sync until resync (a later issue) says so.
 *
 * @example
 * ```ts
 * import { ManualClock } from "../io/clock.ts";
 * import { MemoryBlockDevice } from "../io/memory_block_device.ts";
 * import { MemoryDurableCell } from "../io/memory_durable_cell.ts";
 * import { Splitter } from "./splitter.ts";
 *
 * const splitter = await Splitter.open(
 *   { primary: new MemoryBlockDevice(1 << 20), drlCell: new MemoryDurableCell(), clock: new ManualClock() },
 *   { name: "db", regionBytes: 65536, bufferBytes: 1 << 20 },
 * );
 * await splitter.write(4096, new Uint8Array(4096).fill(1)); // primary written, copy seq 1 kept
 * splitter.acknowledge(1); // the appliance holds seq 1 durably: copy released
 * ```
 */
import { assert } from "../core/assert.ts";
import { type Checksum, createChecksum } from "../core/checksum.ts";
import { limits, switchLimits } from "../core/limits.ts";
import { assertBlockRange, type BlockDevice, type WriteOptions } from "../io/block_device.ts";
import type { Clock } from "../io/clock.ts";
import type { DurableCell } from "../io/durable_cell.ts";
import type { MarkDetailValue, MarkKind } from "../wire/messages.ts";
import { CopyBuffer } from "./copy_buffer.ts";
import { DirtyRegionLog, ResetPolicy } from "./dirty_region_log.ts";
import type { RestoreSession } from "./restore_session.ts";

/** The splitter's states. */
export const splitterStates = {
  /** Writes are copied into the copy buffer and streamed. */
  protecting: "protecting",
  /** The copy buffer overflowed (or a marker could not be queued): only the DRL covers writes. */
  marking: "marking",
  /** `close()` was called: writes are refused. */
  closed: "closed",
} as const;

export type SplitterState = typeof splitterStates[keyof typeof splitterStates];

/** What a full copy buffer does to a host write (`anytime switch --on-full`). */
export type OnFull = "mark" | "wait";

/** Base class of the splitter's operating errors. */
export class SplitterError extends Error {
  override name = "SplitterError";
}

/** The primary refused the write; the host must see an error (`cause`: the device's error). */
export class PrimaryWriteError extends SplitterError {
  override name = "PrimaryWriteError";
}

/** Too many host writes are in flight and queued; retry later. */
export class SplitterBusyError extends SplitterError {
  override name = "SplitterBusyError";
}

/**
 * The appliance's durable seq cannot be continued: it lost records this splitter had already
 * copied under seqs it cannot give again. Needs an operator (resync with a new journal).
 */
export class SplitterResumeError extends SplitterError {
  override name = "SplitterResumeError";
}

/** The splitter was closed. */
export class SplitterClosedError extends SplitterError {
  override name = "SplitterClosedError";
}

/** Dependencies of {@link Splitter.open}. */
export interface SplitterDeps {
  /** The primary volume. */
  primary: BlockDevice;
  /** Where the DRL is kept (on the switch's state directory). */
  drlCell: DurableCell;
  clock: Clock;
  checksum?: Checksum;
}

/** Options of {@link Splitter.open}. */
export interface SplitterOptions {
  /** The volume's name on the appliance. */
  name: string;
  /** DRL region size (`--region`); default 1 MiB. */
  regionBytes?: number;
  /** Copy buffer size (`--buffer`); default 64 MiB. */
  bufferBytes?: number;
  /** Make the copy buffer resident at open (see {@link CopyBuffer}'s `touch`); default false. */
  touchBuffer?: boolean;
  /** `--on-full`; default `"mark"`. */
  onFull?: OnFull;
  /** The first seq to give (the appliance's durableSeq + 1); default 1. */
  nextSeq?: number;
  /** When {@link Splitter.maintain} resets the DRL; default `new ResetPolicy()` (every 30 s). */
  resetPolicy?: ResetPolicy;
  /**
   * The switch protects this volume for the first time (its DRL cell is empty): `"initial
   * copy"` when the primary holds data the appliance has never seen — every region starts
   * dirty and a `gap` (reason "initial copy") makes the volume need resync, which journals the
   * whole primary (the initial full copy; images before it ends are suspect); `"empty"` when
   * the primary was created now (all zeros, as the appliance's base is).
   */
  firstStart?: "initial copy" | "empty";
}

/** A queued marker, as the link sends it. */
export interface SplitterMarker {
  readonly seq: number;
  readonly timeUs: number;
  readonly kind: MarkKind;
  readonly detail: { readonly [key: string]: MarkDetailValue };
}

/**
 * What a splitter has done since it opened ({@link Splitter.counters}); the switch's metrics
 * (`GET /metrics`) show them per volume. All only grow.
 */
export interface SplitterCounters {
  /** Host writes the primary took (acknowledged to the host). */
  readonly hostWrites: number;
  /** Their bytes. */
  readonly hostWriteBytes: number;
  /** Host writes the primary refused (each a `primaryWriteError` marker or inside a gap). */
  readonly primaryWriteErrors: number;
  /** Host writes copied for the appliance. */
  readonly copiedWrites: number;
  /**
   * Host writes held because the copy buffer was full (`--on-full=wait`), and the time they
   * waited in all: the cost protection put on the host when the appliance could not keep up.
   */
  readonly bufferWaits: number;
  readonly bufferWaitSeconds: number;
  /** Host writes left to the DRL alone (marking mode): the resync repairs their regions. */
  readonly missedWrites: number;
  /** Times the splitter dropped to marking mode. */
  readonly markingEntries: number;
}

/** See the module doc. */
export class Splitter {
  readonly name: string;
  readonly onFull: OnFull;
  readonly #primary: BlockDevice;
  readonly #drl: DirtyRegionLog;
  readonly #copyBuffer: CopyBuffer;
  readonly #clock: Clock;
  #state: SplitterState = splitterStates.protecting;
  #nextSeq: number;
  /** The appliance holds every seq up to this one durably. */
  #acknowledgedSeq: number;
  /** Whether `nextSeq` is known to continue the appliance's journal (given, or learnt in `resume`). */
  #anchored: boolean;
  /** The highest seq ever appended to the copy buffer (it refuses smaller seqs forever). */
  #highestCopiedSeq = 0;
  #needsResync = false;
  #linkUp = false;
  #recordListener: (() => void) | null = null;
  readonly #resetPolicy: ResetPolicy;
  #lastResetUs: number;

  // The in-flight table: one slot per host write between admission and primary completion.
  readonly #slotActive: Uint8Array;
  readonly #slotOffsetsBytes: Float64Array;
  readonly #slotLengthsBytes: Float64Array;
  /** The order fixed at the copy step (Infinity before): overlapping writes reach the primary in it. */
  readonly #slotOrders: Float64Array;
  /** The seq the copy got, or -1 (not copied, or not yet). */
  readonly #slotSeqs: Float64Array;
  readonly #slotTimesUs: Float64Array;
  readonly #slotData: (Uint8Array | null)[];
  /** Settles when the slot's primary write settles; made only once a later overlapping write waits for it. */
  readonly #slotDone: (Promise<void> | null)[];
  readonly #slotDoneResolve: ((() => void) | null)[];
  /** Wakes a write waiting for copy-buffer room (its copy was made by the waker). */
  readonly #slotWake: ((() => void) | null)[];
  readonly #freeSlots: Int32Array;
  #freeSlotCount: number;
  /**
   * The slots in use, densely packed (and each one's position in it), so the overlap scan of
   * step 5 visits the writes in flight instead of the whole table: at queue depth 32 that is
   * 32 slots, not `splitterInFlightMax`.
   */
  readonly #activeSlots: Int32Array;
  readonly #activeSlotPositions: Int32Array;
  #activeSlotCount = 0;
  #nextOrder = 0;
  /** Writes waiting for a slot: FIFO ring of resolvers handed a slot index. */
  readonly #slotWaiters: (((slot: number) => void) | null)[];
  #slotWaitersHead = 0;
  #slotWaitersCount = 0;
  /** Writes waiting for copy-buffer room (`onFull: "wait"`): FIFO ring of slot indices. */
  readonly #spaceWaiters: Int32Array;
  #spaceWaitersHead = 0;
  #spaceWaitersCount = 0;

  // The marker ring: queued markers in seq order, released by acknowledgements.
  readonly #markers: (SplitterMarker | null)[];
  #markersHead = 0;
  #markersCount = 0;

  // Restore (see `attachRestore`): host I/O goes through the session first, or waits.
  #restore: { session: RestoreSession; instant: boolean } | null = null;
  #resyncing = false;
  /** While set, new host writes wait here (bounded: `splitterQueuedWritesMax` waiters). */
  #hostGate: { promise: Promise<void>; open: () => void; waiters: number } | null = null;

  // Marking mode bookkeeping, for the gap marker.
  #markingSinceUs = 0;
  #markingAfterSeq = 0;
  #missedWriteCount = 0;

  // Counters (see SplitterCounters): plain numbers, fixed at open.
  #hostWrites = 0;
  #hostWriteBytes = 0;
  #primaryWriteErrors = 0;
  #copiedWrites = 0;
  #bufferWaits = 0;
  #bufferWaitUs = 0;
  #missedWritesTotal = 0;
  #markingEntries = 0;

  private constructor(
    deps: { primary: BlockDevice; drl: DirtyRegionLog; clock: Clock; checksum: Checksum },
    options: {
      name: string;
      bufferBytes: number;
      touchBuffer: boolean;
      onFull: OnFull;
      nextSeq: number;
      anchored: boolean;
      resetPolicy: ResetPolicy;
    },
  ) {
    this.name = options.name;
    this.onFull = options.onFull;
    this.#primary = deps.primary;
    this.#drl = deps.drl;
    this.#clock = deps.clock;
    this.#copyBuffer = new CopyBuffer(options.bufferBytes, { touch: options.touchBuffer, checksum: deps.checksum });
    this.#nextSeq = options.nextSeq;
    this.#acknowledgedSeq = options.nextSeq - 1;
    this.#anchored = options.anchored;
    this.#resetPolicy = options.resetPolicy;
    this.#lastResetUs = deps.clock.nowUs();
    const slots = switchLimits.splitterInFlightMax;
    this.#slotActive = new Uint8Array(slots);
    this.#slotOffsetsBytes = new Float64Array(slots);
    this.#slotLengthsBytes = new Float64Array(slots);
    this.#slotOrders = new Float64Array(slots).fill(Infinity);
    this.#slotSeqs = new Float64Array(slots).fill(-1);
    this.#slotTimesUs = new Float64Array(slots);
    this.#slotData = new Array(slots).fill(null);
    this.#slotDone = new Array(slots).fill(null);
    this.#slotDoneResolve = new Array(slots).fill(null);
    this.#slotWake = new Array(slots).fill(null);
    this.#freeSlots = new Int32Array(slots);
    for (let slot = 0; slot < slots; slot++) this.#freeSlots[slot] = slots - 1 - slot;
    this.#freeSlotCount = slots;
    this.#activeSlots = new Int32Array(slots);
    this.#activeSlotPositions = new Int32Array(slots);
    this.#slotWaiters = new Array(switchLimits.splitterQueuedWritesMax).fill(null);
    this.#spaceWaiters = new Int32Array(slots);
    this.#markers = new Array(switchLimits.splitterMarkersMax).fill(null);
  }

  /**
   * Opens the splitter of one volume: loads (or creates) its DRL and allocates the copy
   * buffer and tables. A DRL with dirty bits means the switch stopped with writes not known
   * to be on the appliance: the volume starts needing resync, and a `gap` marker (reason
   * "switch restart") is its first record.
   *
   * @throws {RangeError} for bad options.
   * @throws {DirtyRegionLogError} when the DRL cannot be opened.
   */
  static async open(deps: SplitterDeps, options: SplitterOptions): Promise<Splitter> {
    const onFull = options.onFull ?? "mark";
    if (onFull !== "mark" && onFull !== "wait") {
      throw new RangeError(`Cannot open splitter "${options.name}" with onFull "${onFull}": it must be "mark" or "wait"`);
    }
    if (typeof options.name !== "string" || options.name.length === 0) {
      throw new RangeError(`Cannot open a splitter named "${options.name}": the name must be a non-empty string`);
    }
    const nextSeq = options.nextSeq ?? 1;
    if (!Number.isSafeInteger(nextSeq) || nextSeq < 1) {
      throw new RangeError(`Cannot open splitter "${options.name}" at seq ${nextSeq}: it must be a positive integer`);
    }
    const bufferBytes = options.bufferBytes ?? switchLimits.copyBufferBytesDefault;
    const checksum = deps.checksum ?? await createChecksum();
    const geometry = { sizeBytes: deps.primary.sizeBytes, regionBytes: options.regionBytes ?? switchLimits.drlRegionBytesDefault };
    const drl = options.firstStart === "initial copy"
      ? await DirtyRegionLog.recreateAllDirty(deps.drlCell, geometry, { checksum })
      : options.firstStart === "empty"
      ? await DirtyRegionLog.createClean(deps.drlCell, geometry, { checksum })
      : await DirtyRegionLog.open(deps.drlCell, geometry, { checksum });
    const splitter = new Splitter(
      { primary: deps.primary, drl, clock: deps.clock, checksum },
      {
        name: options.name,
        bufferBytes,
        touchBuffer: options.touchBuffer === true,
        onFull,
        nextSeq,
        anchored: options.nextSeq !== undefined,
        resetPolicy: options.resetPolicy ?? new ResetPolicy(),
      },
    );
    if (drl.dirtyCount > 0) {
      // The DRL on disk covers every region that may differ: resync must compare them.
      splitter.#needsResync = true;
      const reason = options.firstStart === "initial copy" ? "initial copy" : "switch restart";
      const seq = splitter.#queueMarker("gap", { reason, dirtyRegions: drl.dirtyCount });
      assert(seq >= 0, "The first marker always fits");
    } else {
      // seed 003 [0051]: a clean DRL with nothing in flight is in sync; resets may clear bits.
      drl.setInSync(true);
    }
    return splitter;
  }

  // -------------------------------------------------------------------------------------
  // State for metrics and the link

  get state(): SplitterState {
    return this.#state;
  }

  /** The seq the next record (copied write or marker) gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** The appliance holds every seq up to this one durably. */
  get acknowledgedSeq(): number {
    return this.#acknowledgedSeq;
  }

  /** Whether a gap was recorded and the volume must be resynchronized (a later issue). */
  get needsResync(): boolean {
    return this.#needsResync;
  }

  get sizeBytes(): number {
    return this.#primary.sizeBytes;
  }

  get regionBytes(): number {
    return this.#drl.regionBytes;
  }

  /** The copy buffer (the same object for the splitter's life; its size never changes). */
  get copyBuffer(): CopyBuffer {
    return this.#copyBuffer;
  }

  /** The volume's DRL (for metrics, resync and tests). */
  get dirtyRegionLog(): DirtyRegionLog {
    return this.#drl;
  }

  get bufferUsedBytes(): number {
    return this.#copyBuffer.usedBytes;
  }

  get bufferFreeBytes(): number {
    return this.#copyBuffer.freeBytes;
  }

  get dirtyRegionCount(): number {
    return this.#drl.dirtyCount;
  }

  /** Records (copied writes and markers) not yet acknowledged by the appliance. */
  get unacknowledgedCount(): number {
    return this.#copyBuffer.entryCount + this.#markersCount;
  }

  /** A snapshot of the counters (a new object per call: for metrics, not the write path). */
  get counters(): SplitterCounters {
    return {
      hostWrites: this.#hostWrites,
      hostWriteBytes: this.#hostWriteBytes,
      primaryWriteErrors: this.#primaryWriteErrors,
      copiedWrites: this.#copiedWrites,
      bufferWaits: this.#bufferWaits,
      bufferWaitSeconds: this.#bufferWaitUs / 1e6,
      missedWrites: this.#missedWritesTotal,
      markingEntries: this.#markingEntries,
    };
  }

  /** Host writes between admission and primary completion, and writes queued for a slot. */
  get inFlightWriteCount(): number {
    return switchLimits.splitterInFlightMax - this.#freeSlotCount + this.#slotWaitersCount;
  }

  /** The switch time of the oldest unacknowledged record (lag / RPO), or undefined. */
  get oldestUnacknowledgedTimeUs(): number | undefined {
    let oldestUs: number | undefined;
    const oldestSeq = this.#copyBuffer.oldestSeq;
    if (oldestSeq !== undefined) {
      this.#copyBuffer.forEachFrom(oldestSeq, (entry) => {
        oldestUs = entry.timeUs;
        return false;
      });
    }
    const marker = this.#markers[this.#markersHead];
    if (this.#markersCount > 0 && marker !== null && (oldestUs === undefined || marker.timeUs < oldestUs)) {
      oldestUs = marker.timeUs;
    }
    return oldestUs;
  }

  /** The queued marker with this seq, if any (the link sends it as a MARK). */
  markerAt(seq: number): SplitterMarker | undefined {
    for (let position = 0; position < this.#markersCount; position++) {
      const marker = this.#markers[(this.#markersHead + position) % this.#markers.length];
      assert(marker !== null, "A queued marker slot is filled");
      if (marker.seq === seq) return marker;
    }
    return undefined;
  }

  /** The link's wake-up: called (synchronously) whenever a record is queued. One listener. */
  setRecordListener(listener: (() => void) | null): void {
    this.#recordListener = listener;
  }

  // -------------------------------------------------------------------------------------
  // The host side (BlockDevice-like)

  /** Passes through to the primary (reads are not ordered against writes in flight, as in NBD). */
  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    assertBlockRange(this.#primary.sizeBytes, offsetBytes, target.length);
    await this.#beforeHostIo(offsetBytes, target.length, false);
    await this.#primary.read(offsetBytes, target);
  }

  flush(): Promise<void> {
    return this.#primary.flush();
  }

  /**
   * The host write; see the module doc. Resolves once the primary has it (and the DRL
   * covers it durably). `data` must not change until it settles.
   *
   * @throws {RangeError} for an empty, misaligned, too long or out-of-volume range (nothing changes).
   * @throws {SplitterClosedError} after `close()`.
   * @throws {SplitterBusyError} when the in-flight table and its queue are full.
   * @throws {DirtyRegionLogError} when the DRL could not be made durable (nothing written).
   * @throws {PrimaryWriteError} when the primary refused the write.
   */
  async write(offsetBytes: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.#checkWrite(offsetBytes, data);
    if (this.#hostGate !== null) {
      await this.#waitAtGate();
      if (this.#state === splitterStates.closed) {
        throw new SplitterClosedError(`Cannot write to volume "${this.name}": the splitter closed while the write waited`);
      }
    }
    // The steps that usually finish at once are taken without an await (each await is a
    // microtask turn and a promise per host write).
    if (this.#restore !== null) await this.#beforeHostIo(offsetBytes, data.length, true);
    const slot = this.#freeSlotCount > 0 && this.#slotWaitersCount === 0
      ? this.#takeSlot(this.#freeSlots[--this.#freeSlotCount])
      : await this.#acquireSlot();
    try {
      await this.#writeInSlot(slot, offsetBytes, data, options);
    } finally {
      this.#releaseSlot(slot);
    }
  }

  /**
   * Queues a `snapshot` marker `{name}` after every write copied so far; returns its seq.
   *
   * @throws {RangeError} for an empty or too long name.
   * @throws {SplitterError} in marking mode (the point would lie inside a gap) or when the
   * marker ring is full.
   */
  snapshot(name: string): number {
    return this.#queueSnapshotMarker("snapshot", name);
  }

  /**
   * Queues a `snapshotRemoved` marker `{name}` after every write copied so far; returns its
   * seq. The appliance drops the name (the state stays reachable while inside the window).
   *
   * @throws {RangeError} for an empty or too long name.
   * @throws {SplitterError} in marking mode or when the marker ring is full.
   */
  snapshotRemoved(name: string): number {
    return this.#queueSnapshotMarker("snapshotRemoved", name);
  }

  #queueSnapshotMarker(kind: "snapshot" | "snapshotRemoved", name: string): number {
    const action = kind === "snapshot" ? "take" : "remove";
    const nameBytes = new TextEncoder().encode(name).length;
    if (nameBytes === 0 || nameBytes > limits.snapshotNameBytesMax) {
      throw new RangeError(`Cannot ${action} snapshot "${name}": the name must be 1 to ${limits.snapshotNameBytesMax} bytes`);
    }
    if (this.#state !== splitterStates.protecting) {
      throw new SplitterError(`Cannot ${action} snapshot "${name}" of volume "${this.name}": it is ${this.#state}`);
    }
    const seq = this.#queueMarker(kind, { name });
    if (seq < 0) {
      throw new SplitterError(
        `Cannot ${action} snapshot "${name}" of volume "${this.name}": ${switchLimits.splitterMarkersMax} markers wait for the appliance`,
      );
    }
    return seq;
  }

  /**
   * Refuses new writes. Writes in flight finish; writes waiting for copy-buffer room (they
   * would never get it now) and writes held at the restore gate are refused with
   * {@link SplitterClosedError}, nothing written.
   */
  close(): void {
    this.#state = splitterStates.closed;
    while (this.#spaceWaitersCount > 0) {
      const slot = this.#spaceWaiters[this.#spaceWaitersHead];
      this.#spaceWaitersHead = (this.#spaceWaitersHead + 1) % this.#spaceWaiters.length;
      this.#spaceWaitersCount--;
      const wake = this.#slotWake[slot];
      this.#slotWake[slot] = null;
      wake?.(); // not copied: the writer sees it and refuses
    }
    this.resumeHostWrites();
  }

  // -------------------------------------------------------------------------------------
  // Restore (src/switch/restore_session.ts; orchestrated by the process that runs the job)

  /** True while a restore session is attached. */
  get restoring(): boolean {
    return this.#restore !== null;
  }

  /** Whether the attached restore lets hosts read and write meanwhile. */
  get restoringInstantly(): boolean {
    return this.#restore?.instant ?? false;
  }

  /**
   * Holds new host writes (they wait, up to `splitterQueuedWritesMax` of them, then are
   * refused busy) until {@link resumeHostWrites}: a restore fixes its point while nothing moves.
   */
  pauseHostWrites(): void {
    if (this.#hostGate !== null) return;
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.#hostGate = { promise, open, waiters: 0 };
  }

  resumeHostWrites(): void {
    const gate = this.#hostGate;
    this.#hostGate = null;
    gate?.open();
  }

  /**
   * Routes host I/O through a restore session: with `instant`, a read or write first restores
   * the chunks it touches (so a host write lands on restored data, never under it); without,
   * host I/O is refused until {@link detachRestore}.
   */
  attachRestore(session: RestoreSession, options: { instant: boolean }): void {
    assert(this.#restore === null, `Volume "${this.name}" has one restore at a time`);
    assert(this.inFlightWriteCount === 0, "A restore starts with no host write in flight");
    this.#restore = { session, instant: options.instant };
  }

  detachRestore(): void {
    this.#restore = null;
  }

  /**
   * Queues a marker of the copy stream (a restore, or the gap a failed restore leaves) and
   * returns its seq. A gap or a failed restore makes the volume need resync.
   *
   * @throws {SplitterError} in marking mode or when the marker ring is full.
   */
  recordMarker(kind: "restore" | "gap" | "fixupStart" | "fixupEnd", detail: { [key: string]: MarkDetailValue }): number {
    if (this.#state !== splitterStates.protecting) {
      throw new SplitterError(`Cannot record a ${kind} marker for volume "${this.name}": it is ${this.#state}`);
    }
    const seq = this.#queueMarker(kind, detail);
    if (seq < 0) {
      throw new SplitterError(
        `Cannot record a ${kind} marker for volume "${this.name}": ${switchLimits.splitterMarkersMax} markers wait for the appliance`,
      );
    }
    if (kind === "gap") {
      this.#needsResync = true;
      this.#drl.setInSync(false);
    }
    return seq;
  }

  async #waitAtGate(): Promise<void> {
    const gate = this.#hostGate;
    if (gate === null) return;
    if (gate.waiters >= switchLimits.splitterQueuedWritesMax) {
      throw new SplitterBusyError(`Cannot accept a write to volume "${this.name}": ${gate.waiters} writes wait for a restore to start`);
    }
    gate.waiters++;
    try {
      await gate.promise;
    } finally {
      gate.waiters--;
    }
  }

  /** Host I/O during a restore: restore the range first (instant), or refuse. */
  async #beforeHostIo(offsetBytes: number, lengthBytes: number, forWrite: boolean): Promise<void> {
    const restore = this.#restore;
    if (restore === null) return;
    if (!restore.instant) {
      throw new SplitterError(`Cannot serve host I/O on volume "${this.name}": it is being restored (use --instant to keep it usable)`);
    }
    await restore.session.prepare(offsetBytes, lengthBytes, forWrite);
  }

  // -------------------------------------------------------------------------------------
  // Resync (seed 003 [0049]-[0053], seed 002): bring the journal back in line with the primary

  /** True while {@link resync} runs. */
  get resyncing(): boolean {
    return this.#resyncing;
  }

  /**
   * Journals the primary's content of every dirty region (every region with `full`, the
   * re-baseline) as fix-up records between `fixupStart` and `fixupEnd` markers: after the
   * fix-up end, the journal's head equals the primary again and the suspect interval of the
   * gaps before it closes. Each region is read with host writes held back for a moment (the
   * writes in flight finish first), so its record sits after every write the primary had and
   * before every later one. Fix-up records are not written to the primary (they come from it).
   * The DRL stays set over each region until the appliance acknowledges its fix-up; once the
   * fix-up end is acknowledged the caller ends the resync with {@link finishResync}.
   *
   * With `compare` (DESIGN "Resync": compare first, move only what differs), each piece of a
   * region is first read with host writes held back at seq S (every write the primary has),
   * and once the appliance holds S durably, `compare` says whether its image at S equals
   * those bytes: then no fix-up is needed there (later writes reach the journal as usual).
   *
   * @returns the seq of the fix-up end marker and what moved (and what matched).
   * @throws {SplitterError} when not protecting (the link must carry the records), or while a
   *   restore or another resync runs.
   */
  async resync(options: {
    full?: boolean;
    onProgress?: (progress: { regionsDone: number; regionsTotal: number; bytesMoved: number }) => void;
    cancelled?: () => boolean;
    compare?: (offsetBytes: number, primary: Uint8Array, atSeq: number) => Promise<boolean>;
  } = {}): Promise<{ fixupEndSeq: number; regions: number; bytesMoved: number; bytesMatched: number; cancelled: boolean }> {
    if (this.#state !== splitterStates.protecting || this.#restore !== null || this.#resyncing) {
      throw new SplitterError(
        `Cannot resync volume "${this.name}" now: it is ${this.#resyncing ? "resyncing" : this.#restore !== null ? "restoring" : this.#state}`,
      );
    }
    this.#resyncing = true;
    try {
      if (options.full === true) {
        this.#drl.markAllDirty();
        await this.#drl.persist();
      }
      const regions: number[] = [];
      this.#drl.forEachDirtyRegion((regionIndex) => void regions.push(regionIndex));
      this.recordMarker("fixupStart", { regions: regions.length, full: options.full === true });
      const pieceBytesMax = Math.min(limits.writeBytesMax, this.#copyBuffer.bytesMax / 4);
      const buffer = new Uint8Array(Math.min(this.#drl.regionBytes, pieceBytesMax));
      let bytesMoved = 0;
      let bytesMatched = 0;
      let done = 0;
      for (const region of regions) {
        if (options.cancelled?.() === true) break;
        const regionStartBytes = region * this.#drl.regionBytes;
        const regionEndBytes = Math.min(regionStartBytes + this.#drl.regionBytes, this.#primary.sizeBytes);
        for (let offsetBytes = regionStartBytes; offsetBytes < regionEndBytes; offsetBytes += buffer.length) {
          const piece = buffer.subarray(0, Math.min(buffer.length, regionEndBytes - offsetBytes));
          if (options.compare !== undefined) {
            const atSeq = await this.#readQuiesced(offsetBytes, piece);
            await this.#untilAcknowledged(atSeq);
            if (await options.compare(offsetBytes, piece, atSeq)) {
              bytesMatched += piece.length;
              continue;
            }
          }
          await this.#journalFromPrimary(offsetBytes, piece);
          bytesMoved += piece.length;
        }
        done++;
        options.onProgress?.({ regionsDone: done, regionsTotal: regions.length, bytesMoved });
      }
      const cancelled = done < regions.length;
      const fixupEndSeq = cancelled ? -1 : this.recordMarker("fixupEnd", { regions: regions.length, bytes: bytesMoved, matched: bytesMatched });
      return { fixupEndSeq, regions: regions.length, bytesMoved, bytesMatched, cancelled };
    } finally {
      this.#resyncing = false;
    }
  }

  /** After the appliance acknowledged the fix-up end: in sync again (seed 003 [0051]: resets resume). */
  finishResync(): void {
    if (this.#state !== splitterStates.protecting) return;
    this.#needsResync = false;
    this.#drl.setInSync(true);
    this.#queueMarker("inSync", {});
  }

  /** Reads the primary at `offsetBytes` while no host write moves; returns the seq it matches (every write copied so far). */
  async #readQuiesced(offsetBytes: number, piece: Uint8Array): Promise<number> {
    this.pauseHostWrites();
    try {
      while (this.inFlightWriteCount > 0) await this.#clock.sleep(0);
      await this.#primary.read(offsetBytes, piece);
      return this.#nextSeq - 1;
    } finally {
      this.resumeHostWrites();
    }
  }

  /** Waits until the appliance holds `seq` durably (while the link carries the records). */
  async #untilAcknowledged(seq: number): Promise<void> {
    while (this.#acknowledgedSeq < seq) {
      if (this.#state !== splitterStates.protecting) {
        throw new SplitterError(`Cannot resync volume "${this.name}": it dropped to ${this.#state}`);
      }
      await this.#clock.sleep(1);
    }
  }

  /** One fix-up record: the primary's bytes at `offsetBytes`, read while no host write moves. */
  async #journalFromPrimary(offsetBytes: number, piece: Uint8Array): Promise<void> {
    for (;;) {
      // Room first (acknowledgements free it), so the gate is held only for the read.
      while (this.#copyBuffer.freeBytes < piece.length) {
        if (this.#state !== splitterStates.protecting) {
          throw new SplitterError(`Cannot resync volume "${this.name}": it dropped to ${this.#state}`);
        }
        await this.#clock.sleep(1);
      }
      this.pauseHostWrites();
      try {
        while (this.inFlightWriteCount > 0) await this.#clock.sleep(0);
        // Writes admitted before the gate may have taken the room meanwhile: then wait again.
        if (this.#state !== splitterStates.protecting || this.#copyBuffer.freeBytes < piece.length) continue;
        await this.#primary.read(offsetBytes, piece);
        const seq = this.#nextSeq;
        const mustPersist = this.#drl.beginWrite(offsetBytes, piece.length); // ends at the acknowledgement
        try {
          if (mustPersist) await this.#drl.persist();
        } catch (error) {
          this.#drl.endWrite(offsetBytes, piece.length);
          throw error;
        }
        const appended = this.#copyBuffer.tryAppend({
          seq,
          timeUs: this.#clock.nowUs(),
          offsetBytes,
          data: piece,
        });
        assert(appended, "A fix-up record fits the room checked with host writes held");
        this.#nextSeq = seq + 1;
        this.#highestCopiedSeq = seq;
        this.#recordListener?.();
        return;
      } finally {
        this.resumeHostWrites();
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // The link side

  /**
   * The link is up and the appliance holds every seq through `durableSeq` (WELCOME). Held
   * records after it are sent again by the link. When the held records cannot continue the
   * appliance's journal (it lost acknowledged records, or the seqs never matched), they are
   * dropped and a `gap` marker is recorded instead: the DRL still covers their regions.
   *
   * @throws {SplitterResumeError} when that would mean giving a seq the copy buffer already used.
   */
  /**
   * Periodic upkeep, called by the process every second or so: when the reset policy says a
   * reset is due (seed 003 [0051]-[0053]: the trade-off between DRL write latency and resync
   * time), clears the DRL bits of regions with nothing in flight and persists. Does nothing
   * while out of sync (marking, or needing resync: the DRL refuses resets then).
   *
   * @returns how many regions were cleared.
   */
  async maintain(): Promise<number> {
    if (this.#state === splitterStates.closed) return 0;
    const nowUs = this.#clock.nowUs();
    const due = this.#resetPolicy.isDue({
      nowUs,
      lastResetUs: this.#lastResetUs,
      dirtyCount: this.#drl.dirtyCount,
      regionCount: this.#drl.regionCount,
    });
    if (!due || !this.#drl.resetsEnabled) return 0;
    this.#lastResetUs = nowUs;
    return await this.#drl.reset();
  }

  resume(durableSeq: number): void {
    assert(Number.isSafeInteger(durableSeq) && durableSeq >= -1, `Cannot resume at seq ${durableSeq}`);
    this.#linkUp = true;
    const oldestHeldSeq = this.#oldestHeldSeq();
    if (oldestHeldSeq === undefined) {
      // Nothing held: continue right after the appliance (a fresh start learns its seq here).
      if (durableSeq + 1 < this.#nextSeq && this.#anchored) {
        this.#restartSeqsWithGap(durableSeq, "appliance lost acknowledged records");
      } else {
        this.#nextSeq = durableSeq + 1;
        this.#acknowledgedSeq = durableSeq;
      }
    } else if (durableSeq + 1 < oldestHeldSeq || durableSeq >= this.#nextSeq ||
      (!this.#anchored && durableSeq + 1 !== oldestHeldSeq)) {
      this.#restartSeqsWithGap(durableSeq, this.#anchored ? "appliance lost acknowledged records" : "switch restart");
    } else {
      this.acknowledge(durableSeq);
    }
    this.#anchored = true;
    this.#maybeLeaveMarking();
  }

  /** The link is down: held records stay (that is what the buffer is for). */
  linkLost(): void {
    this.#linkUp = false;
  }

  /**
   * The appliance holds every seq through `durableSeq` durably (a cumulative ACK): the copies
   * are released, their DRL copy holds end, writers waiting for room are woken, and marking
   * mode may end.
   */
  acknowledge(durableSeq: number): void {
    if (!Number.isSafeInteger(durableSeq)) assert(false, `Cannot acknowledge seq ${durableSeq}`);
    if (durableSeq <= this.#acknowledgedSeq) return;
    if (durableSeq >= this.#nextSeq) assert(false, `The appliance acknowledged seq ${durableSeq}, never given (next ${this.#nextSeq})`);
    const oldestSeq = this.#copyBuffer.oldestSeq;
    if (oldestSeq !== undefined) {
      this.#copyBuffer.forEachFrom(oldestSeq, (entry) => {
        if (entry.seq > durableSeq) return false;
        this.#drl.endWrite(entry.offsetBytes, entry.lengthBytes);
      });
      this.#copyBuffer.releaseThrough(durableSeq);
    }
    while (this.#markersCount > 0) {
      const marker = this.#markers[this.#markersHead];
      assert(marker !== null, "A queued marker slot is filled");
      if (marker.seq > durableSeq) break;
      this.#markers[this.#markersHead] = null;
      this.#markersHead = (this.#markersHead + 1) % this.#markers.length;
      this.#markersCount--;
    }
    this.#acknowledgedSeq = durableSeq;
    this.#wakeSpaceWaiters();
    this.#maybeLeaveMarking();
  }

  /**
   * Lends the held copies `firstSeq` through `lastSeq` to the link for one send: views of their
   * ring bytes, which stay unchanged (even if acknowledged or dropped meanwhile) until
   * {@link endCopyLoan}. See `CopyBuffer.lend`; one loan at a time.
   */
  lendCopies(firstSeq: number, lastSeq: number): Uint8Array[] {
    return this.#copyBuffer.lend(firstSeq, lastSeq);
  }

  /**
   * The send of the lent copies settled: ring bytes released meanwhile become free, so writers
   * waiting for room are woken and marking mode may end, as after an acknowledgement.
   */
  endCopyLoan(): void {
    if (!this.#copyBuffer.isLent) return;
    this.#copyBuffer.endLend();
    this.#wakeSpaceWaiters();
    this.#maybeLeaveMarking();
  }

  // -------------------------------------------------------------------------------------
  // The write path

  #checkWrite(offsetBytes: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array) || data.length === 0 || data.length > limits.writeBytesMax) {
      throw new RangeError(
        `Cannot write ${data?.length} bytes to volume "${this.name}": a write holds 1 to ${limits.writeBytesMax} bytes`,
      );
    }
    assertBlockRange(this.#primary.sizeBytes, offsetBytes, data.length);
    if (this.onFull === "wait" && data.length > this.#copyBuffer.bytesMax) {
      throw new RangeError(
        `Cannot write ${data.length} bytes to volume "${this.name}": it could never fit its ${this.#copyBuffer.bytesMax}-byte copy buffer`,
      );
    }
    if (this.#state === splitterStates.closed) {
      throw new SplitterClosedError(`Cannot write to volume "${this.name}": the splitter is closed`);
    }
  }

  async #writeInSlot(slot: number, offsetBytes: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const lengthBytes = data.length;
    this.#slotOffsetsBytes[slot] = offsetBytes;
    this.#slotLengthsBytes[slot] = lengthBytes;
    this.#slotTimesUs[slot] = this.#clock.nowUs();
    this.#slotData[slot] = data;
    // Two holds: one ends with the primary write, one with the appliance's acknowledgement.
    const primaryMustPersist = this.#drl.beginWrite(offsetBytes, lengthBytes);
    const copyMustPersist = this.#drl.beginWrite(offsetBytes, lengthBytes);
    try {
      if (primaryMustPersist || copyMustPersist) await this.#drl.persist();
    } catch (error) {
      this.#drl.endWrite(offsetBytes, lengthBytes);
      this.#drl.endWrite(offsetBytes, lengthBytes);
      throw error;
    }
    let copied: boolean;
    try {
      const copying = this.#copy(slot);
      copied = typeof copying === "boolean" ? copying : await copying;
    } catch (error) {
      // Refused before the primary saw it (closed while waiting for room): both holds end.
      this.#drl.endWrite(offsetBytes, lengthBytes);
      this.#drl.endWrite(offsetBytes, lengthBytes);
      throw error;
    }
    if (!copied) this.#drl.endWrite(offsetBytes, lengthBytes); // no copy: only the DRL covers it
    try {
      const blocker = this.#earlierOverlap(slot);
      if (blocker >= 0) await this.#waitForEarlierOverlaps(slot, blocker);
      await this.#primary.write(offsetBytes, data, options);
      this.#hostWrites++;
      this.#hostWriteBytes += lengthBytes;
    } catch (cause) {
      this.#primaryWriteErrors++;
      const seq = this.#slotSeqs[slot];
      if (seq >= 0) this.#recordPrimaryWriteError(seq, offsetBytes, lengthBytes, cause);
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new PrimaryWriteError(
        `Cannot write ${lengthBytes} bytes at offset ${offsetBytes} of volume "${this.name}": ${reason}`,
        { cause },
      );
    } finally {
      this.#drl.endWrite(offsetBytes, lengthBytes);
    }
  }

  /**
   * Step 4: copies the write (true), or leaves it to the DRL alone (false). Fixes its order.
   * Answers at once unless the write must wait for room (`--on-full=wait`), then by promise.
   */
  #copy(slot: number): boolean | Promise<boolean> {
    const data = this.#slotData[slot];
    assert(data !== null, "A slot in use holds its data");
    if (this.#state === splitterStates.protecting) {
      // A write larger than the whole buffer can never be copied: with `mark` it is a full
      // buffer like any other (`#checkWrite` refused it already with `wait`).
      const fits = data.length <= this.#copyBuffer.bytesMax;
      if (fits && this.#spaceWaitersCount === 0 && this.#tryCopySlot(slot)) return true;
      if (this.onFull === "wait") return this.#copyWhenRoom(slot);
      this.#enterMarking();
    }
    this.#slotOrders[slot] = this.#nextOrder++;
    this.#missedWriteCount++;
    this.#missedWritesTotal++;
    return false;
  }

  /** Waits for room in the copy buffer; its waker copies the write (in arrival order). */
  async #copyWhenRoom(slot: number): Promise<boolean> {
    this.#bufferWaits++;
    const sinceUs = this.#clock.nowUs();
    try {
      await this.#waitForSpace(slot);
    } finally {
      this.#bufferWaitUs += Math.max(0, this.#clock.nowUs() - sinceUs);
    }
    if (this.#slotSeqs[slot] < 0) {
      assert((this.#state as SplitterState) === splitterStates.closed, "A woken writer was copied by its waker, unless closed");
      throw new SplitterClosedError(`Cannot write to volume "${this.name}": the splitter closed while the write waited for room`);
    }
    return true;
  }

  /** Appends the slot's write to the copy buffer under the next seq; false when it does not fit. */
  #tryCopySlot(slot: number): boolean {
    const data = this.#slotData[slot];
    assert(data !== null, "A slot in use holds its data");
    const seq = this.#nextSeq;
    const appended = this.#copyBuffer.tryAppend({
      seq,
      timeUs: this.#slotTimesUs[slot],
      offsetBytes: this.#slotOffsetsBytes[slot],
      data,
    });
    if (!appended) return false;
    this.#nextSeq = seq + 1;
    this.#highestCopiedSeq = seq;
    this.#copiedWrites++;
    this.#slotSeqs[slot] = seq;
    this.#slotOrders[slot] = this.#nextOrder++;
    assert(this.#copyBuffer.usedBytes <= this.#copyBuffer.bytesMax, "The copy buffer never grows");
    this.#recordListener?.();
    return true;
  }

  #waitForSpace(slot: number): Promise<void> {
    assert(this.#spaceWaitersCount < this.#spaceWaiters.length, "Every space waiter holds a slot");
    const index = (this.#spaceWaitersHead + this.#spaceWaitersCount) % this.#spaceWaiters.length;
    this.#spaceWaiters[index] = slot;
    this.#spaceWaitersCount++;
    return new Promise((resolve) => {
      this.#slotWake[slot] = resolve;
    });
  }

  /** Copies waiting writes in FIFO order while they fit (so their seqs follow arrival order). */
  #wakeSpaceWaiters(): void {
    while (this.#spaceWaitersCount > 0) {
      const slot = this.#spaceWaiters[this.#spaceWaitersHead];
      if (!this.#tryCopySlot(slot)) return;
      this.#spaceWaitersHead = (this.#spaceWaitersHead + 1) % this.#spaceWaiters.length;
      this.#spaceWaitersCount--;
      const wake = this.#slotWake[slot];
      assert(wake !== null, "A space waiter has a wake-up");
      this.#slotWake[slot] = null;
      wake();
    }
  }

  /** An in-flight write ordered before this one that overlaps it, or -1. */
  #earlierOverlap(slot: number): number {
    const order = this.#slotOrders[slot];
    assert(order !== Infinity, "A write is ordered before it waits for earlier ones");
    const startBytes = this.#slotOffsetsBytes[slot];
    const endBytes = startBytes + this.#slotLengthsBytes[slot];
    for (let position = 0; position < this.#activeSlotCount; position++) {
      const other = this.#activeSlots[position];
      if (
        other !== slot && this.#slotOrders[other] < order &&
        this.#slotOffsetsBytes[other] < endBytes &&
        startBytes < this.#slotOffsetsBytes[other] + this.#slotLengthsBytes[other]
      ) {
        return other;
      }
    }
    return -1;
  }

  /**
   * Step 5: waits until no in-flight write ordered before this one overlaps it, starting with
   * `firstBlocker` (found by {@link #earlierOverlap}). A slot's completion promise is made only
   * when a later write waits for it.
   */
  async #waitForEarlierOverlaps(slot: number, firstBlocker: number): Promise<void> {
    for (let blocker = firstBlocker; blocker >= 0; blocker = this.#earlierOverlap(slot)) {
      let done = this.#slotDone[blocker];
      if (done === null) {
        done = new Promise((resolve) => {
          this.#slotDoneResolve[blocker] = resolve;
        });
        this.#slotDone[blocker] = done;
      }
      await done;
    }
  }

  async #acquireSlot(): Promise<number> {
    if (this.#freeSlotCount > 0 && this.#slotWaitersCount === 0) return this.#takeSlot(this.#freeSlots[--this.#freeSlotCount]);
    if (this.#slotWaitersCount === this.#slotWaiters.length) {
      throw new SplitterBusyError(
        `Cannot accept a write to volume "${this.name}": ${switchLimits.splitterInFlightMax} writes are in flight ` +
          `and ${switchLimits.splitterQueuedWritesMax} wait`,
      );
    }
    const index = (this.#slotWaitersHead + this.#slotWaitersCount) % this.#slotWaiters.length;
    this.#slotWaitersCount++;
    const slot = await new Promise<number>((resolve) => {
      this.#slotWaiters[index] = resolve;
    });
    return this.#takeSlot(slot);
  }

  #takeSlot(slot: number): number {
    // Messages on this path are built only on failure: it runs for every host write.
    if (this.#slotActive[slot] !== 0) assert(false, `Slot ${slot} is free`);
    this.#slotActive[slot] = 1;
    this.#activeSlotPositions[slot] = this.#activeSlotCount;
    this.#activeSlots[this.#activeSlotCount++] = slot;
    this.#slotOrders[slot] = Infinity;
    this.#slotSeqs[slot] = -1;
    return slot;
  }

  /** Frees the slot (its primary write settled) and hands it to the first waiting write. */
  #releaseSlot(slot: number): void {
    if (this.#slotActive[slot] !== 1) assert(false, `Slot ${slot} is in use`);
    this.#slotActive[slot] = 0;
    // Swap-remove from the dense list: the last active slot takes this one's position.
    const position = this.#activeSlotPositions[slot];
    const lastSlot = this.#activeSlots[--this.#activeSlotCount];
    this.#activeSlots[position] = lastSlot;
    this.#activeSlotPositions[lastSlot] = position;
    this.#slotData[slot] = null;
    this.#slotOrders[slot] = Infinity;
    const resolveDone = this.#slotDoneResolve[slot];
    this.#slotDoneResolve[slot] = null;
    this.#slotDone[slot] = null;
    resolveDone?.(); // a later overlapping write waits for this one
    if (this.#slotWaitersCount > 0) {
      const waiter = this.#slotWaiters[this.#slotWaitersHead];
      assert(waiter !== null, "A queued writer has a wake-up");
      this.#slotWaiters[this.#slotWaitersHead] = null;
      this.#slotWaitersHead = (this.#slotWaitersHead + 1) % this.#slotWaiters.length;
      this.#slotWaitersCount--;
      waiter(slot);
    } else {
      this.#freeSlots[this.#freeSlotCount++] = slot;
    }
  }

  // -------------------------------------------------------------------------------------
  // Markers and modes

  /** Queues a marker under the next seq and tells the link; -1 when the ring is full. */
  #queueMarker(kind: MarkKind, detail: { [key: string]: MarkDetailValue }): number {
    if (this.#markersCount === this.#markers.length) return -1;
    const seq = this.#nextSeq++;
    const index = (this.#markersHead + this.#markersCount) % this.#markers.length;
    this.#markers[index] = { seq, timeUs: this.#clock.nowUs(), kind, detail };
    this.#markersCount++;
    this.#recordListener?.();
    return seq;
  }

  #recordPrimaryWriteError(seq: number, offsetBytes: number, lengthBytes: number, cause: unknown): void {
    const message = (cause instanceof Error ? cause.message : String(cause)).slice(0, 512);
    const markerSeq = this.#queueMarker("primaryWriteError", { seq, offsetBytes, lengthBytes, message });
    if (markerSeq < 0) this.#enterMarking(); // the gap marker will cover it; the DRL keeps the region dirty
  }

  #enterMarking(): void {
    if (this.#state !== splitterStates.protecting) return;
    this.#state = splitterStates.marking;
    this.#markingEntries++;
    this.#needsResync = true;
    this.#drl.setInSync(false); // seed 003 [0051]: out of sync, no resets
    this.#markingSinceUs = this.#clock.nowUs();
    this.#markingAfterSeq = this.#nextSeq - 1;
    this.#missedWriteCount = 0;
  }

  /** Ends marking mode once the link is up and the buffer has room again: records the gap. */
  #maybeLeaveMarking(): void {
    if (this.#state !== splitterStates.marking || !this.#linkUp) return;
    const freeBytesNeeded = this.#copyBuffer.bytesMax * switchLimits.splitterLeaveMarkingFreeFraction;
    if (this.#copyBuffer.freeBytes < freeBytesNeeded) return;
    const seq = this.#queueMarker("gap", {
      reason: "marking mode",
      afterSeq: this.#markingAfterSeq,
      fromTimeUs: this.#markingSinceUs,
      toTimeUs: this.#clock.nowUs(),
      missedWrites: this.#missedWriteCount,
    });
    if (seq < 0) return; // no room for the marker yet: try again on the next acknowledgement
    this.#state = splitterStates.protecting;
  }

  /** Drops every held record and continues after the appliance's seq with a gap marker. */
  #restartSeqsWithGap(durableSeq: number, reason: string): void {
    if (durableSeq < this.#highestCopiedSeq) {
      throw new SplitterResumeError(
        `Cannot resume volume "${this.name}" after seq ${durableSeq}: the appliance lacks records up to seq ` +
          `${this.#highestCopiedSeq} that the switch no longer holds (${reason})`,
      );
    }
    const droppedFromSeq = this.#oldestHeldSeq() ?? this.#nextSeq;
    const droppedToSeq = this.#nextSeq - 1;
    const oldestSeq = this.#copyBuffer.oldestSeq;
    if (oldestSeq !== undefined) {
      this.#copyBuffer.forEachFrom(oldestSeq, (entry) => {
        this.#drl.endWrite(entry.offsetBytes, entry.lengthBytes);
      });
    }
    this.#copyBuffer.clear();
    this.#markers.fill(null);
    this.#markersHead = 0;
    this.#markersCount = 0;
    this.#nextSeq = durableSeq + 1;
    this.#acknowledgedSeq = durableSeq;
    this.#needsResync = true;
    this.#drl.setInSync(false);
    const seq = this.#queueMarker("gap", { reason, droppedFromSeq, droppedToSeq });
    assert(seq >= 0, "An emptied marker ring has room");
    this.#wakeSpaceWaiters();
  }

  #oldestHeldSeq(): number | undefined {
    const writeSeq = this.#copyBuffer.oldestSeq;
    const marker = this.#markersCount > 0 ? this.#markers[this.#markersHead] : null;
    if (marker === null) return writeSeq;
    return writeSeq === undefined ? marker.seq : Math.min(writeSeq, marker.seq);
  }
}
