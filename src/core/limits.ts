/**
 * Every limit in one place (TigerBeetle: "put a limit on everything"). Qualifiers and units
 * come last in the name. Relations between limits are asserted at load, so a bad edit fails
 * at start, not under load.
 */
import { assert } from "./assert.ts";

export const limits = {
  /**
   * Largest single write the engine journals. NBD advertises it as the maximum block size, so
   * clients split larger requests; the splitter splits anything else.
   */
  writeBytesMax: 4 * 1024 * 1024,
  /** Largest volume: offsets are float64 byte counts, exact up to 2^53. */
  volumeBytesMax: 2 ** 50,
  /**
   * Journal segment size (preallocated); a record never straddles two segments. Measured on
   * the Node target (1 GiB of 64 KiB records): 64 MiB segments ingest ~420 MiB/s, 256 MiB
   * ~490 MiB/s, 1 GiB ~615 MiB/s: creating a segment costs fsyncs that queue behind the data.
   */
  journalSegmentBytes: 256 * 1024 * 1024,
  /**
   * Bytes one group commit may carry (one buffer of two, allocated at open). Measured with 300k
   * 4 KiB writes on the Node target: 4 MiB ~129k writes/s, 8 MiB ~131-136k, 16 MiB ~113k,
   * 32 MiB ~101k (bigger groups hold the disk idle while they fill).
   */
  journalGroupBytesMax: 8 * 1024 * 1024,
  /** Marker payload (snapshot names and the like). */
  markerPayloadBytesMax: 64 * 1024,
  /** Writes per level-0 delta map before it is sealed. */
  levelZeroWritesMax: 4096,
  /** How many maps of level k merge into one of level k + 1. */
  mapFanOut: 16,
  /** Levels of merged maps above level 0. */
  mapLevelsMax: 8,
  /** A point map is written after this many level-0 runs since the previous one ... */
  pointMapRunsMin: 262_144,
  /** ... or a quarter of the previous point map's runs, whichever is more (amortized size). */
  pointMapGrowthDivisor: 4,
  /** Snapshot name length. */
  snapshotNameBytesMax: 200,
} as const;

assert(limits.journalGroupBytesMax + 4096 <= limits.journalSegmentBytes, "A group must fit a segment");
assert(limits.writeBytesMax + 4096 <= limits.journalGroupBytesMax, "A write must fit a group");
assert(limits.mapFanOut >= 2, "Merging needs at least two maps");
