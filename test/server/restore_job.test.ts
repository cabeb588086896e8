/**
 * Proves the restore job of `anytime serve` (switch and appliance in one process): the primary
 * becomes the image at the point byte for byte, moving only the extents that differ; the job
 * reports the exact point, progress and bytes; the journal records a restore marker and every
 * earlier point stays browsable; in instant mode host reads during the job see restored data
 * and host writes land on top of it (never under the background copy) and are journaled after
 * the marker; without instant, host I/O is refused until done; a cancelled job leaves a
 * recorded gap; refusals (outside the window, suspect point) change nothing.
 */
import { describe, expect, it } from "vitest";
import { PointUnavailableError } from "../../src/api/control_plane.ts";
import { journalRecordKinds } from "../../src/appliance/journal_record.ts";
import { setUp } from "./server_support.ts";

const volumeBytes = 8 * 1024 * 1024;

function fill(lengthBytes: number, value: number): Uint8Array {
  return new Uint8Array(lengthBytes).fill(value);
}

async function readAll(device: { read(offsetBytes: number, target: Uint8Array): Promise<void> }, sizeBytes: number) {
  const bytes = new Uint8Array(sizeBytes);
  await device.read(0, bytes);
  return bytes;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

async function waitForJob(controlPlane: { job(id: string): { state: string } }, id: string) {
  for (let turn = 0; turn < 2000; turn++) {
    const job = controlPlane.job(id);
    if (job.state !== "running" && job.state !== "queued") return job;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`Job ${id} did not end`);
}

describe("restore in one process", () => {
  it("puts the primary back to the point, moving only what differs, and keeps the history", async () => {
    const { splitter, switchNode, controlPlane, appliance, primary, tearDown } = await setUp({ volumeBytes, bufferBytes: 32 * 1024 * 1024 });
    await splitter.write(0, fill(65536, 1));
    await splitter.write(1024 * 1024, fill(65536, 2));
    const good = await controlPlane.createSnapshot("db", "good");
    await splitter.write(0, fill(4096, 9)); // the damage: 4 KiB
    await splitter.write(4 * 1024 * 1024, fill(8192, 9));
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const volume = appliance.volume("db");
    const expected = await readAll(volume.openImage("snap:good"), volumeBytes);

    const job = await controlPlane.restore("db", { at: "snap:good", instant: false });
    expect(job).toMatchObject({ kind: "restore", volume: "db", point: { seq: good.seq, landedOn: "snapshot" } });
    const ended = await waitForJob(controlPlane, job.id);
    expect(ended).toMatchObject({ state: "done", progress: 1 });
    const final = controlPlane.job(job.id);
    expect(final.bytesMoved).toBe(4096 + 8192); // only the extents written since the point
    expect(firstDifference(await readAll(primary, volumeBytes), expected)).toBe(-1);

    // The journal recorded the restore (no data) and the history before it still opens.
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const restoreMarkers = volume.markers().filter((m) => m.kind === "restore");
    expect(restoreMarkers).toHaveLength(1);
    expect(restoreMarkers[0].detail.toSeq).toBe(good.seq);
    const damaged = new Uint8Array(4096);
    await volume.openImage(`seq:${restoreMarkers[0].seq - 1}`).read(0, damaged);
    expect(damaged.every((b) => b === 9)).toBe(true);
    expect(controlPlane.volume("db").state).toBe("protecting");
    // Protection stays on: the journal's head is the primary, byte for byte.
    expect(firstDifference(await readAll(volume.openImage("head"), volumeBytes), await readAll(primary, volumeBytes))).toBe(-1);
    expect(volume.journalBytes).toBeGreaterThan(0);
    expect(journalRecordKinds.restore).toBe(12);
    await tearDown();
  });

  it("instant: host reads see restored data and host writes land on top, journaled after the marker", async () => {
    const { splitter, switchNode, controlPlane, appliance, primary, tearDown } = await setUp({ volumeBytes, bufferBytes: 32 * 1024 * 1024 });
    for (let mib = 0; mib < 8; mib++) await splitter.write(mib * 1024 * 1024, fill(256 * 1024, 10 + mib));
    await controlPlane.createSnapshot("db", "good");
    for (let mib = 0; mib < 8; mib++) await splitter.write(mib * 1024 * 1024, fill(256 * 1024, 0xee));
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const volume = appliance.volume("db");
    const expected = await readAll(volume.openImage("snap:good"), volumeBytes);

    const job = await controlPlane.restore("db", { at: "snap:good", instant: true });
    // The host reads a region the copy may not have reached: it sees the restored bytes.
    const read = new Uint8Array(4096);
    await splitter.read(7 * 1024 * 1024, read);
    expect(read.every((b) => b === 17)).toBe(true);
    // And writes on top of a not-yet-restored region: its write wins over the copy.
    await splitter.write(6 * 1024 * 1024 + 4096, fill(4096, 0x55));
    await waitForJob(controlPlane, job.id);
    expected.set(fill(4096, 0x55), 6 * 1024 * 1024 + 4096);
    expect(firstDifference(await readAll(primary, volumeBytes), expected)).toBe(-1);
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const marker = volume.markers().find((m) => m.kind === "restore")!;
    expect(volume.head.seq).toBeGreaterThan(marker.seq); // the host write came after the marker
    expect(firstDifference(await readAll(volume.openImage("head"), volumeBytes), await readAll(primary, volumeBytes))).toBe(-1);
    await tearDown();
  });

  it("refuses host I/O during a non-instant restore, and records a gap when cancelled", async () => {
    const { splitter, switchNode, controlPlane, appliance, tearDown } = await setUp({ volumeBytes, bufferBytes: 32 * 1024 * 1024 });
    for (let mib = 0; mib < 8; mib++) await splitter.write(mib * 1024 * 1024, fill(1024 * 1024, 1));
    await controlPlane.createSnapshot("db", "good");
    for (let mib = 0; mib < 8; mib++) await splitter.write(mib * 1024 * 1024, fill(1024 * 1024, 2));
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const job = await controlPlane.restore("db", { at: "snap:good", instant: false });
    const state = controlPlane.volume("db").state;
    await expect(splitter.write(0, fill(512, 3))).rejects.toThrow(/being restored/);
    await controlPlane.cancelJob(job.id);
    const ended = await waitForJob(controlPlane, job.id);
    expect(["cancelled", "done"]).toContain(ended.state);
    expect(state).toBe("restoring");
    if (ended.state === "cancelled") {
      await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
      const volume = appliance.volume("db");
      expect(volume.gaps().map((g) => g.reason)).toEqual(["restore cancelled"]);
      expect(controlPlane.volume("db").suspect.length).toBe(1);
    }
    await tearDown();
  });

  it("refuses a point outside the window and a suspect point, changing nothing", async () => {
    const { splitter, switchNode, controlPlane, appliance, tearDown } = await setUp({ volumeBytes, bufferBytes: 32 * 1024 * 1024 });
    await splitter.write(0, fill(4096, 1));
    await switchNode.waitAcknowledged("db", 1);
    await expect(controlPlane.restore("db", { at: "seq:999", instant: false })).rejects.toThrow(PointUnavailableError);
    await expect(controlPlane.restore("db", { at: "soon", instant: false })).rejects.toThrow(SyntaxError);
    splitter.recordMarker("gap", { reason: "test gap" });
    await splitter.write(0, fill(4096, 2));
    await switchNode.waitAcknowledged("db", splitter.nextSeq - 1);
    const error = await controlPlane.restore("db", { at: "head", instant: false }).catch((e) => e);
    expect(error).toBeInstanceOf(PointUnavailableError);
    expect(error.message).toMatch(/suspect.*Nearest good points: seq:1/);
    expect(controlPlane.jobs()).toEqual([]);
    expect(appliance.volume("db").markers().map((m) => m.kind)).toEqual(["gap"]);
    await tearDown();
  });
});
