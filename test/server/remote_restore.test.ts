/**
 * Proves restore when `anytime appliance` and `anytime switch` are separate processes joined
 * over TCP (assembled with startAppliance / startSwitch on the runtime running the tests, real
 * files and sockets): the appliance's control plane starts the job, reports the exact point,
 * progress and bytes, and the switch copies from the appliance's image over the link. After a
 * restore the switch's primary equals the snapshot image byte for byte (plus, in instant mode,
 * the host writes made during it), and the appliance's head image equals the primary; a restore
 * of a point outside the window is refused before anything moves; a cancelled one leaves a gap.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PointUnavailableError } from "../../src/api/control_plane.ts";
import { type RunningProcess, type ServerRuntime, startAppliance, startSwitch } from "../../src/server/processes.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

const volumeBytes = 8 * 1024 * 1024;

let target: RuntimeTarget;
let runtime: ServerRuntime;
const logs: string[] = [];

beforeAll(async () => {
  target = await runtimeTarget();
  runtime = target.createServerRuntime({ log: (line) => logs.push(line) });
});

async function readAll(device: { read(offsetBytes: number, target: Uint8Array): Promise<void> }): Promise<Uint8Array> {
  const bytes = new Uint8Array(volumeBytes);
  await device.read(0, bytes);
  return bytes;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

async function waitForJob(process: RunningProcess, id: string) {
  for (let turn = 0; turn < 3000; turn++) {
    const job = process.controlPlane.job(id);
    if (job.state !== "running" && job.state !== "queued") return job;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`Job ${id} did not end`);
}

describe("restore with anytime appliance + anytime switch over TCP", () => {
  let directory: string;
  let appliance: RunningProcess;
  let switchProcess: RunningProcess;

  beforeAll(async () => {
    directory = await target.tempDir();
    appliance = await startAppliance(runtime, {
      dataDirectory: `${directory}/appliance`,
      listenAddress: "127.0.0.1:0",
      httpAddress: "127.0.0.1:0",
      nbdAddress: "127.0.0.1:0",
    });
    switchProcess = await startSwitch(runtime, {
      stateDirectory: `${directory}/switch`,
      applianceAddress: appliance.linkAddress!,
      secretFile: `${directory}/appliance/secret`,
      volumes: [{ name: "db", path: `${directory}/db.img`, sizeBytes: volumeBytes }],
      nbdAddress: "127.0.0.1:0",
      regionBytes: 65536,
    });
  });

  afterAll(async () => {
    await switchProcess?.stop();
    await appliance?.stop();
    await target.removeDir(directory);
  });

  /** Writes through the switch's splitter and waits until the appliance holds every write. */
  async function write(offsetBytes: number, lengthBytes: number, value: number) {
    const splitter = switchProcess.switchNode!.splitter("db");
    await splitter.write(offsetBytes, new Uint8Array(lengthBytes).fill(value));
    await switchProcess.switchNode!.waitAcknowledged("db", splitter.nextSeq - 1);
  }

  async function expectHeadEqualsPrimary() {
    const splitter = switchProcess.switchNode!.splitter("db");
    await switchProcess.switchNode!.waitAcknowledged("db", splitter.nextSeq - 1);
    const volume = appliance.appliance!.volume("db");
    for (let turn = 0; turn < 400 && volume.head.seq < splitter.nextSeq - 1; turn++) await runtime.clock.sleep(5);
    const primary = await readAll(switchProcess.switchNode!.primary("db"));
    expect(firstDifference(await readAll(volume.openImage("head")), primary)).toBe(-1);
  }

  it("puts the switch's primary back to a snapshot through the appliance's API, moving only what differs", async () => {
    for (let mib = 0; mib < 8; mib++) await write(mib * 1024 * 1024, 65536, 10 + mib);
    const good = await appliance.controlPlane.createSnapshot("db", "good");
    await write(0, 4096, 0xee); // the damage
    await write(5 * 1024 * 1024 + 8192, 8192, 0xee);
    const volume = appliance.appliance!.volume("db");
    const expected = await readAll(volume.openImage("snap:good"));

    await expect(appliance.controlPlane.restore("db", { at: "seq:99999", instant: false })).rejects.toThrow(PointUnavailableError);
    const job = await appliance.controlPlane.restore("db", { at: "snap:good", instant: false });
    expect(job).toMatchObject({ kind: "restore", volume: "db", state: "running", point: { seq: good.seq, landedOn: "snapshot" } });
    const stateDuring = appliance.controlPlane.volume("db").state;
    const ended = await waitForJob(appliance, job.id);
    expect(stateDuring).toBe("restoring");
    expect(ended).toMatchObject({ state: "done", progress: 1, bytesMoved: 4096 + 8192, bytesTotal: 4096 + 8192 });
    expect(firstDifference(await readAll(switchProcess.switchNode!.primary("db")), expected)).toBe(-1);
    const markers = volume.markers().filter((m) => m.kind === "restore");
    expect(markers.map((m) => m.detail.toSeq)).toEqual([good.seq]);
    await expectHeadEqualsPrimary();
    expect(appliance.controlPlane.volume("db").state).toBe("protecting");
  });

  it("instant: host writes during the restore land on top of the restored data, and the appliance's head follows", async () => {
    const volume = appliance.appliance!.volume("db");
    for (let mib = 0; mib < 8; mib++) await write(mib * 1024 * 1024, 256 * 1024, 0x30 + mib);
    await appliance.controlPlane.createSnapshot("db", "before-instant");
    const expected = await readAll(volume.openImage("snap:before-instant"));
    for (let mib = 0; mib < 8; mib++) await write(mib * 1024 * 1024, 256 * 1024, 0xdd);

    const job = await appliance.controlPlane.restore("db", { at: "snap:before-instant", instant: true });
    const splitter = switchProcess.switchNode!.splitter("db");
    const read = new Uint8Array(4096);
    await splitter.read(7 * 1024 * 1024, read); // maybe not copied yet: restored first
    expect(read.every((b) => b === 0x37)).toBe(true);
    await splitter.write(6 * 1024 * 1024 + 4096, new Uint8Array(4096).fill(0x55));
    const ended = await waitForJob(appliance, job.id);
    expect(ended).toMatchObject({ state: "done", bytesTotal: 8 * 256 * 1024 });
    expected.set(new Uint8Array(4096).fill(0x55), 6 * 1024 * 1024 + 4096);
    expect(firstDifference(await readAll(switchProcess.switchNode!.primary("db")), expected)).toBe(-1);
    await expectHeadEqualsPrimary();
  });

  it("a cancelled restore ends cancelled (or done, if it won the race) and a cancel leaves a gap", async () => {
    const volume = appliance.appliance!.volume("db");
    await appliance.controlPlane.createSnapshot("db", "before-full");
    await write(0, 4096, 0x77);
    const job = await appliance.controlPlane.restore("db", { at: "snap:before-full", instant: false, full: true });
    expect(job.bytesTotal).toBe(volumeBytes);
    await appliance.controlPlane.cancelJob(job.id);
    const ended = await waitForJob(appliance, job.id);
    expect(["cancelled", "done"]).toContain(ended.state);
    if (ended.state === "cancelled") {
      const splitter = switchProcess.switchNode!.splitter("db");
      await switchProcess.switchNode!.waitAcknowledged("db", splitter.nextSeq - 1);
      for (let turn = 0; turn < 400 && volume.head.seq < splitter.nextSeq - 1; turn++) await runtime.clock.sleep(5);
      expect(volume.gaps().map((gap) => gap.reason)).toContain("restore cancelled");
    }
  });
});
