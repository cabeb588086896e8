/**
 * Limits of the switch (the splitter's write path): the dirty region log and the copy buffer.
 * Qualifiers and units come last in the name. Relations between limits are asserted at load,
 * so a bad edit fails at start, not under load. (To be folded into `src/core/limits.ts`.)
 *
 * @example
 * ```ts
 * import { switchLimits } from "./switch_limits.ts";
 * const regionCount = Math.ceil((1024 ** 4) / switchLimits.drlRegionBytesDefault); // 1 TiB: 1 Mi regions
 * ```
 */
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";

export const switchLimits = {
  /** The smallest unit of a write (and so of a region and a copy-buffer entry's accounting). */
  sectorBytes: 512,
  /** Default DRL region: 1 MiB (DESIGN.md, "Data model"). */
  drlRegionBytesDefault: 1024 * 1024,
  /** Smallest DRL region: one sector. */
  drlRegionBytesMin: 512,
  /** Largest DRL region: beyond 1 GiB a single dirty bit costs a resync too much reading. */
  drlRegionBytesMax: 1024 * 1024 * 1024,
  /**
   * Regions per volume. The switch keeps a bit and a 4-byte in-flight count per region, so
   * 2^24 regions cost 2 MiB of bitmap and 64 MiB of counts (16 TiB at 1 MiB regions); a
   * larger volume needs larger regions. The whole bitmap is written on every DRL persist.
   */
  drlRegionCountMax: 2 ** 24,
  /** DRL reset policy: reset at least this often while in sync (seed 003 [0051], [0053]). */
  drlResetIntervalUsDefault: 30_000_000,
  /**
   * ... but never more often than this, even when the dirty fraction is past the threshold
   * (regions busy with in-flight writes cannot be cleared, and retrying at once would spin).
   */
  drlResetIntervalUsMin: 1_000_000,
  /** DRL reset policy: reset early when this fraction of the regions is dirty. */
  drlResetDirtyFractionDefault: 0.25,
  /** Default copy buffer (SPEC.md guarantee 5: fixed at start). */
  copyBufferBytesDefault: 64 * 1024 * 1024,
  /** Largest copy buffer: ring positions are kept in 32-bit unsigned integers. */
  copyBufferBytesMax: 2 ** 31,
  /**
   * The copy buffer's metadata ring holds `ceil(bytesMax / copyBufferEntryBytesMin)` entries:
   * as many as there can be writes of one sector each.
   */
  copyBufferEntryBytesMin: 512,
  /** Host writes a splitter has in flight at once (its fixed in-flight table). */
  splitterInFlightMax: 1024,
  /** Host writes waiting for a free in-flight slot; one more is refused (`SplitterBusyError`). */
  splitterQueuedWritesMax: 4096,
  /** Markers queued and not yet acknowledged by the appliance; beyond it the splitter drops to marking. */
  splitterMarkersMax: 64,
  /** Marking mode ends once the link is up and this fraction of the copy buffer is free (no flapping). */
  splitterLeaveMarkingFreeFraction: 0.5,
  /** Data of one WRITE batch the switch link gathers (its one send buffer, allocated at start). */
  linkBatchBytesMax: 8 * 1024 * 1024,
  /** Reconnect backoff: first wait, doubled per failure up to the cap. */
  linkBackoffMsMin: 50,
  linkBackoffMsMax: 5_000,
  /** A handshake that has not finished by then is abandoned (the connection is closed). */
  linkHandshakeTimeoutMs: 10_000,
} as const;

assert(
  switchLimits.drlRegionBytesMin % switchLimits.sectorBytes === 0,
  "A region must be a whole number of sectors",
);
assert(
  switchLimits.drlRegionBytesMin <= switchLimits.drlRegionBytesDefault &&
    switchLimits.drlRegionBytesDefault <= switchLimits.drlRegionBytesMax,
  "The default region size must lie within the bounds",
);
assert(
  limits.volumeBytesMax / switchLimits.drlRegionBytesMax <= switchLimits.drlRegionCountMax,
  "The largest volume must be representable with the largest regions",
);
assert(
  switchLimits.drlResetIntervalUsMin <= switchLimits.drlResetIntervalUsDefault,
  "The minimum reset interval must not exceed the default interval",
);
assert(
  switchLimits.drlResetDirtyFractionDefault > 0 && switchLimits.drlResetDirtyFractionDefault <= 1,
  "The dirty fraction threshold is a fraction",
);
assert(
  limits.writeBytesMax <= switchLimits.copyBufferBytesDefault,
  "The default copy buffer must hold the largest write",
);
assert(
  switchLimits.copyBufferBytesDefault <= switchLimits.copyBufferBytesMax,
  "The default copy buffer must not exceed the largest",
);
assert(
  switchLimits.copyBufferEntryBytesMin === switchLimits.sectorBytes,
  "Copy-buffer entries are accounted per sector",
);
assert(
  limits.writeBytesMax <= switchLimits.linkBatchBytesMax,
  "A WRITE batch must hold the largest write",
);
assert(
  switchLimits.linkBackoffMsMin > 0 && switchLimits.linkBackoffMsMin <= switchLimits.linkBackoffMsMax,
  "The reconnect backoff must grow from its minimum to its cap",
);
assert(
  switchLimits.splitterLeaveMarkingFreeFraction > 0 && switchLimits.splitterLeaveMarkingFreeFraction <= 1,
  "The free fraction that ends marking mode is a fraction",
);
