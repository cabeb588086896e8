/**
 * Proves resync in one process: a copy buffer too small for a burst of writes drops the
 * splitter to marking mode, leaving a recorded gap and a journal head that differs from the
 * primary; the resync job journals the dirty regions as fix-ups, after which the head image
 * equals the primary byte for byte, the suspect interval is closed at the fix-up end, the
 * volume no longer needs resync and the DRL's resets clear its bits again. A full resync
 * (re-baseline) compares every region; each compares a dirty piece with the appliance's image
 * first and moves only what differs; a resync is refused while another job runs; a cancelled
 * one leaves the suspect interval open; with automatic resync on, the switch starts the job
 * by itself once the link streams after a gap.
 */
import { describe, expect, it } from "vitest";
import { ConflictError } from "../../src/api/control_plane.ts";
import { setUp } from "./server_support.ts";

const volumeBytes = 4 * 1024 * 1024;
const regionBytes = 65536;

async function readAll(device: { read(offsetBytes: number, target: Uint8Array): Promise<void> }) {
  const bytes = new Uint8Array(volumeBytes);
  await device.read(0, bytes);
  return bytes;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function waitForJob(controlPlane: { job(id: string): { state: string } }, id: string) {
  for (let turn = 0; turn < 3000; turn++) {
    const job = controlPlane.job(id);
    if (job.state !== "running") return job;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`Job ${id} did not end`);
}

/** Writes a burst the 128 KiB copy buffer cannot hold: marking mode, then a recorded gap. */
async function makeGap(fixture: Awaited<ReturnType<typeof setUp>>) {
  const { splitter, switchNode } = fixture;
  await Promise.all(Array.from({ length: 16 }, (_, i) => splitter.write(i * 131072, new Uint8Array(65536).fill(i + 1))));
  expect(splitter.needsResync).toBe(true);
  for (let turn = 0; turn < 1000 && splitter.state !== "protecting"; turn++) await new Promise((r) => setTimeout(r, 2));
  expect(splitter.state).toBe("protecting"); // the gap marker went out when the buffer drained
  await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
}

describe("resync in one process", () => {
  it("repairs a gap: head equals the primary, the suspect interval closes, the DRL settles", async () => {
    const fixture = await setUp({ volumeBytes, bufferBytes: 128 * 1024 });
    const { splitter, controlPlane, appliance, primary, tearDown } = fixture;
    await makeGap(fixture);
    const volume = appliance.volume("db");
    expect(volume.gaps().map((g) => g.reason)).toEqual(["marking mode"]);
    expect(firstDifference(await readAll(volume.openImage("head")), await readAll(primary))).not.toBe(-1);
    const dirty = splitter.dirtyRegionCount;

    const job = await controlPlane.resync("db", { full: false });
    expect(job).toMatchObject({ kind: "resync", state: "running" });
    await expect(controlPlane.resync("db", { full: false })).rejects.toThrow(ConflictError);
    const ended = await waitForJob(controlPlane, job.id);
    expect(ended).toMatchObject({ state: "done", progress: 1 });
    // Compared first: only what the journal missed moves; the rest of the dirty regions matched.
    const moved = controlPlane.job(job.id).bytesMoved;
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThanOrEqual(dirty * regionBytes);
    const end = volume.markers().find((m) => m.kind === "fixupEnd")!;
    expect((end.detail as { bytes: number }).bytes + (end.detail as { matched: number }).matched).toBe(dirty * regionBytes);

    expect(firstDifference(await readAll(volume.openImage("head")), await readAll(primary))).toBe(-1);
    const suspect = volume.suspectIntervals();
    expect(suspect).toHaveLength(1);
    const fixupEnd = volume.markers().find((m) => m.kind === "fixupEnd")!;
    expect(suspect[0].to?.seq).toBe(fixupEnd.seq);
    expect(volume.suspectReason(volume.resolvePoint("head"))).toBeUndefined();
    expect(splitter.needsResync).toBe(false);
    expect(splitter.dirtyRegionLog.resetsEnabled).toBe(true);
    expect(await splitter.dirtyRegionLog.reset()).toBe(dirty); // everything acknowledged: the bits clear
    expect(controlPlane.volume("db").state).toBe("protecting");
    await tearDown();
  });

  it("re-baselines every region with full, and host writes during it land after their fix-ups", async () => {
    const fixture = await setUp({ volumeBytes, bufferBytes: 1024 * 1024 });
    const { splitter, controlPlane, appliance, primary, tearDown } = fixture;
    await splitter.write(0, new Uint8Array(4096).fill(7));
    const job = await controlPlane.resync("db", { full: true });
    await splitter.write(volumeBytes - 4096, new Uint8Array(4096).fill(8)); // during the resync
    const ended = await waitForJob(controlPlane, job.id);
    expect(ended.state).toBe("done");
    const volume = appliance.volume("db");
    // Every region compared; the ones the journal already holds move nothing.
    const end = volume.markers().find((m) => m.kind === "fixupEnd")!;
    expect((end.detail as { bytes: number }).bytes + (end.detail as { matched: number }).matched).toBe(volumeBytes);
    expect(controlPlane.job(job.id).bytesMoved).toBeLessThan(volumeBytes);
    await fixture.switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    for (let turn = 0; turn < 100 && volume.head.seq < splitter.nextSeq - 1; turn++) await new Promise((r) => setTimeout(r, 5));
    expect(firstDifference(await readAll(volume.openImage("head")), await readAll(primary))).toBe(-1);
    expect(volume.markers().map((m) => m.kind)).toEqual(["fixupStart", "fixupEnd", "inSync"]);
    await tearDown();
  });

  it("moves nothing when the journal already holds what the primary has", async () => {
    const fixture = await setUp({ volumeBytes, bufferBytes: 1024 * 1024 });
    const { splitter, controlPlane, appliance, switchNode, tearDown } = fixture;
    await splitter.write(8192, new Uint8Array(65536).fill(3));
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const job = await controlPlane.resync("db", { full: true });
    expect((await waitForJob(controlPlane, job.id)).state).toBe("done");
    expect(controlPlane.job(job.id).bytesMoved).toBe(0);
    const end = appliance.volume("db").markers().find((m) => m.kind === "fixupEnd")!;
    expect(end.detail).toMatchObject({ bytes: 0, matched: volumeBytes });
    await tearDown();
  });

  it("resyncs by itself after a gap once the link streams (as a job), when the process asks for it", async () => {
    const fixture = await setUp({ volumeBytes, bufferBytes: 128 * 1024 });
    const { switchNode, controlPlane, appliance, primary, tearDown } = fixture;
    switchNode.setAutoResync((name) => controlPlane.resync(name, { full: false }));
    await makeGap(fixture);
    let jobs = controlPlane.jobs();
    for (let turn = 0; turn < 600 && !(jobs.length > 0 && jobs[0].state === "done"); turn++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      jobs = controlPlane.jobs();
    }
    expect(jobs.map((j) => [j.kind, j.state])).toEqual([["resync", "done"]]);
    const volume = appliance.volume("db");
    expect(volume.suspectIntervals()[0].to).toBeDefined();
    expect(firstDifference(await readAll(volume.openImage("head")), await readAll(primary))).toBe(-1);
    await tearDown();
  });

  it("leaves the suspect interval open when cancelled", async () => {
    const fixture = await setUp({ volumeBytes, bufferBytes: 128 * 1024 });
    const { controlPlane, appliance, tearDown } = fixture;
    await makeGap(fixture);
    const job = await controlPlane.resync("db", { full: true });
    await controlPlane.cancelJob(job.id);
    const ended = await waitForJob(controlPlane, job.id);
    expect(["cancelled", "done"]).toContain(ended.state);
    if (ended.state === "cancelled") {
      expect(appliance.volume("db").suspectIntervals()[0].to).toBeUndefined();
      expect(fixture.splitter.needsResync).toBe(true);
    }
    await tearDown();
  });
});
