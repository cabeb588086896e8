/**
 * Proves what a process serves over NBD (`VolumeExports`, SPEC.md "NBD"), against an
 * in-memory appliance whose volume was written straight into its journal (a replay model
 * gives every state) and a Splitter over a memory primary: `VOL` is the splitter, read-write,
 * FUA passing through; `VOL@POINT` opens the read-only image at every POINT form and equals
 * the model byte for byte; `VOL@POINT+rw` takes writes into a throw-away overlay and leaves
 * the journal and head unchanged; LIST shows volumes and snapshot images with size and point;
 * a suspect point opens with a logged warning and says so in its description; unknown
 * volumes, points outside the retained range (the message names the range), bad names, and
 * images asked of a process without an appliance get clear errors and open nothing. Then
 * through NbdServer on an in-test connection: the error text reaches the client as
 * NBD_REP_ERR_UNKNOWN, writes to an image get EPERM, and a full overlay answers ENOSPC.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Appliance } from "../../src/appliance/appliance.ts";
import { NotFoundError, PointUnavailableError } from "../../src/appliance/errors.ts";
import { journalRecordKinds } from "../../src/appliance/journal_record.ts";
import type { Volume } from "../../src/appliance/volume.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { formatTimeUs } from "../../src/core/units.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { OverlayBlockDevice, OverlayFullError } from "../../src/io/overlay_block_device.ts";
import { errorValueOf } from "../../src/nbd/nbd_errors.ts";
import { type NbdExport, NbdServer } from "../../src/nbd/nbd_server.ts";
import {
  encodeInfoRequest,
  encodeOption,
  nbdClientFlags,
  nbdCommandFlags,
  nbdCommands,
  nbdErrors,
  nbdOptionReplies,
  nbdOptions,
  type RequestFields,
} from "../../src/nbd/protocol.ts";
import { VolumeExports } from "../../src/server/volume_exports.ts";
import { Splitter } from "../../src/switch/splitter.ts";
import { SplitterDevice } from "../../src/switch/splitter_device.ts";
import {
  duplexPair,
  firstDifference,
  flagsThen,
  goBytes,
  parseTranscript,
  patternBytes,
  readLengthsOf,
  requestBytes,
  within,
} from "../nbd/nbd_support.ts";
import { fillStartUs, fillVolume, memoryAppliance, type ReplayModel } from "./volume_exports_support.ts";

const volumeBytes = 1024 * 1024;
const writes = 40;
const snapshotAfter = 20;

async function readAll(exported: NbdExport): Promise<Uint8Array> {
  const bytes = new Uint8Array(exported.device.sizeBytes);
  await exported.device.read(0, bytes);
  return bytes;
}

function expectSame(actual: Uint8Array, expected: Uint8Array, what: string) {
  expect(actual.length, what).toBe(expected.length);
  expect(firstDifference(actual, expected), `${what}: first differing byte`).toBe(-1);
}

describe("VolumeExports", () => {
  let clock: ManualClock;
  let appliance: Appliance;
  let db: Volume;
  let states: ReplayModel;
  let primary: MemoryBlockDevice;
  let splitter: Splitter;
  let logs: string[];
  let suspect: Map<number, string>;
  let exportsOf: VolumeExports;

  beforeEach(async () => {
    clock = new ManualClock();
    appliance = await memoryAppliance(clock);
    db = await appliance.register({ name: "db", sizeBytes: volumeBytes, regionBytes: 65536 });
    await appliance.register({ name: "logs", sizeBytes: 512 * 1024, regionBytes: 65536 });
    states = await fillVolume(db, { writes, snapshotAfter, snapshotName: "before-upgrade" });
    clock.advanceUs(10_000_000); // every write time is now in the past
    primary = new MemoryBlockDevice(volumeBytes);
    splitter = await Splitter.open(
      { primary, drlCell: new MemoryDurableCell(), clock, checksum: await createChecksum() },
      { name: "db", regionBytes: 65536, bufferBytes: 1024 * 1024 },
    );
    logs = [];
    suspect = new Map();
    exportsOf = new VolumeExports({
      appliance,
      splitters: new Map([["db", splitter]]),
      isSuspect: (volumeName, point) => (volumeName === "db" ? suspect.get(point.seq) : undefined),
      log: (line) => logs.push(line),
    });
  });

  afterEach(async () => {
    await appliance.close();
  });

  it("serves VOL read-write through the splitter, FUA passing through to the primary", async () => {
    const exported = (await exportsOf.resolveExport("db"))!;
    expect(exported.readOnly).toBe(false);
    expect(exported.device).toBeInstanceOf(SplitterDevice);
    expect(exported.device.capabilities).toEqual({ writable: true, flush: true, fua: true });
    expect(exported.description).toMatch(/^volume db, 1\.00 MiB, read-write, protecting, head seq:41/);
    await exported.device.write(8192, patternBytes(4096, 1), { fua: true });
    await exported.device.write(16384, patternBytes(4096, 2));
    expect(primary.pendingBytes()).toBe(4096); // the FUA write is durable, the other pending
    await exported.device.flush();
    expect(primary.pendingBytes()).toBe(0);
    expect(splitter.nextSeq).toBe(3); // both writes were copied for the appliance
    const sector = new Uint8Array(4096);
    await exported.device.read(8192, sector);
    expectSame(sector, patternBytes(4096, 1), "read back");
    await exported.close!();
    await expect(exported.device.read(0, sector)).rejects.toThrow(/closed/);
    // The splitter outlives the connection.
    const again = (await exportsOf.resolveExport("db"))!;
    await again.device.write(0, patternBytes(512, 3));
    expect(splitter.nextSeq).toBe(4);
  });

  it("opens VOL@seq:N at every seq, equal to the replay model byte for byte", async () => {
    for (const seq of [0, 1, 7, 19, 20, 21, 33, 41]) {
      const exported = (await exportsOf.resolveExport(`db@seq:${seq}`))!;
      expect(exported.readOnly).toBe(true);
      expect(exported.device.capabilities.writable).toBe(false);
      expectSame(await readAll(exported), states[seq], `db@seq:${seq}`);
      expect(exportsOf.openImageCount).toBe(1);
      await exported.close!();
      expect(exportsOf.openImageCount).toBe(0);
    }
  });

  it("opens every other POINT form: snap:NAME, a time, -5m relative, now and head", async () => {
    const snapshot = db.snapshots()[0];
    expect(snapshot.seq).toBe(snapshotAfter + 1);
    const cases: [string, number][] = [
      ["db@snap:before-upgrade", snapshotAfter],
      [`db@${formatTimeUs(fillStartUs + 10 * 1000)}`, 10],
      [`db@${formatTimeUs(fillStartUs + 10 * 1000 + 999)}`, 10],
      ["db@now", 41],
      ["db@head", 41],
      ["db@-1s", 41],
    ];
    for (const [name, seq] of cases) {
      const exported = (await exportsOf.resolveExport(name))!;
      expectSame(await readAll(exported), states[seq], name);
      await exported.close!();
    }
  });

  it("takes writes to VOL@POINT+rw into a throw-away overlay, leaving the journal and head unchanged", async () => {
    const journalBytes = db.journalBytes;
    const head = db.head;
    const exported = (await exportsOf.resolveExport("db@seq:10+rw"))!;
    expect(exported.readOnly).toBe(false);
    expect(exported.device).toBeInstanceOf(OverlayBlockDevice);
    expect(exported.description).toMatch(/writable scratch image \(writes are thrown away, up to 256 MiB\)/);
    expect(exportsOf.openWritableImageCount).toBe(1);
    const model = states[10].slice();
    await exported.device.write(4096 + 512, patternBytes(1024, 9));
    model.set(patternBytes(1024, 9), 4096 + 512);
    await exported.device.write(0, patternBytes(65536, 8));
    model.set(patternBytes(65536, 8), 0);
    expectSame(await readAll(exported), model, "the scratch image");
    await exported.close!();
    expect(exportsOf.openWritableImageCount).toBe(0);
    expect(db.journalBytes).toBe(journalBytes);
    expect(db.head).toEqual(head);
    const image = (await exportsOf.resolveExport("db@seq:10"))!;
    expectSame(await readAll(image), states[10], "the image after the scratch image closed");
    await image.close!();
  });

  it("lists every volume and snapshot image with its size and point", async () => {
    await db.snapshot("after-all");
    const listings = exportsOf.listExports();
    expect(listings.map((listing) => listing.name)).toEqual([
      "db",
      "db@snap:before-upgrade",
      "db@snap:after-all",
      "logs@head",
    ]);
    expect(listings[0].description).toMatch(/^volume db, 1\.00 MiB, read-write/);
    const at = formatTimeUs(fillStartUs + 20 * 1000);
    expect(listings[1].description).toBe(
      `volume db, snapshot before-upgrade, at seq:21 (${at}), 1.00 MiB, read-only image`,
    );
    expect(listings[3].description).toMatch(/^volume logs, newest durable state, at seq:0 \(.*\), 512 KiB, read-only image$/);
  });

  it("opens a suspect point with a logged warning that its description repeats", async () => {
    suspect.set(15, "inside a gap: writes 12 to 18 were missed (marking mode)");
    const exported = (await exportsOf.resolveExport("db@seq:15"))!;
    expectSame(await readAll(exported), states[15], "the suspect image");
    expect(exported.description).toContain("WARNING: suspect point: inside a gap");
    expect(logs).toContainEqual(
      'Warning: image "db@seq:15" opens at seq:15, a suspect point: inside a gap: writes 12 to 18 were missed (marking mode)',
    );
    await exported.close!();
    // A point not in the gap opens without a warning.
    const fine = (await exportsOf.resolveExport("db@seq:25"))!;
    expect(fine.description).not.toContain("WARNING");
    expect(logs).toHaveLength(1);
    await fine.close!();
    suspect.set(snapshotAfter + 1, "before a resync"); // the snapshot marker's seq
    expect(exportsOf.listExports().find((l) => l.name === "db@snap:before-upgrade")?.description).toContain(
      "WARNING: suspect point: before a resync",
    );
  });

  it("by default asks the volume: a time or relative point inside a gap warns, though its seq lies before the gap", async () => {
    // Writes 1-41 took fillStartUs + N ms. The switch then missed writes from fillStartUs + 2 s
    // until the link came back (now, fillStartUs + 10 s), and recorded the gap at seq 42.
    const gapFromUs = fillStartUs + 2_000_000;
    await db.appendMarker({
      seq: db.nextSeq,
      timeUs: clock.nowUs(),
      kind: journalRecordKinds.gap,
      payload: { reason: "marking mode", afterSeq: 41, fromTimeUs: gapFromUs },
    });
    await db.flush();
    const real = new VolumeExports({ appliance, log: (line) => logs.push(line) });
    const inGap = [`db@${formatTimeUs(gapFromUs + 3_000_000)}`, "db@-3s", `db@${formatTimeUs(gapFromUs)}+rw`];
    for (const name of inGap) {
      const exported = (await real.resolveExport(name))!;
      expect(exported.description, name).toMatch(/at seq:41 .*WARNING: suspect point: inside the suspect interval after the gap at seq:42 \(marking mode\)/);
      await exported.close!();
    }
    expect(logs.filter((line) => line.startsWith("Warning:"))).toHaveLength(inGap.length);
    expect(logs[0]).toMatch(/^Warning: image "db@2026-11-22T10:00:05.*" opens at seq:41, a suspect point: inside the suspect interval/);
    // Before the gap, by time or by seq (the state after seq 41 was real), no warning.
    for (const name of [`db@${formatTimeUs(gapFromUs - 1)}`, "db@seq:41", "db@seq:20"]) {
      const exported = (await real.resolveExport(name))!;
      expect(exported.description, name).not.toContain("WARNING");
      await exported.close!();
    }
    expect(logs.filter((line) => line.startsWith("Warning:"))).toHaveLength(inGap.length);
  });

  it("refuses unknown volumes, unretained points and bad names with clear errors, opening nothing", async () => {
    const refusals: [string, new (...args: never[]) => Error, RegExp][] = [
      ["nope", NotFoundError, /Volume "nope" is not served here; volumes: db, logs/],
      ["nope@head", NotFoundError, /Volume "nope" is not served here; volumes: db, logs/],
      ["logs", NotFoundError, /Volume "logs" is served read-write by its switch, not by this process; open an image such as "logs@head"/],
      ["db@seq:42", PointUnavailableError, /Point seq:42 of volume "db" is outside the retained range seq:0 \(.*\) to seq:41 \(.*\)/],
      ["db@seq:42+rw", PointUnavailableError, /outside the retained range seq:0/],
      ["db@2020-01-01T00:00:00Z", PointUnavailableError, /outside the retained range seq:0/],
      ["db@snap:missing", PointUnavailableError, /Snapshot "missing" of volume "db" does not exist; snapshots: before-upgrade/],
      ["db@yesterday", SyntaxError, /Cannot parse export name "db@yesterday"/],
      ["db+rw", SyntaxError, /needs a POINT/],
    ];
    for (const [name, errorClass, message] of refusals) {
      const attempt = exportsOf.resolveExport(name);
      await expect(attempt, name).rejects.toThrow(errorClass);
      await expect(exportsOf.resolveExport(name), name).rejects.toThrow(message);
    }
    expect(exportsOf.openImageCount).toBe(0);
    expect(exportsOf.openWritableImageCount).toBe(0);
  });

  it("refuses images where no appliance runs, and more writable images than the limit", async () => {
    const switchOnly = new VolumeExports({ splitters: new Map([["db", splitter]]), log: () => {} });
    await expect(switchOnly.resolveExport("db@head")).rejects.toThrow(
      /Cannot open image "db@head": images are served by the appliance, which does not run in this process; "db" itself is served here/,
    );
    expect(switchOnly.listExports().map((l) => l.name)).toEqual(["db"]);
    const limited = new VolumeExports({ appliance, log: () => {} }, { writableImagesMax: 1 });
    const first = (await limited.resolveExport("db@seq:5+rw"))!;
    await expect(limited.resolveExport("db@seq:6+rw")).rejects.toThrow(/1 writable images are open, the limit/);
    const readOnly = (await limited.resolveExport("db@seq:6"))!; // read-only images are not limited
    await first.close!();
    const second = (await limited.resolveExport("db@seq:6+rw"))!;
    await second.close!();
    await readOnly.close!();
    expect(() => new VolumeExports({ log: () => {} }, { writableImagesMax: 0 })).toThrow(RangeError);
    expect(() => new VolumeExports({ log: () => {} }, { overlayBlockBytes: 1000 })).toThrow(RangeError);
  });

  it("maps a full overlay to ENOSPC", () => {
    expect(errorValueOf(new OverlayFullError("full"))).toBe(nbdErrors.noSpace);
  });
});

describe("VolumeExports behind NbdServer", () => {
  async function session(server: NbdServer, bytes: Uint8Array) {
    const [client, serverEnd] = duplexPair();
    const done = server.handle(serverEnd);
    await client.send(bytes);
    await within(done, 10_000, "The session");
    return serverEnd.sentBytes;
  }

  async function fixture(options: { overlayBytesMax?: number } = {}) {
    const clock = new ManualClock();
    const appliance = await memoryAppliance(clock);
    const db = await appliance.register({ name: "db", sizeBytes: volumeBytes, regionBytes: 65536 });
    const states = await fillVolume(db, { writes: 12 });
    const logs: string[] = [];
    const exportsOf = new VolumeExports({ appliance, log: (line) => logs.push(line) }, options);
    return { appliance, db, states, logs, exportsOf, server: new NbdServer(exportsOf) };
  }

  it("sends the reason an image cannot open to the client as NBD_REP_ERR_UNKNOWN", async () => {
    const { appliance, server, exportsOf, logs } = await fixture();
    const sent = await session(
      server,
      flagsThen(
        nbdClientFlags.fixedNewstyle | nbdClientFlags.noZeroes,
        encodeOption(nbdOptions.go, encodeInfoRequest("db@seq:99", [])),
        encodeOption(nbdOptions.go, encodeInfoRequest("db@bogus", [])),
        encodeOption(nbdOptions.abort),
      ),
    );
    const { optionReplies } = parseTranscript(sent);
    const text = (data: Uint8Array) => new TextDecoder().decode(data);
    expect(optionReplies[0].replyType).toBe(nbdOptionReplies.errorUnknown);
    expect(text(optionReplies[0].data)).toMatch(
      /^Cannot open export "db@seq:99": Point seq:99 of volume "db" is outside the retained range seq:0 \(.*\) to seq:12 \(.*\)$/,
    );
    expect(optionReplies[1].replyType).toBe(nbdOptionReplies.errorUnknown);
    expect(text(optionReplies[1].data)).toMatch(/Cannot parse export name "db@bogus"/);
    expect(exportsOf.openImageCount).toBe(0);
    void logs;
    await appliance.close();
  });

  it("answers writes to an image with EPERM and reads with the image's bytes", async () => {
    const { appliance, server, states, exportsOf } = await fixture();
    const requests: RequestFields[] = [
      { type: nbdCommands.read, cookie: 1n, offsetBytes: 0, lengthBytes: 65536 },
      { type: nbdCommands.write, cookie: 2n, offsetBytes: 0, lengthBytes: 512, payload: patternBytes(512, 1) },
      { type: nbdCommands.disconnect, cookie: 3n, offsetBytes: 0, lengthBytes: 0 },
    ];
    const sent = await session(server, new Uint8Array([...goBytes("db@seq:6"), ...requestBytes(requests)]));
    const { replies } = parseTranscript(sent, readLengthsOf(requests));
    expect(replies.get(1n)?.errorValue).toBe(0);
    expectSame(replies.get(1n)!.data!, states[6].subarray(0, 65536), "READ of db@seq:6");
    expect(replies.get(2n)?.errorValue).toBe(nbdErrors.permission);
    expect(exportsOf.openImageCount).toBe(0); // closed with the connection
    await appliance.close();
  });

  it("answers a write past a full overlay with ENOSPC, keeping what was written", async () => {
    const { appliance, server, db, states } = await fixture({ overlayBytesMax: 8192 });
    const journalBytes = db.journalBytes;
    const requests: RequestFields[] = [
      { type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: 8192, payload: patternBytes(8192, 4) },
      { type: nbdCommands.write, flags: nbdCommandFlags.fua, cookie: 2n, offsetBytes: 65536, lengthBytes: 512, payload: patternBytes(512, 5) },
      { type: nbdCommands.flush, cookie: 3n, offsetBytes: 0, lengthBytes: 0 },
      { type: nbdCommands.read, cookie: 4n, offsetBytes: 0, lengthBytes: 131072 },
      { type: nbdCommands.disconnect, cookie: 5n, offsetBytes: 0, lengthBytes: 0 },
    ];
    const sent = await session(server, new Uint8Array([...goBytes("db@seq:12+rw"), ...requestBytes(requests)]));
    const { replies } = parseTranscript(sent, readLengthsOf(requests));
    expect(replies.get(1n)?.errorValue).toBe(0);
    expect(replies.get(2n)?.errorValue).toBe(nbdErrors.noSpace);
    expect(replies.get(3n)?.errorValue).toBe(0);
    const model = states[12].slice(0, 131072);
    model.set(patternBytes(8192, 4), 0);
    expectSame(replies.get(4n)!.data!, model, "READ of the scratch image");
    expect(db.journalBytes).toBe(journalBytes);
    await appliance.close();
  });
});
