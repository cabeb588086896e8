/**
 * Proves the appliance's restore job when the switch runs elsewhere (`restoreRemotely`), with
 * the switch end driven by hand over an in-test duplex connection: the job reports the point
 * and the switch's progress, and fails with a clear 503-type error when the switch goes silent
 * (it stopped, or its link never came back) for longer than the bound; a job asked of a volume
 * no switch streams is refused before any job is kept.
 */
import { describe, expect, it } from "vitest";
import { Appliance } from "../../src/appliance/appliance.ts";
import { ApplianceLink } from "../../src/appliance/appliance_link.ts";
import { UnavailableError } from "../../src/api/control_plane.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { Jobs } from "../../src/server/jobs.ts";
import { restoreRemotely } from "../../src/server/remote_restore.ts";
import { FramedConnection } from "../../src/wire/framed_connection.ts";
import { switchHandshake } from "../../src/wire/handshake.ts";
import { packWriteEntries, type MessageKind, messageKinds, type MessageOf } from "../../src/wire/messages.ts";
import { duplexPair } from "../wire/wire_support.ts";
import { OffsetClock, secret } from "./server_support.ts";

async function setUp() {
  const clock = new OffsetClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: () => Promise.resolve({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() }),
  }, { segmentSizeBytes: 1024 * 1024, groupBytesMax: 256 * 1024 });
  const link = new ApplianceLink({ appliance, clock }, { secret });
  const [switchEnd, applianceEnd] = duplexPair();
  const session = link.handle(applianceEnd);
  const framed = new FramedConnection(switchEnd);
  await switchHandshake(framed, { secret, switchId: "switch-1", volumes: [{ name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 }] });
  const checksum = await createChecksum();
  const data = new Uint8Array(512).fill(1);
  await framed.send(messageKinds.write, {
    volume: "db",
    entries: packWriteEntries([{ seq: 1, timeUs: clock.nowUs(), offsetBytes: 0, lengthBytes: 512, checksum: checksum.hash64(data) }]),
  }, data);
  const volume = appliance.volume("db");
  for (let turn = 0; turn < 500 && volume.head.seq < 1; turn++) await clock.sleep(2);
  return { clock, appliance, link, framed, session, jobs: new Jobs(clock) };
}

async function nextOf<K extends MessageKind>(framed: FramedConnection, kind: K): Promise<MessageOf<K>> {
  for (;;) {
    const message = await framed.receive();
    if (message === undefined) throw new Error("The appliance closed the link");
    if (message.kind === kind) return message as MessageOf<K>;
  }
}

describe("restore job through a switch in another process", () => {
  it("reports the switch's progress, and fails clearly when the switch goes silent", async () => {
    const { clock, appliance, link, framed, session, jobs } = await setUp();
    const starting = jobs.start({ kind: "restore", volume: "db" }, (handle, ready) =>
      restoreRemotely({ clock, appliance, applianceLink: link, silenceMsMax: 600 }, handle, ready, {
        volume: "db",
        at: "seq:1",
        instant: true,
      }));
    const request = await nextOf(framed, messageKinds.restoreRequest);
    expect(request.body).toMatchObject({ volume: "db", toSeq: 1, instant: true, full: false });
    await framed.send(messageKinds.restoreStarted, { requestId: request.body.requestId, markerSeq: 2, bytesTotal: 4096 });
    const job = await starting;
    expect(job).toMatchObject({ state: "running", bytesTotal: 4096, point: { seq: 1 } });
    await framed.send(messageKinds.restoreProgress, { requestId: request.body.requestId, bytesMoved: 1024, state: "running" });
    for (let turn = 0; turn < 100 && jobs.get(job.id).bytesMoved < 1024; turn++) await clock.sleep(10);
    expect(jobs.get(job.id).bytesMoved).toBe(1024);

    // Then nothing: the switch is gone.
    for (let turn = 0; turn < 300 && jobs.get(job.id).state === "running"; turn++) await clock.sleep(10);
    const failed = jobs.get(job.id);
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatchObject({ code: "UnavailableError" });
    expect(failed.error?.message).toMatch(/said nothing about the restore of volume "db" for \d+ ms.*resync the volume/);
    expect(link.restoreCount).toBe(0);
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    await appliance.close();
  });

  it("is refused before any job is kept when no switch streams the volume", async () => {
    const { clock, appliance, link, framed, session, jobs } = await setUp();
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    const attempt = jobs.start({ kind: "restore", volume: "db" }, (handle, ready) =>
      restoreRemotely({ clock, appliance, applianceLink: link }, handle, ready, { volume: "db", at: "head", instant: false }));
    await expect(attempt).rejects.toThrow(UnavailableError);
    expect(jobs.list()).toEqual([]);
    await appliance.close();
  });
});
