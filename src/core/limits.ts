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
   * 32 MiB ~101k (bigger groups hold the disk idle while they fill). Again after the groups went
   * around the page cache (2026-12-02): 4 KiB ingest the same with 8 and 16 MiB (139k-147k);
   * a 1 MiB `nbdcopy` through the switch, the journal setting the pace, no different beyond
   * the VM's noise (steady rounds over three alternating pairs: 440-631 MiB/s with 8 MiB,
   * 410-619 with 16), so 8 MiB stays: half the memory per volume.
   */
  journalGroupBytesMax: 8 * 1024 * 1024,
  /**
   * A filling group smaller than this (or than half of `groupBytesMax`, if less) is not
   * written while a sync is in flight: it waits for the sync to end and goes in one write.
   * With writes trickling in (fio, 4 KiB, 16 in flight through NBD) there were ~10 writes per
   * group write and ~22 per sync before this rule, ~24 per both after it; the rate did not
   * move beyond the VM's noise. A larger group is written at once, so large groups still
   * overlap the sync.
   */
  journalSmallGroupBytes: 256 * 1024,
  /** Marker payload (snapshot names and the like). */
  markerPayloadBytesMax: 64 * 1024,
  /** Writes per level-0 delta map before it is sealed. */
  levelZeroWritesMax: 4096,
  /**
   * Sealed level-0 maps that wait in memory before they are persisted as one pack with one
   * catalogue replace ... (a restart replays the journal tail they cover)
   */
  mapPersistLevelZeroMin: 16,
  /** ... or the journal bytes they cover, whichever comes first (one journal segment). */
  mapPersistJournalBytesMin: 256 * 1024 * 1024,
  /** Level-0 maps in one pack at most (when persistence falls behind, packs grow to this). */
  mapPackLevelZeroMax: 64,
  /**
   * Runs of a merged or point map's merge done per turn of the appliance's event loop (the
   * builds run in the background, between the ingest's callbacks). Measured on this VM, warm:
   * a level-1 merge of 16 maps of 4,096 random 4 KiB writes over 1 GiB (131k runs in) took
   * 23-29 ms in 32 steps of this size, 1.1-1.6 ms each (45-55 ns a run).
   */
  mapBuildStepRuns: 16_384,
  /** Maps due but not built yet at most; past that, a seal finishes them in line. */
  mapBuildsQueuedMax: 32,
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
  /** Markers a volume's timeline keeps (gaps and fix-up ends are never dropped first). */
  timelineMarkersMax: 65_536,
} as const;

assert(limits.journalGroupBytesMax + 4096 <= limits.journalSegmentBytes, "A group must fit a segment");
assert(limits.writeBytesMax + 4096 <= limits.journalGroupBytesMax, "A write must fit a group");
assert(limits.mapFanOut >= 2, "Merging needs at least two maps");
assert(limits.mapPackLevelZeroMax >= limits.mapPersistLevelZeroMin, "A pack holds the level-0 maps that start it");

// ---- The switch↔appliance wire (src/wire) ----

export const wireLimits = {
  /** Bytes after a frame's header: CBOR body plus raw payload (the header's u32 fields allow more). */
  frameBytesMax: 16 * 1024 * 1024,
  /** Largest CBOR body of any kind; most kinds have a much smaller one (`message_kinds.ts`). */
  bodyBytesMax: 1024 * 1024,
  /** Body of a handshake message that lists volumes (PROOF, WELCOME): every volume, plus 1 KiB. */
  handshakeBodyBytesMax: 513 * 1024,
  /** Body of small control messages (HELLO, CHALLENGE, ACK, PING, ERROR, requests...). */
  controlBodyBytesMax: 4 * 1024,
  /** Body of a MARK: its `detail` is journaled as the marker's payload, so it must fit one. */
  markBodyBytesMax: limits.markerPayloadBytesMax,
  /** Entries in one WRITE batch. */
  writeEntriesMax: 4096,
  /**
   * One WRITE entry in the batch's packed entries table (protocol 2, `wire/messages.ts`):
   * seq, timeUs, offsetBytes as u64, lengthBytes and a reserved word as u32, the XXH64 as u64.
   */
  writeEntryBytes: 40,
  /** Data of one WRITE entry: the engine's largest single write. */
  writeLengthBytesMax: limits.writeBytesMax,
  /** Data one READ_REQUEST / FETCH may ask for (and so one READ_REPLY payload). */
  readBytesMax: limits.writeBytesMax,
  /** Chunks one HASH_REQUEST may ask for (8 bytes each in the HASH_REPLY). */
  hashChunksMax: 65_536,
  /** Bytes one HASH_REQUEST may cover. */
  hashRequestBytesMax: 2 ** 40,
  /** Volumes one switch may protect over one connection. */
  volumesPerConnectionMax: 1024,
  /** Upper bound of one volume's CBOR encoding in PROOF or WELCOME (name at 3 bytes a unit). */
  volumeEncodedBytesMax: 512,
  /** Volume name length in UTF-16 code units (the appliance applies its own, stricter pattern). */
  volumeNameLengthMax: 128,
  /** Switch id length in UTF-16 code units. */
  switchIdLengthMax: 128,
  /** Dirty-region size a switch may announce: a power of two in this range. */
  regionBytesMin: 512,
  regionBytesMax: 2 ** 30,
  /** MARK `detail`: nesting depth, values in all, and length of each string in it. */
  markDetailDepthMax: 8,
  markDetailValuesMax: 1024,
  markDetailStringLengthMax: 1024,
  /** ERROR `code` and `message`, BYE `reason`, in UTF-16 code units. */
  errorCodeLengthMax: 64,
  errorMessageLengthMax: 1024,
  byeReasonLengthMax: 1024,
  /**
   * SNAPSHOT_REQUESTs an appliance has unanswered at once, over all its switch sessions; one
   * more is refused at once (the caller retries), so the pending map never grows past it.
   */
  snapshotRequestsInFlightMax: 64,
  /** How long an appliance waits for a snapshot through the switch: the reply, then the marker durable. */
  snapshotRequestTimeoutMs: 30_000,
  /** SNAPSHOT_REPLY `refused` (the switch's reason), in UTF-16 code units. */
  snapshotRefusalLengthMax: 1024,
  /**
   * Restores an appliance runs through its switches at once (RESTORE_REQUESTs whose restore
   * has not ended); one more is refused, so the appliance's table of them never grows past it.
   */
  restoresInFlightMax: 16,
  /** RESTORE_REFUSED `refused` and RESTORE_PROGRESS `message`, in UTF-16 code units. */
  restoreMessageLengthMax: 1024,
  /** Bytes of one extent in a RESTORE_PLAN: offset and length, each a little-endian u64. */
  restoreExtentBytes: 16,
  /** Extents one RESTORE_PLAN frame carries at most (512 KiB of body). */
  restorePlanExtentsPerFrameMax: 32_768,
  /**
   * Extents one restore plan holds in all: the switch keeps the plan while the session starts.
   * An appliance whose diff has more merges neighbouring extents until it fits (restoring a
   * range that did not change copies equal bytes: harmless, only slower).
   */
  restorePlanExtentsMax: 262_144,
  /**
   * READ_REQUESTs a switch may have unanswered on one session; the appliance ends a session
   * that sends more (it holds a read buffer for each).
   */
  readRequestsInFlightMax: 16,
  /** Handshake nonces and HMAC-SHA256 proofs. */
  nonceBytes: 32,
  proofBytes: 32,
  /** Shortest shared secret accepted: shorter ones are a configuration mistake. */
  secretBytesMin: 16,
} as const;

const entriesBytes = wireLimits.writeEntriesMax * wireLimits.writeEntryBytes;
const volumeNameEncodedBytesMax = 3 + 3 * wireLimits.volumeNameLengthMax;

assert(wireLimits.frameBytesMax <= 0xffff_ffff, "Frame lengths must fit the header's u32 fields");
assert(wireLimits.bodyBytesMax <= wireLimits.frameBytesMax, "A body must fit a frame");
assert(
  wireLimits.handshakeBodyBytesMax <= wireLimits.bodyBytesMax &&
    wireLimits.controlBodyBytesMax <= wireLimits.bodyBytesMax &&
    wireLimits.markBodyBytesMax <= wireLimits.bodyBytesMax,
  "Per-kind body limits must not exceed the body limit",
);
assert(
  entriesBytes + volumeNameEncodedBytesMax + 64 <= wireLimits.bodyBytesMax,
  "A full WRITE batch must fit a body",
);
assert(
  wireLimits.bodyBytesMax + wireLimits.writeLengthBytesMax <= wireLimits.frameBytesMax,
  "The largest single write must fit one frame with any body",
);
assert(
  wireLimits.controlBodyBytesMax + wireLimits.readBytesMax <= wireLimits.frameBytesMax,
  "The largest READ_REPLY must fit a frame",
);
assert(wireLimits.hashChunksMax * 8 + 64 <= wireLimits.bodyBytesMax, "A full HASH_REPLY must fit a body");
assert(
  volumeNameEncodedBytesMax + 64 <= wireLimits.volumeEncodedBytesMax &&
    wireLimits.volumesPerConnectionMax * wireLimits.volumeEncodedBytesMax + 1024 <= wireLimits.handshakeBodyBytesMax,
  "Every volume of a connection must fit a handshake body",
);
assert(
  3 + 3 * wireLimits.errorCodeLengthMax + 3 + 3 * wireLimits.errorMessageLengthMax + 32 <=
    wireLimits.controlBodyBytesMax,
  "An ERROR message must fit a control body",
);
assert(
  3 + 3 * wireLimits.volumeNameLengthMax + limits.snapshotNameBytesMax + 64 <= wireLimits.controlBodyBytesMax &&
    3 + 3 * wireLimits.snapshotRefusalLengthMax + 64 <= wireLimits.controlBodyBytesMax,
  "A SNAPSHOT_REQUEST and a SNAPSHOT_REPLY must fit a control body",
);
assert(
  wireLimits.restorePlanExtentsPerFrameMax * wireLimits.restoreExtentBytes + 1024 <= wireLimits.bodyBytesMax &&
    3 + 3 * wireLimits.restoreMessageLengthMax + 64 <= wireLimits.controlBodyBytesMax,
  "A full RESTORE_PLAN must fit a body, and a restore refusal or progress message a control body",
);
assert(
  wireLimits.restorePlanExtentsPerFrameMax <= wireLimits.restorePlanExtentsMax,
  "A restore plan frame must fit a plan",
);
assert(
  wireLimits.writeLengthBytesMax % 512 === 0 && wireLimits.readBytesMax % 512 === 0,
  "Data limits are whole sectors",
);
assert(
  wireLimits.nonceBytes >= 16 && wireLimits.proofBytes === 32,
  "Nonces must be unguessable; proofs are SHA-256 sized",
);

// ---- The switch (src/switch) ----

export const switchLimits = {
  /** Restore copies the primary back in chunks of this size (a host read waits for at most one). */
  restoreChunkBytesDefault: 256 * 1024,
  /** Largest restore chunk (the session's one copy buffer). */
  restoreChunkBytesMax: 64 * 1024 * 1024,
  /** Bytes the background restore copy moves per read and write (runs of pending chunks). */
  restoreCopyBytesMax: 4 * 1024 * 1024,
  /** Restore copies in flight at once (each with its own buffer of `restoreCopyBytesMax`). */
  restoreCopiesInFlight: 4,
  /** Chunk buffers kept for host I/O that restores a chunk first (instant restore), beside the copies'. */
  restoreHostBuffers: 2,
  /**
   * Restored bytes per primary flush (the DRL holds of restored chunks end after it). Small
   * enough that the disk writes back all the time the copy runs: with 256 MiB the disk sat
   * idle half the time between flushes, and a 4 GiB full restore ran at 0.68 of nbdcopy (which
   * starts writeback after every write); with 64 MiB, 0.89-0.93.
   */
  restoreFlushBytes: 64 * 1024 * 1024,
  /** Chunks one restore tracks at most (a state byte and a piece index each); chunks grow to fit. */
  restoreChunksMax: 2 ** 24,
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
  /**
   * SNAPSHOT_REPLYs the link may be sending at once; an appliance that keeps more waiting
   * breaks its own window (`wireLimits.snapshotRequestsInFlightMax`) and the session ends.
   * Twice that window: the switch's count lags the appliance's by the time a send takes to
   * settle, so a well-behaved appliance may briefly seem a request ahead.
   */
  linkSnapshotRepliesSendingMax: 2 * wireLimits.snapshotRequestsInFlightMax,
  /** Restores the switch runs for an appliance at once (one per volume, and at most this many). */
  remoteRestoresMax: 16,
  /**
   * READ_REQUESTs one remote restore has unanswered at once (host I/O and the background copy);
   * all of a link's restores together stay within `wireLimits.readRequestsInFlightMax`.
   */
  remoteRestoreReadsInFlightMax: 4,
  /** How long a remote restore waits for the appliance to acknowledge every write before its plan. */
  remoteRestoreDrainWaitMs: 30_000,
  /** How long a remote restore waits for its whole plan. */
  remoteRestorePlanWaitMs: 60_000,
  /** How long one READ_REQUEST may go unanswered on a live connection before the restore fails. */
  remoteRestoreReadTimeoutMs: 30_000,
  /** How long a remote restore's reads wait for a lost link to come back before the restore fails. */
  remoteRestoreReconnectWaitMs: 60_000,
  /** Times one read is asked again after link losses before the restore fails. */
  remoteRestoreReadAttemptsMax: 16,
  /** RESTORE_PROGRESS cadence while a remote restore runs. */
  remoteRestoreProgressIntervalMs: 200,
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
  switchLimits.remoteRestoreReadsInFlightMax <= wireLimits.readRequestsInFlightMax &&
    switchLimits.remoteRestoresMax <= wireLimits.restoresInFlightMax,
  "A switch's remote restores stay inside the appliance's windows",
);
assert(
  switchLimits.splitterLeaveMarkingFreeFraction > 0 && switchLimits.splitterLeaveMarkingFreeFraction <= 1,
  "The free fraction that ends marking mode is a fraction",
);

// ---- The processes (src/server) ----

export const serverLimits = {
  /** How long a snapshot through the switch waits for the appliance's acknowledgement. */
  acknowledgeWaitMs: 30_000,
  /** Poll interval while waiting for an acknowledgement. */
  acknowledgePollMs: 2,
  /** How long a clean stop lets held records drain to the appliance. */
  stopDrainMs: 5_000,
  /** DRL upkeep interval (each splitter's reset policy decides whether to reset). */
  maintainIntervalMs: 1_000,
  /** An automatic resync that keeps failing is tried again after this, doubling ... */
  autoResyncBackoffMsMin: 2_000,
  /** ... up to this. */
  autoResyncBackoffMsMax: 120_000,
  /** Chunk of the initial full copy (read from the primary, journaled as baseline records). */
  baselineChunkBytes: 1024 * 1024,
  /** Entries one timeline request returns at most. */
  timelineEntriesMax: 10_000,
  /** Jobs a process keeps for `GET /v1/jobs` (finished ones are forgotten first). */
  jobsKeptMax: 100,
  /** A job's rate is measured over at least this long. */
  jobRateWindowUs: 2_000_000,
  /**
   * A restore the appliance runs through a switch in another process fails when the switch has
   * reported nothing for this long (it crashed, or its link never came back). Longer than the
   * switch's own wait for a lost link, so a reconnect in time is never cut short.
   */
  remoteRestoreSilenceMsMax: 120_000,
  /** How often a restore job samples its progress. */
  restoreProgressIntervalMs: 200,
} as const;

assert(serverLimits.baselineChunkBytes <= limits.writeBytesMax, "A baseline chunk is one journal record");
assert(
  serverLimits.remoteRestoreSilenceMsMax > switchLimits.remoteRestoreReconnectWaitMs + switchLimits.remoteRestoreReadTimeoutMs,
  "The appliance waits for a silent switch longer than the switch waits for its link and a read",
);
