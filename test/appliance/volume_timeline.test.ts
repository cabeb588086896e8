/**
 * Proves that gaps are visible, never silent (SPEC guarantee 3): a volume's markers form its
 * timeline; a gap marker opens a suspect interval that a fix-up end closes; points inside it
 * (by seq, or by a time inside the gap) are reported suspect, points outside are not; the
 * timeline, gaps and retention policy survive a restart, both from the catalogue (sealed maps)
 * and from the journal tail.
 */
import { describe, expect, it } from "vitest";
import { Volume } from "../../src/appliance/volume.ts";
import { journalRecordKinds } from "../../src/appliance/journal_record.ts";
import { VolumeTimeline } from "../../src/appliance/volume_timeline.ts";
import { formatTimeUs } from "../../src/core/units.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";

describe("VolumeTimeline", () => {
  it("opens a suspect interval at a gap and closes it at the fix-up end", () => {
    const timeline = new VolumeTimeline();
    timeline.add({ seq: 5, timeUs: 100, kind: "snapshot", detail: { name: "a" } });
    timeline.add({ seq: 10, timeUs: 900, kind: "gap", detail: { reason: "marking mode", afterSeq: 9, fromTimeUs: 500 } });
    expect(timeline.suspectIntervals()).toEqual([{ from: { seq: 10, timeUs: 500 }, to: undefined, reason: "marking mode" }]);
    expect(timeline.suspectReason(9, undefined)).toBeUndefined();
    expect(timeline.suspectReason(10, undefined)).toMatch(/gap at seq:10 \(marking mode\); no resync has repaired it yet/);
    expect(timeline.suspectReason(9, 600)).toMatch(/suspect/); // a time inside the gap lands on seq 9
    timeline.add({ seq: 20, timeUs: 2000, kind: "fixupEnd", detail: {} });
    expect(timeline.suspectReason(15, undefined)).toMatch(/resync repaired it at seq:20/);
    expect(timeline.suspectReason(20, undefined)).toBeUndefined();
    expect(timeline.suspectReason(25, 2500)).toBeUndefined();
  });

  it("ignores markers resent out of order and keeps gaps when full", () => {
    const timeline = new VolumeTimeline({ markersMax: 3 });
    timeline.add({ seq: 1, timeUs: 1, kind: "gap", detail: {} });
    timeline.add({ seq: 2, timeUs: 2, kind: "snapshot", detail: { name: "x" } });
    timeline.add({ seq: 2, timeUs: 2, kind: "snapshot", detail: { name: "x" } });
    timeline.add({ seq: 3, timeUs: 3, kind: "inSync", detail: {} });
    timeline.add({ seq: 4, timeUs: 4, kind: "outOfSync", detail: {} });
    expect(timeline.markers.map((m) => m.seq)).toEqual([1, 3, 4]);
    expect(() => new VolumeTimeline({ markersMax: 0 })).toThrow(RangeError);
  });
});

describe("Volume timeline", () => {
  it("reports gaps and suspect points and keeps them, and the retention policy, across a restart", async () => {
    const clock = new ManualClock();
    const t0 = clock.nowUs();
    const deps = { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock };
    const options = { name: "db", sizeBytes: 1 << 20, segmentSizeBytes: 256 * 1024, groupBytesMax: 64 * 1024, levelZeroWritesMax: 4 };
    const volume = await Volume.open(deps, options);
    const data = new Uint8Array(512).fill(7);
    await volume.appendWrite({ seq: 1, timeUs: t0 + 1_000, offsetBytes: 0, data });
    await volume.appendWrite({ seq: 2, timeUs: t0 + 2_000, offsetBytes: 512, data });
    await volume.appendMarker({
      seq: 3,
      timeUs: t0 + 5_000,
      kind: journalRecordKinds.gap,
      payload: { reason: "marking mode", afterSeq: 2, fromTimeUs: t0 + 3_000, toTimeUs: t0 + 5_000, missedWrites: 4 },
    });
    for (let seq = 4; seq <= 6; seq++) await volume.appendWrite({ seq, timeUs: t0 + seq * 1_000 + 3_000, offsetBytes: 0, data });
    await volume.appendMarker({ seq: 7, timeUs: t0 + 10_000, kind: journalRecordKinds.fixupEnd });
    await volume.appendMarker({ seq: 8, timeUs: t0 + 11_000, kind: journalRecordKinds.gap, payload: { reason: "switch restart" } });
    await volume.flush();
    await volume.setRetention({ window: "48h", keep: "24x1h" });

    const check = (v: Volume) => {
      expect(v.markers().map((m) => [m.seq, m.kind])).toEqual([[3, "gap"], [7, "fixupEnd"], [8, "gap"]]);
      expect(v.markers({ fromSeq: 4, limit: 1 }).map((m) => m.seq)).toEqual([7]);
      expect(v.gaps()).toEqual([
        { from: { seq: 2, timeUs: t0 + 3_000 }, to: { seq: 3, timeUs: t0 + 5_000 }, reason: "marking mode" },
        { from: { seq: 7, timeUs: t0 + 10_000 }, to: { seq: 8, timeUs: t0 + 11_000 }, reason: "switch restart" },
      ]);
      expect(v.suspectIntervals().map((i) => [i.from.seq, i.to?.seq])).toEqual([[3, 7], [8, undefined]]);
      expect(v.suspectReason(v.resolvePoint("seq:2"))).toBeUndefined();
      expect(v.suspectReason(v.resolvePoint("seq:5"))).toMatch(/gap at seq:3/);
      expect(v.suspectReason(v.resolvePoint("seq:7"))).toBeUndefined();
      expect(v.suspectReason(v.resolvePoint("seq:8"))).toMatch(/switch restart/);
      // A time inside the first gap lands on seq 2, before it; the time asked for still tells.
      const inGap = v.resolvePoint(formatTimeUs(t0 + 4_000));
      expect(inGap).toMatchObject({ seq: 2, requestedTimeUs: t0 + 4_000 });
      expect(v.suspectReason(inGap)).toMatch(/gap at seq:3 \(marking mode\)/);
      expect(v.suspectReason(v.resolvePoint(formatTimeUs(t0 + 2_500)))).toBeUndefined();
      expect(v.retention).toEqual({ window: "48h", keep: "24x1h" });
    };
    check(volume);
    await volume.close();
    // Rows 1..8 sealed two level-0 maps of 4 (catalogue); nothing left in the tail.
    const again = await Volume.open(deps, options);
    check(again);
    // A marker in the journal tail (not yet in a sealed map) comes back from the tail scan.
    await again.appendMarker({ seq: 9, timeUs: t0 + 12_000, kind: journalRecordKinds.snapshot, payload: { name: "after" } });
    await again.close();
    const third = await Volume.open(deps, options);
    expect(third.markers().map((m) => m.kind)).toEqual(["gap", "fixupEnd", "gap", "snapshot"]);
    expect(third.snapshots().map((s) => s.name)).toEqual(["after"]);
    await third.close();
  });
});
