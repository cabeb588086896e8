/**
 * Proves the appliance side of the switch link: a switch with the secret registers its
 * volumes and learns where to resume; WRITE batches are journaled and acknowledged
 * cumulatively only once durable; a resend after a reconnect lands exactly once; a bad batch
 * (gap, broken checksum, unknown volume) gets an ERROR and changes nothing; a peer without
 * the secret gets nothing but an ERROR. Snapshots through the switch (`requestSnapshot`): the
 * request goes to the session streaming the volume and resolves with the switch's seq once
 * the marker is durable and applied; a refusal is a ConflictError with the switch's reason; a
 * session that ends, a switch that does not answer in time, and a request beyond the
 * in-flight limit are SwitchUnavailableErrors, and a late reply is ignored with the link up;
 * bad names, taken names and unknown volumes are refused before anything is sent. The switch
 * end is driven by hand over an in-test duplex connection.
 * Restores through the switch (`startRestore`): RESTORE_REQUEST carries the resolved point;
 * the plan answers the switch's drained head with the extents that differ (in RESTORE_PLAN
 * frames); READ_REQUEST `atSeq` reads the image at the point; RESTORE_STARTED and
 * RESTORE_PROGRESS drive the handle; a cancel is sent again on the session that reports next
 * after a reconnect, with the same request id; a RESTORE_REFUSED is a ConflictError.
 */
import { describe, expect, it } from "vitest";
import { Appliance } from "../../src/appliance/appliance.ts";
import { ApplianceLink, type ApplianceLinkOptions, fitPlan, SwitchUnavailableError } from "../../src/appliance/appliance_link.ts";
import { ConflictError, NotFoundError } from "../../src/appliance/errors.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { wireLimits } from "../../src/core/limits.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { FramedConnection } from "../../src/wire/framed_connection.ts";
import { switchHandshake } from "../../src/wire/handshake.ts";
import {
  packWriteEntries,
  decodeRestoreExtents,
  type Message,
  type MessageKind,
  messageKinds,
  type MessageOf,
  type WriteEntry,
} from "../../src/wire/messages.ts";
import { AuthenticationError, PeerError } from "../../src/wire/errors.ts";
import { duplexPair, rawFrame } from "../wire/wire_support.ts";

const secret = new TextEncoder().encode("correct horse battery staple");
const volumeOffer = { name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 };

async function setUp(options: Partial<ApplianceLinkOptions> = {}) {
  const stores = new Map<string, { journalStore: MemorySegmentStore; mapStore: MemorySegmentStore }>();
  const clock = new ManualClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: (name) => {
      if (!stores.has(name)) stores.set(name, { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() });
      return Promise.resolve(stores.get(name)!);
    },
  }, { segmentSizeBytes: 256 * 1024, groupBytesMax: 64 * 1024 });
  const logs: string[] = [];
  const link = new ApplianceLink({ appliance, clock, log: (line) => logs.push(line) }, { secret, ...options });
  return { appliance, link, logs, clock };
}

async function connectSwitch(link: ApplianceLink, options: { secret?: Uint8Array } = {}) {
  const [switchEnd, applianceEnd] = duplexPair();
  const session = link.handle(applianceEnd);
  const framed = new FramedConnection(switchEnd);
  const result = await switchHandshake(framed, { secret: options.secret ?? secret, switchId: "switch-1", volumes: [volumeOffer] });
  return { framed, session, resume: result.volumes };
}

async function writeBatch(framed: FramedConnection, seqs: number[], options: { corrupt?: boolean; volume?: string } = {}) {
  const checksum = await createChecksum();
  const entries: WriteEntry[] = [];
  const payload = new Uint8Array(seqs.length * 512);
  seqs.forEach((seq, i) => {
    const data = payload.subarray(i * 512, (i + 1) * 512);
    data.fill(seq & 0xff);
    entries.push({ seq, timeUs: seq, offsetBytes: (seq % 64) * 512, lengthBytes: 512, checksum: checksum.hash64(data) });
  });
  if (options.corrupt) payload[0] ^= 1;
  await framed.send(messageKinds.write, { volume: options.volume ?? "db", entries: packWriteEntries(entries) }, payload);
}

async function nextMessage(framed: FramedConnection): Promise<Message> {
  const message = await framed.receive();
  if (message === undefined) throw new Error("The appliance closed the link");
  return message;
}

async function ackThrough(framed: FramedConnection, seq: number): Promise<void> {
  for (;;) {
    const message = await nextMessage(framed);
    if (message.kind === messageKinds.ack && message.body.durableSeq >= seq) return;
  }
}

describe("ApplianceLink", () => {
  it("journals batches, acknowledges once durable, and resumes exactly once after a reconnect", async () => {
    const { appliance, link } = await setUp();
    const first = await connectSwitch(link);
    expect(first.resume).toEqual([{ name: "db", durableSeq: 0 }]);
    await writeBatch(first.framed, [1, 2, 3]);
    await ackThrough(first.framed, 3);
    const volume = appliance.volume("db");
    expect(volume.head.seq).toBe(3);
    await writeBatch(first.framed, [4, 5]);
    await first.framed.close();
    await first.session;

    // The switch resends from what it was last acknowledged (seq 3): 4 and 5 must not repeat.
    const second = await connectSwitch(link);
    expect(second.resume[0].durableSeq).toBeGreaterThanOrEqual(3);
    await writeBatch(second.framed, [4, 5, 6]);
    await ackThrough(second.framed, 6);
    expect(volume.head.seq).toBe(6);
    expect(volume.durableRecords).toBe(6);
    const sector = new Uint8Array(512);
    await volume.openImage("seq:6").read(6 * 512, sector);
    expect(sector[0]).toBe(6);
    await second.framed.send(messageKinds.bye, { reason: "done" });
    await second.session;
    await appliance.close();
  });

  it("refuses a batch with a broken checksum, a gap or an unknown volume, appending nothing", async () => {
    for (const bad of [{ seqs: [1, 2], corrupt: true }, { seqs: [2, 3] }, { seqs: [1], volume: "other" }, { seqs: [1, 3] }]) {
      const { appliance, link } = await setUp();
      const { framed, session } = await connectSwitch(link);
      await writeBatch(framed, bad.seqs, bad);
      const reply = await nextMessage(framed);
      expect(reply.kind).toBe(messageKinds.error);
      if (reply.kind === messageKinds.error) expect(reply.body.message).toMatch(/Cannot journal|not registered/);
      await session;
      const volume = appliance.volume("db");
      await volume.flush();
      expect(volume.durableRecords).toBe(0);
      expect(volume.nextSeq).toBe(1);
      await appliance.close();
    }
  });

  it("refuses a batch whose entry lengths disagree with its payload, or end past the volume, after journaling the batch before it", async () => {
    const checksum = await createChecksum();
    const data = new Uint8Array(1024).fill(9);
    const entry = (seq: number, fields: Partial<WriteEntry> = {}): WriteEntry => ({
      seq, timeUs: seq, offsetBytes: 0, lengthBytes: 512, checksum: checksum.hash64(data.subarray(0, 512)), ...fields,
    });
    const cases = [
      { entries: [entry(2), entry(3, { lengthBytes: 1024 })], payload: data, says: /entries hold 1536 bytes of data, the payload 1024/ },
      { entries: [entry(2, { offsetBytes: volumeOffer.sizeBytes })], payload: data.subarray(0, 512), says: /ends past the end of the/ },
    ];
    for (const bad of cases) {
      const { appliance, link } = await setUp();
      const { framed, session } = await connectSwitch(link);
      await writeBatch(framed, [1]);
      await framed.connection.send(rawFrame(checksum, messageKinds.write, { volume: "db", entries: packWriteEntries(bad.entries) }, bad.payload));
      let reply = await nextMessage(framed);
      while (reply.kind === messageKinds.ack) reply = await nextMessage(framed);
      expect(reply.kind).toBe(messageKinds.error);
      if (reply.kind === messageKinds.error) expect(reply.body.message).toMatch(bad.says);
      await session;
      const volume = appliance.volume("db");
      await volume.flush();
      expect(volume.nextSeq).toBe(2);
      expect(volume.durableRecords).toBe(1);
      await appliance.close();
    }
  });

  it("refuses a marker the engine cannot take (a restore to a later seq) with an ERROR, appending nothing", async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    await writeBatch(framed, [1]);
    await ackThrough(framed, 1);
    await framed.send(messageKinds.mark, { volume: "db", seq: 2, timeUs: 1, kind: "restore", detail: { toSeq: 5 } });
    const reply = await nextMessage(framed);
    expect(reply.kind).toBe(messageKinds.error);
    if (reply.kind === messageKinds.error) expect(reply.body.message).toMatch(/Cannot journal the restore marker/);
    await session;
    const volume = appliance.volume("db");
    await volume.flush();
    expect(volume.durableRecords).toBe(1);
    expect(volume.nextSeq).toBe(2);
    await appliance.close();
  });

  it("refuses a READ_ or HASH_REQUEST that ends past the volume with an ERROR, changing nothing", async () => {
    const past = { volume: "db", offsetBytes: volumeOffer.sizeBytes - 512, lengthBytes: 1024 };
    const requests = [
      { kind: messageKinds.readRequest, body: { requestId: 1, ...past }, says: /Cannot read 1024 bytes at .* ends past the end of the/ },
      { kind: messageKinds.hashRequest, body: { requestId: 2, ...past, chunkBytes: 512 }, says: /Cannot hash 1024 bytes at .* ends past the end of the/ },
    ] as const;
    for (const request of requests) {
      const { appliance, link } = await setUp();
      const { framed, session } = await connectSwitch(link);
      await writeBatch(framed, [1]);
      await ackThrough(framed, 1);
      await framed.send(request.kind, request.body);
      const reply = await nextMessage(framed);
      expect(reply.kind).toBe(messageKinds.error);
      if (reply.kind === messageKinds.error) expect(reply.body.message).toMatch(request.says);
      await session;
      const volume = appliance.volume("db");
      expect(volume.durableRecords).toBe(1);
      expect(volume.nextSeq).toBe(2);
      await appliance.close();
    }
  });

  it("a switch without the secret gets nothing but an error", async () => {
    const { appliance, link } = await setUp();
    const attempt = connectSwitch(link, { secret: new TextEncoder().encode("not the secret at all!") });
    await expect(attempt).rejects.toThrow(AuthenticationError);
    expect(appliance.volumes()).toEqual([]);
  });

  it("a volume the appliance cannot accept is refused in the handshake", async () => {
    const { appliance, link } = await setUp();
    await appliance.register({ ...volumeOffer, sizeBytes: 2 * 1024 * 1024 });
    await expect(connectSwitch(link)).rejects.toThrow(PeerError);
    await expect(connectSwitch(link)).rejects.toThrow(/protected with 2097152 bytes/);
    await appliance.close();
  });
});

/** The next message of `kind` the appliance sent (ACKs before it are skipped). */
async function nextOf<K extends MessageKind>(framed: FramedConnection, kind: K): Promise<MessageOf<K>> {
  for (;;) {
    const message = await nextMessage(framed);
    if (message.kind === kind) return message as MessageOf<K>;
    expect(message.kind).toBe(messageKinds.ack);
  }
}

/** Lets pending promise callbacks and zero timers run. */
async function turns(count = 5): Promise<void> {
  for (let turn = 0; turn < count; turn++) await new Promise((resolve) => setTimeout(resolve, 0));
}

describe("ApplianceLink.requestSnapshot", () => {
  it("asks the switch, and resolves with its seq once the marker is durable and applied", async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    expect(link.isLinked("db")).toBe(true);
    await writeBatch(framed, [1, 2, 3]);
    await ackThrough(framed, 3);
    const volume = appliance.volume("db");

    let resolved = false;
    const taken = link.requestSnapshot("db", "before-upgrade").finally(() => (resolved = true));
    const request = await nextOf(framed, messageKinds.snapshotRequest);
    expect(request.body).toEqual({ requestId: request.body.requestId, volume: "db", name: "before-upgrade" });
    await framed.send(messageKinds.snapshotReply, { requestId: request.body.requestId, seq: 4 });
    await turns();
    expect(resolved).toBe(false); // the seq is known, the marker not yet durable
    await framed.send(messageKinds.mark, { volume: "db", seq: 4, timeUs: 4, kind: "snapshot", detail: { name: "before-upgrade" } });
    expect(await taken).toEqual({ seq: 4 });
    expect(volume.snapshots().map((s) => [s.name, s.seq])).toEqual([["before-upgrade", 4]]);

    const removal = link.requestSnapshot("db", "before-upgrade", { remove: true });
    const removeRequest = await nextOf(framed, messageKinds.snapshotRequest);
    expect(removeRequest.body).toMatchObject({ volume: "db", name: "before-upgrade", remove: true });
    await framed.send(messageKinds.snapshotReply, { requestId: removeRequest.body.requestId, seq: 5 });
    await framed.send(messageKinds.mark, { volume: "db", seq: 5, timeUs: 5, kind: "snapshotRemoved", detail: { name: "before-upgrade" } });
    expect(await removal).toEqual({ seq: 5 });
    expect(volume.snapshots()).toEqual([]);
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    await appliance.close();
  });

  it("a refusal is a ConflictError with the switch's reason, and the link stays up", async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    const refused = link.requestSnapshot("db", "in-the-gap");
    const request = await nextOf(framed, messageKinds.snapshotRequest);
    const reason = 'Cannot take snapshot "in-the-gap" of volume "db": it is marking';
    await framed.send(messageKinds.snapshotReply, { requestId: request.body.requestId, refused: reason });
    await expect(refused).rejects.toThrow(ConflictError);
    await expect(refused).rejects.toThrow(`Switch switch-1 refused: ${reason}`);
    expect(appliance.volume("db").snapshots()).toEqual([]);
    await writeBatch(framed, [1]);
    await ackThrough(framed, 1); // still streaming
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    await appliance.close();
  });

  it("refuses bad names, taken names, missing snapshots, unknown volumes and unlinked volumes before sending", async () => {
    const { appliance, link } = await setUp();
    await expect(link.requestSnapshot("db", "x")).rejects.toThrow(NotFoundError); // no such volume yet
    const { framed, session } = await connectSwitch(link);
    await expect(link.requestSnapshot("db", "-rf")).rejects.toThrow(SyntaxError);
    await expect(link.requestSnapshot("db", "a/b")).rejects.toThrow(SyntaxError);
    await expect(link.requestSnapshot("db", "gone", { remove: true })).rejects.toThrow(NotFoundError);
    await framed.send(messageKinds.mark, { volume: "db", seq: 1, timeUs: 1, kind: "snapshot", detail: { name: "taken" } });
    const volume = appliance.volume("db");
    for (let turn = 0; turn < 100 && volume.snapshots().length === 0; turn++) await turns(1);
    await expect(link.requestSnapshot("db", "taken")).rejects.toThrow(ConflictError);
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    expect(link.isLinked("db")).toBe(false);
    await expect(link.requestSnapshot("db", "later")).rejects.toThrow(/no switch streams it now/);
    // Nothing but ACKs came from the appliance: no request was sent.
    for (;;) {
      const message = await framed.receive();
      if (message === undefined) break;
      expect(message.kind).toBe(messageKinds.ack);
    }
    await appliance.close();
  });

  it("a session that ends fails its unanswered request with a clear error", async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    const pending = link.requestSnapshot("db", "never-answered");
    await nextOf(framed, messageKinds.snapshotRequest);
    await framed.close();
    await session;
    await expect(pending).rejects.toThrow(SwitchUnavailableError);
    await expect(pending).rejects.toThrow(/session of switch switch-1 ended before it answered snapshot request \d+/);
    await appliance.close();
  });

  it(`refuses a request beyond ${wireLimits.snapshotRequestsInFlightMax} in flight, and a name already asked for`, async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    const pending = Array.from(
      { length: wireLimits.snapshotRequestsInFlightMax },
      (_, i) => link.requestSnapshot("db", `s${i}`).catch((error: unknown) => error),
    );
    await expect(link.requestSnapshot("db", "s0")).rejects.toThrow(/a request for that name is in progress/);
    const beyond = link.requestSnapshot("db", "one-more");
    await expect(beyond).rejects.toThrow(SwitchUnavailableError);
    await expect(beyond).rejects.toThrow(`${wireLimits.snapshotRequestsInFlightMax} snapshot requests are in progress`);
    for (let i = 0; i < wireLimits.snapshotRequestsInFlightMax; i++) await nextOf(framed, messageKinds.snapshotRequest);
    await framed.close();
    await session;
    for (const error of await Promise.all(pending)) expect(error).toBeInstanceOf(SwitchUnavailableError);
    await appliance.close();
  });

  it("a switch that does not answer in time fails the request; its late reply is ignored", async () => {
    const { appliance, link, clock, logs } = await setUp({ snapshotTimeoutMs: 100 });
    const { framed, session } = await connectSwitch(link);
    const late = link.requestSnapshot("db", "slow");
    const request = await nextOf(framed, messageKinds.snapshotRequest);
    await turns();
    clock.advanceUs(150_000);
    await expect(late).rejects.toThrow(SwitchUnavailableError);
    await expect(late).rejects.toThrow(/did not answer in time/);
    await framed.send(messageKinds.snapshotReply, { requestId: request.body.requestId, seq: 1 });
    await writeBatch(framed, [1]);
    await ackThrough(framed, 1); // the session survived the late reply
    expect(logs.some((line) => /answered snapshot request \d+, which nobody waits for now/.test(line))).toBe(true);

    // An answer whose marker never becomes durable times out too.
    const undelivered = link.requestSnapshot("db", "never-durable");
    const second = await nextOf(framed, messageKinds.snapshotRequest);
    await framed.send(messageKinds.snapshotReply, { requestId: second.body.requestId, seq: 2 });
    await turns();
    clock.advanceUs(150_000);
    await expect(undelivered).rejects.toThrow(/its marker \(seq 2\) was not durable here in time/);
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    await appliance.close();
  });
});

describe("ApplianceLink under fuzzed input", () => {
  /**
   * After a valid handshake, the switch end sends four valid WRITE batches of three writes
   * each as raw bytes with one byte mutated (header, body or payload). Whatever the mutation,
   * the appliance neither crashes nor hangs, and the journal holds whole batches only: its
   * head is a multiple of three. (A mutation of a batch's data fails its checksum; one of
   * its framing or body fails validation; either way the link ends with an ERROR.)
   */
  it("a mutated stream never leaves a partial batch in the journal", async () => {
    const fc = (await import("fast-check")).default;
    const { encodeMessage } = await import("../../src/wire/messages.ts");
    const checksum = await createChecksum();
    const batches: Uint8Array[] = [];
    for (let batch = 0; batch < 4; batch++) {
      const entries: WriteEntry[] = [];
      const payload = new Uint8Array(3 * 1024);
      for (let i = 0; i < 3; i++) {
        const seq = batch * 3 + i + 1;
        const data = payload.subarray(i * 1024, (i + 1) * 1024);
        data.fill(seq);
        entries.push({ seq, timeUs: seq, offsetBytes: seq * 1024, lengthBytes: 1024, checksum: checksum.hash64(data) });
      }
      const chunks = encodeMessage(messageKinds.write, { volume: "db", entries: packWriteEntries(entries) }, payload);
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const bytes = new Uint8Array(total);
      let at = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, at);
        at += chunk.length;
      }
      batches.push(bytes);
    }
    const stream = new Uint8Array(batches.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const batch of batches) {
      stream.set(batch, at);
      at += batch.length;
    }
    await fc.assert(
      fc.asyncProperty(fc.nat(stream.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(64), async (position, flip, splitAt) => {
        const { appliance, link } = await setUp();
        const { framed, session } = await connectSwitch(link);
        const mutated = stream.slice();
        mutated[position] ^= flip;
        const cut = Math.min(mutated.length, splitAt * 97);
        await framed.connection.send([mutated.subarray(0, cut), mutated.subarray(cut)]).catch(() => {});
        await framed.connection.close();
        await session;
        const volume = appliance.volume("db");
        await volume.flush();
        expect(volume.head.seq % 3).toBe(0);
        const image = new Uint8Array(1024);
        for (let seq = 1; seq <= volume.head.seq; seq++) {
          await volume.openImage("head").read(seq * 1024, image);
          expect(image.every((b) => b === seq)).toBe(true);
        }
        await appliance.close();
      }),
      { numRuns: 200 },
    );
    // Every byte of the first batch's header and body, flipped in its low bits: the offsets
    // and seqs live there, outside the payload checksums; the frame's body check refuses them.
    const { frameHeaderBytes } = await import("../../src/wire/frame.ts");
    const bodyEnd = new DataView(batches[0].buffer).getUint32(4, true) + frameHeaderBytes;
    for (let position = 0; position < bodyEnd; position++) {
      const { appliance, link } = await setUp();
      const { framed, session } = await connectSwitch(link);
      const mutated = stream.slice();
      mutated[position] ^= 0x02;
      await framed.connection.send(mutated).catch(() => {});
      await framed.connection.close();
      await session;
      const volume = appliance.volume("db");
      await volume.flush();
      expect(volume.head.seq).toBe(0);
      await appliance.close();
    }
  });
});

describe("ApplianceLink.startRestore", () => {
  it("plans from the switch's head, reads the image at the point, follows progress, and cancels across a reconnect", async () => {
    const { appliance, link } = await setUp();
    const first = await connectSwitch(link);
    await writeBatch(first.framed, [1, 2, 3]);
    await ackThrough(first.framed, 3);
    const remote = link.startRestore("db", { toSeq: 1, toTimeUs: 1, instant: false, full: false });
    const request = await nextOf(first.framed, messageKinds.restoreRequest);
    expect(request.body).toEqual({ requestId: remote.requestId, volume: "db", toSeq: 1, toTimeUs: 1, instant: false, full: false });
    expect(() => link.startRestore("db", { toSeq: 1, toTimeUs: 1, instant: false, full: false })).toThrow(ConflictError);

    // The switch drained two more writes before it paused: the plan covers them too.
    await writeBatch(first.framed, [4, 5]);
    await ackThrough(first.framed, 5);
    await first.framed.send(messageKinds.restorePlanRequest, { requestId: remote.requestId, headSeq: 5 });
    const plan = await nextOf(first.framed, messageKinds.restorePlan);
    expect(plan.body.last).toBe(true);
    expect(decodeRestoreExtents(plan.body.extents)).toEqual([{ offsetBytes: 1024, lengthBytes: 2048 }]);

    await first.framed.send(messageKinds.readRequest, { requestId: 70, volume: "db", offsetBytes: 512, lengthBytes: 2048, atSeq: 1 });
    const reply = await nextOf(first.framed, messageKinds.readReply);
    expect(reply.body).toEqual({ requestId: 70 });
    expect([...reply.payload.subarray(0, 512)].every((b) => b === 1)).toBe(true); // seq 1's sector
    expect([...reply.payload.subarray(512)].every((b) => b === 0)).toBe(true); // seqs 2-5 are after the point

    await first.framed.send(messageKinds.restoreStarted, { requestId: remote.requestId, markerSeq: 6, bytesTotal: 2048 });
    expect(await remote.started).toEqual({ markerSeq: 6, bytesTotal: 2048 });
    await first.framed.send(messageKinds.restoreProgress, { requestId: remote.requestId, bytesMoved: 1024, state: "running" });
    await turns();
    expect(remote.bytesMoved).toBe(1024);

    remote.cancel();
    expect((await nextOf(first.framed, messageKinds.restoreCancel)).body).toEqual({ requestId: remote.requestId });
    await first.framed.close();
    await first.session;
    expect(link.restoreCount).toBe(1); // the restore outlives its session

    // The switch comes back: whatever it reports first gets the cancel again.
    const second = await connectSwitch(link);
    await second.framed.send(messageKinds.restoreStarted, { requestId: remote.requestId, markerSeq: 6, bytesTotal: 2048 });
    expect((await nextOf(second.framed, messageKinds.restoreCancel)).body).toEqual({ requestId: remote.requestId });
    await second.framed.send(messageKinds.restoreProgress, { requestId: remote.requestId, bytesMoved: 1536, state: "cancelled" });
    expect(await remote.finished).toEqual({ state: "cancelled", bytesMoved: 1536 });
    expect(link.restoreCount).toBe(0);

    // A refusal is the switch's reason as a ConflictError; an unknown restore's plan request is cancelled.
    const refused = link.startRestore("db", { toSeq: 2, toTimeUs: 2, instant: true, full: true });
    const refusedRequest = await nextOf(second.framed, messageKinds.restoreRequest);
    await second.framed.send(messageKinds.restoreRefused, { requestId: refusedRequest.body.requestId, refused: "it is marking" });
    await expect(refused.started).rejects.toThrow(/refused: it is marking/);
    await second.framed.send(messageKinds.restorePlanRequest, { requestId: 999, headSeq: 5 });
    expect((await nextOf(second.framed, messageKinds.restoreCancel)).body).toEqual({ requestId: 999 });
    await second.framed.send(messageKinds.bye, { reason: "done" });
    await second.session;
    expect(() => link.startRestore("db", { toSeq: 1, toTimeUs: 1, instant: false, full: false })).toThrow(SwitchUnavailableError);
    await appliance.close();
  });

  it("a full restore's plan is the whole volume", async () => {
    const { appliance, link } = await setUp();
    const { framed, session } = await connectSwitch(link);
    await writeBatch(framed, [1]);
    await ackThrough(framed, 1);
    const remote = link.startRestore("db", { toSeq: 1, toTimeUs: 1, instant: true, full: true });
    await nextOf(framed, messageKinds.restoreRequest);
    await framed.send(messageKinds.restorePlanRequest, { requestId: remote.requestId, headSeq: 1 });
    const plan = await nextOf(framed, messageKinds.restorePlan);
    expect(decodeRestoreExtents(plan.body.extents)).toEqual([{ offsetBytes: 0, lengthBytes: volumeOffer.sizeBytes }]);
    await framed.send(messageKinds.restoreStarted, { requestId: remote.requestId, markerSeq: 2, bytesTotal: volumeOffer.sizeBytes });
    await framed.send(messageKinds.restoreProgress, {
      requestId: remote.requestId,
      bytesMoved: 0,
      state: "failed",
      message: "RemoteRestoreError: the link did not come back",
    });
    expect(await remote.finished).toEqual({ state: "failed", bytesMoved: 0, message: "RemoteRestoreError: the link did not come back" });
    await framed.send(messageKinds.bye, { reason: "done" });
    await session;
    await appliance.close();
  });
});

describe("fitPlan", () => {
  it("merges the nearest extents until the plan fits, covering every extent", () => {
    const extents = Array.from({ length: 10 }, (_, i) => ({ offsetBytes: i * 4096 + (i % 2) * 1024, lengthBytes: 512 }));
    const fitted = fitPlan(extents, 3);
    expect(fitted.length).toBeLessThanOrEqual(3);
    for (const extent of extents) {
      expect(fitted.some((f) => f.offsetBytes <= extent.offsetBytes && extent.offsetBytes + extent.lengthBytes <= f.offsetBytes + f.lengthBytes))
        .toBe(true);
    }
    expect(fitPlan(extents, 10)).toEqual(extents);
  });
});
