/**
 * Proves the switch link end to end: Splitter + SwitchLink on one side, ApplianceLink +
 * Appliance (in-memory stores) on the other, joined by an in-test transport built on
 * `duplexPair()` (connections can be dropped). Host writes arrive in the appliance's journal
 * under the same seqs with the same bytes (the image at head equals the primary); a
 * connection dropped mid-stream is resumed at the appliance's durable seq and the journal
 * holds every write exactly once; ACKs release the copy buffer and the DRL's in-flight counts
 * return to zero; markers (snapshot) travel in seq order; a wrong secret never streams anything.
 * Snapshots the appliance asks for (SNAPSHOT_REQUEST) become markers of the stream: through a
 * real ApplianceLink they open as `snap:NAME` with the data written before them and their
 * removal drops the name; against a hand-driven appliance end (which never acknowledges, so
 * the copy buffer fills) the switch answers each request at once with the marker's seq, or
 * with `refused` in marking mode and for a volume it does not stream, and the link stays up.
 * Restores the appliance asks for (`startRestore`, run by the switch's SwitchRestores): the
 * primary becomes the image at the point byte for byte, moving only what differs, and the
 * appliance's head image equals the primary after the restore marker; a switch that runs no
 * restores refuses, and a second restore of the volume is refused on the appliance; a cancel
 * stops the copy and leaves a gap marker; a connection dropped mid-restore is resumed — the
 * reads in flight are asked again on the next connection and the copy goes on from where it
 * was (bytes moved never exceed the total), ending done with the same bytes.
 * Over the in-process transport (as in `serve`), each write is hashed in the copy buffer's
 * ring, and the appliance checks and journals it from there, not from a copy. Over a byte
 * stream that copies (as TCP does), the appliance assembles each batch in its own in-place
 * memory and checks it there.
 * Backoff sleeps run on a ManualClock advanced by the test.
 */
import { describe, expect, it } from "vitest";
import { Appliance } from "../../src/appliance/appliance.ts";
import { ApplianceLink } from "../../src/appliance/appliance_link.ts";
import { ConflictError } from "../../src/appliance/errors.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { MemoryTransport } from "../../src/io/memory_transport.ts";
import { type Connection, ConnectFailedError, type Listener, type Transport } from "../../src/io/transport.ts";
import { SwitchRestores } from "../../src/switch/remote_restore.ts";
import { Splitter } from "../../src/switch/splitter.ts";
import { SwitchLink } from "../../src/switch/switch_link.ts";
import { FramedConnection } from "../../src/wire/framed_connection.ts";
import { applianceHandshake } from "../../src/wire/handshake.ts";
import { type Message, type MessageKind, messageKinds, type MessageOf } from "../../src/wire/messages.ts";
import { duplexPair, type TestConnection } from "../wire/wire_support.ts";

const secret = new TextEncoder().encode("correct horse battery staple");
const volumeBytes = 1024 * 1024;

/** connect() hands the appliance link the other end of a fresh duplex pair. */
class TestTransport implements Transport {
  readonly connections: TestConnection[] = [];
  refuse = false;
  readonly #link: ApplianceLink;
  constructor(link: ApplianceLink) {
    this.#link = link;
  }
  connect(address: string): Promise<Connection> {
    if (this.refuse) return Promise.reject(new ConnectFailedError(`Nothing accepts at ${address}`));
    const [switchEnd, applianceEnd] = duplexPair();
    this.connections.push(switchEnd);
    void this.#link.handle(applianceEnd);
    return Promise.resolve(switchEnd);
  }
  listen(): Promise<Listener> {
    return Promise.reject(new Error("Not used"));
  }
}

async function setUp(options: { linkSecret?: Uint8Array; bufferBytes?: number } = {}) {
  const clock = new ManualClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: () => Promise.resolve({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() }),
  }, { segmentSizeBytes: 1024 * 1024, groupBytesMax: 256 * 1024 });
  const applianceLink = new ApplianceLink({ appliance, clock }, { secret });
  const transport = new TestTransport(applianceLink);
  const primary = new MemoryBlockDevice(volumeBytes);
  const splitter = await Splitter.open(
    { primary, drlCell: new MemoryDurableCell(), clock, checksum: await createChecksum() },
    { name: "db", regionBytes: 65536, bufferBytes: options.bufferBytes ?? 512 * 1024 },
  );
  const logs: string[] = [];
  const link = new SwitchLink(
    { transport, clock, splitters: [splitter], log: (line) => logs.push(line) },
    { address: "appliance", secret: options.linkSecret ?? secret, switchId: "switch-1" },
  );
  return { clock, appliance, applianceLink, transport, primary, splitter, link, logs };
}

/** Resolves (or rejects) as `promise` does, advancing the clock meanwhile (the journal's timers run on it). */
async function settle<T>(promise: Promise<T>, clock: ManualClock): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  for (let turn = 0; turn < 2000 && !settled; turn++) {
    clock.advanceUs(1_000);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return await watched;
}

async function until(condition: () => boolean, what: string, clock?: ManualClock): Promise<void> {
  for (let turn = 0; turn < 2000; turn++) {
    if (condition()) return;
    clock?.advanceUs(10_000);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error(`Timed out waiting until ${what}`);
}

function sectorOf(seq: number): Uint8Array {
  return new Uint8Array(512 * (1 + (seq % 4))).fill(seq & 0xff);
}

async function expectImageEqualsPrimary(appliance: Appliance, primary: MemoryBlockDevice, seq: number) {
  const volume = appliance.volume("db");
  const image = new Uint8Array(volumeBytes);
  await volume.openImage(`seq:${seq}`).read(0, image);
  expect(image).toEqual(primary.bytes());
}

describe("SwitchLink", () => {
  it("streams host writes to the appliance's journal under the same seqs and bytes", async () => {
    const { appliance, primary, splitter, link, clock, logs } = await setUp();
    void logs;
    link.start();
    await until(() => link.state === "streaming", "streaming");
    for (let seq = 1; seq <= 40; seq++) await splitter.write(((seq * 7) % 200) * 512, sectorOf(seq));
    expect(splitter.snapshot("after-40")).toBe(41);
    await Promise.all([1, 2, 3].map((i) => splitter.write(i * 4096, sectorOf(100 + i))));
    await until(() => splitter.acknowledgedSeq === 44, "acknowledged", clock);
    const volume = appliance.volume("db");
    expect(volume.head.seq).toBe(44);
    expect(volume.snapshots().map((s) => s.name)).toEqual(["after-40"]);
    await expectImageEqualsPrimary(appliance, primary, 44);
    expect(splitter.copyBuffer.usedBytes).toBe(0);
    expect(splitter.unacknowledgedCount).toBe(0);
    for (let region = 0; region < splitter.dirtyRegionLog.regionCount; region++) {
      expect(splitter.dirtyRegionLog.inFlightCount(region)).toBe(0);
    }
    await link.stop();
    expect(link.state).toBe("stopped");
    await appliance.close();
  });

  it("resumes after a dropped connection: the journal holds every write exactly once", async () => {
    const { appliance, primary, splitter, link, transport, clock } = await setUp();
    link.start();
    await until(() => link.state === "streaming", "streaming");
    const writes: Promise<void>[] = [];
    for (let seq = 1; seq <= 30; seq++) {
      writes.push(splitter.write(((seq * 13) % 256) * 512, sectorOf(seq)));
      if (seq === 12) transport.connections[0].drop(); // mid-stream
    }
    await Promise.all(writes);
    // Writes made while the link is down stay in the buffer.
    for (let seq = 31; seq <= 40; seq++) await splitter.write(((seq * 13) % 256) * 512, sectorOf(seq));
    await until(() => splitter.acknowledgedSeq === 40, "everything acknowledged after the reconnect", clock);
    expect(link.connectionCount).toBeGreaterThanOrEqual(2);
    expect(splitter.state).toBe("protecting");
    const volume = appliance.volume("db");
    expect(volume.head.seq).toBe(40);
    await volume.flush();
    expect(volume.durableRecords).toBe(40);
    await expectImageEqualsPrimary(appliance, primary, 40);
    expect(splitter.copyBuffer.entryCount).toBe(0);
    await link.stop();
    await appliance.close();
  });

  it("reconnects with backoff while the appliance is unreachable, keeping the records", async () => {
    const { appliance, primary, splitter, link, transport, clock } = await setUp();
    transport.refuse = true;
    link.start();
    await until(() => link.state === "backoff", "backoff");
    await splitter.write(0, sectorOf(1));
    await splitter.write(4096, sectorOf(2));
    expect(splitter.unacknowledgedCount).toBe(2);
    transport.refuse = false;
    await until(() => splitter.acknowledgedSeq === 2, "acknowledged after the appliance came back", clock);
    await expectImageEqualsPrimary(appliance, primary, 2);
    await link.stop();
    await appliance.close();
  });

  it("a wrong secret never streams anything", async () => {
    const { appliance, splitter, link, clock, logs } = await setUp({ linkSecret: new TextEncoder().encode("not the secret at all!") });
    await splitter.write(0, sectorOf(1));
    link.start();
    await until(() => logs.some((line) => /Authentication|secret|proof/i.test(line)), "the handshake failed", clock);
    expect(link.connectionCount).toBe(0);
    expect(link.state === "backoff" || link.state === "connecting" || link.state === "handshaking").toBe(true);
    expect(appliance.volumes()).toEqual([]);
    expect(splitter.unacknowledgedCount).toBe(1);
    await link.stop();
    expect(link.state).toBe("stopped");
    await appliance.close();
  });
});

/** connect() hands the test a hand-driven appliance end: it shakes hands, then the test drives it. */
class HandDrivenApplianceTransport implements Transport {
  readonly appliances: Promise<FramedConnection>[] = [];
  connect(): Promise<Connection> {
    const [switchEnd, applianceEnd] = duplexPair();
    const framed = new FramedConnection(applianceEnd);
    this.appliances.push(
      applianceHandshake(framed, {
        secret,
        registerVolumes: (_switchId, offers) => Promise.resolve(offers.map((offer) => ({ name: offer.name, durableSeq: 0 }))),
      }).then(() => framed),
    );
    return Promise.resolve(switchEnd);
  }
  listen(): Promise<Listener> {
    return Promise.reject(new Error("Not used"));
  }
}

/** The next message of `kind` the switch sent (WRITEs and MARKs before it are collected). */
async function nextOf<K extends MessageKind>(framed: FramedConnection, kind: K, seen: Message[] = []): Promise<MessageOf<K>> {
  for (;;) {
    const message = await framed.receive();
    if (message === undefined) throw new Error("The switch closed the link");
    if (message.kind === kind) return message as MessageOf<K>;
    seen.push(message);
  }
}

describe("SwitchLink in-process (the memory transport, as in serve)", () => {
  it("hashes each write once in the copy buffer's ring, and the appliance checks and journals it there", async () => {
    const shared = await createChecksum();
    const sharedHash64 = shared.hash64;
    const hashed: { buffer: ArrayBufferLike; lengthBytes: number }[] = [];
    shared.hash64 = (bytes) => {
      hashed.push({ buffer: bytes.buffer, lengthBytes: bytes.length });
      return sharedHash64(bytes);
    };
    try {
      const clock = new ManualClock();
      const appliance = await Appliance.open({
        clock,
        registry: new MemoryDurableCell(),
        storesFor: () => Promise.resolve({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() }),
      }, { segmentSizeBytes: 1024 * 1024, groupBytesMax: 256 * 1024 });
      const transport = new MemoryTransport();
      const listener = await transport.listen("appliance");
      const applianceLink = new ApplianceLink({ appliance, clock }, { secret });
      const serving = applianceLink.serve(listener);
      const rings: ArrayBufferLike[] = [];
      const primary = new MemoryBlockDevice(volumeBytes);
      const splitter = await Splitter.open({
        primary,
        drlCell: new MemoryDurableCell(),
        clock,
        checksum: { ...shared, allocate: (lengthBytes) => {
          const ring = shared.allocate(lengthBytes);
          rings.push(ring.buffer);
          return ring;
        } },
      }, { name: "db", regionBytes: 65536, bufferBytes: 1024 * 1024 }); // the writes never wrap it
      const link = new SwitchLink({ transport, clock, splitters: [splitter] }, { address: "appliance", secret, switchId: "switch-1" });
      link.start();
      await until(() => link.state === "streaming", "streaming");
      const writeBytes = 96 * 1024; // a length nothing else hashes here
      for (let index = 0; index < 6; index++) {
        await splitter.write(index * writeBytes, new Uint8Array(writeBytes).fill(index + 1));
      }
      await until(() => splitter.acknowledgedSeq === 6, "acknowledged", clock);
      await expectImageEqualsPrimary(appliance, primary, 6);
      expect(rings.length).toBe(1); // the copy buffer's ring, from the in-place allocator
      const ofWrites = hashed.filter((call) => call.lengthBytes === writeBytes);
      // Once by the splitter over its copy, once by the appliance checking the batch: both
      // over the ring itself (no frame copy, no copy of the host's buffer).
      expect(ofWrites.length).toBe(12);
      expect(ofWrites.every((call) => call.buffer === rings[0])).toBe(true);
      await link.stop();
      await listener.close();
      await applianceLink.close();
      await serving;
      await appliance.close();
    } finally {
      shared.hash64 = sharedHash64;
    }
  });
});

describe("SwitchLink over a byte stream that copies (as TCP)", () => {
  it("the appliance assembles each batch in its in-place memory and checks it there, not in a plain copy", async () => {
    const shared = await createChecksum();
    const { hash64: sharedHash64, allocate: sharedAllocate } = shared;
    const allocated: ArrayBufferLike[] = [];
    const hashed: { buffer: ArrayBufferLike; lengthBytes: number }[] = [];
    shared.allocate = (lengthBytes) => {
      const bytes = sharedAllocate(lengthBytes);
      allocated.push(bytes.buffer);
      return bytes;
    };
    shared.hash64 = (bytes) => {
      hashed.push({ buffer: bytes.buffer, lengthBytes: bytes.length });
      return sharedHash64(bytes);
    };
    try {
      const { appliance, primary, splitter, link, clock } = await setUp({ bufferBytes: 1024 * 1024 });
      link.start();
      await until(() => link.state === "streaming", "streaming");
      const writeBytes = 96 * 1024; // a length nothing else hashes here
      for (let index = 0; index < 6; index++) {
        await splitter.write(index * writeBytes, new Uint8Array(writeBytes).fill(index + 1));
      }
      await until(() => splitter.acknowledgedSeq === 6, "acknowledged", clock);
      await expectImageEqualsPrimary(appliance, primary, 6);
      const ringBuffer = allocated[0]; // the copy buffer's ring, allocated when the splitter opened
      const ofWrites = hashed.filter((call) => call.lengthBytes === writeBytes);
      expect(ofWrites.length).toBe(12); // once at the switch, once at the appliance
      const atSwitch = ofWrites.filter((call) => call.buffer === ringBuffer);
      const atAppliance = ofWrites.filter((call) => call.buffer !== ringBuffer);
      expect(atSwitch.length).toBe(6);
      expect(atAppliance.length).toBe(6);
      // The bytes arrived as copies (the stream's own buffers); the appliance checked them in
      // buffers it allocated in place, where its frame decoder assembled the batches.
      expect(atAppliance.every((call) => allocated.slice(1).includes(call.buffer))).toBe(true);
      await link.stop();
      await appliance.close();
    } finally {
      shared.hash64 = sharedHash64;
      shared.allocate = sharedAllocate;
    }
  });
});

describe("SwitchLink answering snapshot requests", () => {
  it("takes and removes a snapshot an ApplianceLink asks for: it opens as snap:NAME with the data before it", async () => {
    const { appliance, applianceLink, primary, splitter, link, clock } = await setUp();
    link.start();
    await until(() => link.state === "streaming" && applianceLink.isLinked("db"), "streaming", clock);
    for (let seq = 1; seq <= 5; seq++) await splitter.write(seq * 4096, sectorOf(seq));
    const before = primary.bytes().slice();
    const taken = await settle(applianceLink.requestSnapshot("db", "from-appliance"), clock);
    expect(taken).toEqual({ seq: 6 });
    await splitter.write(4096, sectorOf(7)); // after the marker: not in the snapshot
    const volume = appliance.volume("db");
    expect(volume.snapshots().map((s) => [s.name, s.seq])).toEqual([["from-appliance", 6]]);
    const image = new Uint8Array(volumeBytes);
    await volume.openImage("snap:from-appliance").read(0, image);
    expect(image).toEqual(before);
    await expect(applianceLink.requestSnapshot("db", "from-appliance")).rejects.toThrow(ConflictError);

    const removed = await settle(applianceLink.requestSnapshot("db", "from-appliance", { remove: true }), clock);
    expect(removed.seq).toBe(8);
    expect(volume.snapshots()).toEqual([]);
    expect(volume.markers({ fromSeq: 0, toSeq: Infinity, limit: 10 }).map((m) => m.kind)).toEqual(["snapshot", "snapshotRemoved"]);
    await link.stop();
    await appliance.close();
  });

  it("answers at once with the marker's seq, or refused in marking mode and for a volume it does not stream", async () => {
    const clock = new ManualClock();
    const transport = new HandDrivenApplianceTransport();
    const splitter = await Splitter.open(
      { primary: new MemoryBlockDevice(volumeBytes), drlCell: new MemoryDurableCell(), clock, checksum: await createChecksum() },
      { name: "db", regionBytes: 65536, bufferBytes: 64 * 1024 },
    );
    const link = new SwitchLink({ transport, clock, splitters: [splitter] }, { address: "appliance", secret, switchId: "switch-1" });
    link.start();
    await until(() => link.state === "streaming", "streaming", clock);
    const appliance = await transport.appliances[0];
    await splitter.write(0, sectorOf(1));

    await appliance.send(messageKinds.snapshotRequest, { requestId: 7, volume: "db", name: "first" });
    const seen: Message[] = [];
    const reply = await nextOf(appliance, messageKinds.snapshotReply, seen);
    expect(reply.body).toEqual({ requestId: 7, seq: 2 });
    const mark = seen.find((m) => m.kind === messageKinds.mark) ?? await nextOf(appliance, messageKinds.mark);
    expect(mark.body).toMatchObject({ volume: "db", seq: 2, kind: "snapshot", detail: { name: "first" } });

    await appliance.send(messageKinds.snapshotRequest, { requestId: 8, volume: "db", name: "first", remove: true });
    expect((await nextOf(appliance, messageKinds.snapshotReply)).body).toEqual({ requestId: 8, seq: 3 });
    expect((await nextOf(appliance, messageKinds.mark)).body).toMatchObject({ seq: 3, kind: "snapshotRemoved", detail: { name: "first" } });

    await appliance.send(messageKinds.snapshotRequest, { requestId: 9, volume: "other", name: "x" });
    expect((await nextOf(appliance, messageKinds.snapshotReply)).body).toEqual({
      requestId: 9,
      refused: 'Volume "other" is not protected by switch switch-1',
    });

    // Nothing is acknowledged: 96 KiB of writes overflow the 64 KiB copy buffer.
    for (let i = 0; i < 3; i++) await splitter.write(65536 + i * 32768, new Uint8Array(32768).fill(i + 1));
    expect(splitter.state).toBe("marking");
    const nextSeq = splitter.nextSeq;
    await appliance.send(messageKinds.snapshotRequest, { requestId: 10, volume: "db", name: "in-the-gap" });
    const refused = await nextOf(appliance, messageKinds.snapshotReply);
    expect(refused.body).toEqual({ requestId: 10, refused: 'Cannot take snapshot "in-the-gap" of volume "db": it is marking' });
    expect(splitter.nextSeq).toBe(nextSeq); // no marker taken
    expect(link.state).toBe("streaming"); // a refusal leaves the link up
    await appliance.send(messageKinds.snapshotRequest, { requestId: 11, volume: "db", name: "again" });
    expect((await nextOf(appliance, messageKinds.snapshotReply)).body.requestId).toBe(11);
    await link.stop();
  });
});

/** A memory primary whose writes a test can hold or watch (restored data is written here directly). */
class WatchedDevice extends MemoryBlockDevice {
  onWrite: ((offsetBytes: number, lengthBytes: number) => Promise<void> | void) | null = null;
  override async write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    await this.onWrite?.(offsetBytes, source.length);
    return await super.write(offsetBytes, source, options);
  }
}

async function setUpRestores(options: { volumeBytes?: number; runsRestores?: boolean } = {}) {
  const sizeBytes = options.volumeBytes ?? volumeBytes;
  const clock = new ManualClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: () => Promise.resolve({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() }),
  }, { segmentSizeBytes: 4 * 1024 * 1024, groupBytesMax: 1024 * 1024 });
  const applianceLink = new ApplianceLink({ appliance, clock }, { secret });
  const transport = new TestTransport(applianceLink);
  const primary = new WatchedDevice(sizeBytes);
  const splitter = await Splitter.open(
    { primary, drlCell: new MemoryDurableCell(), clock, checksum: await createChecksum() },
    { name: "db", regionBytes: 65536, bufferBytes: 2 * 1024 * 1024 },
  );
  const link = new SwitchLink({ transport, clock, splitters: [splitter] }, { address: "appliance", secret, switchId: "switch-1" });
  const restores = new SwitchRestores({ clock, splitters: new Map([["db", splitter]]), primary: () => primary });
  if (options.runsRestores !== false) link.setRestores(restores);
  link.start();
  await until(() => link.state === "streaming" && applianceLink.isLinked("db"), "streaming", clock);
  return { clock, appliance, applianceLink, transport, primary, splitter, link, restores, sizeBytes };
}

/** Writes `count` 4 KiB pieces `strideBytes` apart filled with `value` (or `value + i`), and waits until they are acknowledged. */
async function writePieces(splitter: Splitter, clock: ManualClock, count: number, strideBytes: number, value: number, distinct = false) {
  for (let i = 0; i < count; i++) await splitter.write(i * strideBytes, new Uint8Array(4096).fill(distinct ? value + i : value));
  await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1, "acknowledged", clock);
}

describe("SwitchLink running restores the appliance asks for", () => {
  it("puts the primary back to the point, moving only what differs; the appliance's head equals the primary", async () => {
    const { appliance, applianceLink, primary, splitter, link, restores, clock } = await setUpRestores();
    await writePieces(splitter, clock, 16, 65536, 1, true);
    splitter.snapshot("good");
    await writePieces(splitter, clock, 16, 65536, 0xee); // the damage
    const volume = appliance.volume("db");
    const target = volume.resolvePoint("snap:good");
    const expected = new Uint8Array(volumeBytes);
    await volume.openImage("snap:good").read(0, expected);

    const remote = applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: false, full: false });
    const started = await settle(remote.started, clock);
    expect(started.bytesTotal).toBe(16 * 4096);
    const end = await settle(remote.finished, clock);
    expect(end).toEqual({ state: "done", bytesMoved: 16 * 4096 });
    expect(primary.bytes()).toEqual(expected);
    await until(() => volume.head.seq >= started.markerSeq, "the restore marker durable", clock);
    const marker = volume.markers().find((m) => m.kind === "restore")!;
    expect(marker.seq).toBe(started.markerSeq);
    expect(marker.detail).toMatchObject({ toSeq: target.seq, instant: false, full: false, bytes: 16 * 4096 });
    await expectImageEqualsPrimary(appliance, primary, volume.head.seq);
    await until(() => restores.count === 0 && applianceLink.restoreCount === 0, "both sides forgot the restore", clock);
    expect(splitter.restoring).toBe(false);
    await link.stop();
    await appliance.close();
  });

  it("full copies the whole volume; a switch without restores refuses; a second restore of the volume is refused", async () => {
    const { appliance, applianceLink, primary, splitter, link, clock } = await setUpRestores();
    await writePieces(splitter, clock, 2, 65536, 5);
    const target = appliance.volume("db").resolvePoint("head");
    await writePieces(splitter, clock, 1, 65536, 6);
    const remote = applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: true, full: true });
    expect(() => applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: true, full: false }))
      .toThrow(ConflictError);
    expect((await settle(remote.started, clock)).bytesTotal).toBe(volumeBytes);
    expect((await settle(remote.finished, clock)).state).toBe("done");
    expect(primary.bytes()[0]).toBe(5);
    await link.stop();
    await appliance.close();

    const other = await setUpRestores({ runsRestores: false });
    await writePieces(other.splitter, other.clock, 1, 65536, 1);
    const refused = other.applianceLink.startRestore("db", { toSeq: 1, toTimeUs: 0, instant: false, full: false });
    const error = await settle(refused.started.then(() => null, (reason: Error) => reason), other.clock);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error?.message).toMatch(/refused: Switch switch-1 does not run restores/);
    expect(other.applianceLink.restoreCount).toBe(0);
    expect(other.link.state).toBe("streaming");
    await other.link.stop();
    await other.appliance.close();
  });

  it("a cancel stops the copy between runs and records a gap", async () => {
    const sizeBytes = 16 * 1024 * 1024;
    const { appliance, applianceLink, primary, splitter, link, clock } = await setUpRestores({ volumeBytes: sizeBytes });
    await writePieces(splitter, clock, 16, 1024 * 1024, 1);
    const target = appliance.volume("db").resolvePoint("head");
    await writePieces(splitter, clock, 16, 1024 * 1024, 2);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    primary.onWrite = () => held; // the first restored span waits for the cancel
    const remote = applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: false, full: false });
    await settle(remote.started, clock);
    remote.cancel();
    expect(splitter.restoring).toBe(true);
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setTimeout(resolve, 0)); // the cancel arrives
    primary.onWrite = null;
    release();
    const end = await settle(remote.finished, clock);
    expect(end.state).toBe("cancelled");
    expect(end.bytesMoved).toBeLessThan(16 * 4096);
    await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1, "the gap acknowledged", clock);
    expect(appliance.volume("db").gaps().map((gap) => gap.reason)).toEqual(["restore cancelled"]);
    await link.stop();
    await appliance.close();
  });

  it("a read the appliance cannot answer fails the restore at once with its reason, and the link stays up", async () => {
    const { appliance, applianceLink, splitter, link, clock } = await setUpRestores();
    await writePieces(splitter, clock, 4, 65536, 1);
    const volume = appliance.volume("db");
    const target = volume.resolvePoint("head");
    await writePieces(splitter, clock, 4, 65536, 2);
    const openImage = volume.openImage.bind(volume);
    volume.openImage = ((point: string) => {
      const image = openImage(point);
      image.read = () => Promise.reject(new Error("Injected store read failure"));
      return image;
    }) as typeof volume.openImage;
    const remote = applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: false, full: false });
    await settle(remote.started, clock);
    const end = await settle(remote.finished, clock);
    expect(end.state).toBe("failed");
    expect(end.message).toMatch(/could not answer a read: Cannot read .*Injected store read failure/);
    expect(link.connectionCount).toBe(1); // a READ_REPLY with an error, not an ERROR that ends the link
    expect(link.state).toBe("streaming");
    await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1, "the gap acknowledged", clock);
    expect(volume.gaps().map((gap) => gap.reason)).toEqual(["restore failed"]);
    await link.stop();
    await appliance.close();
  });

  it("resumes after a connection dropped mid-restore: reads are asked again, nothing is copied twice", async () => {
    const { appliance, applianceLink, primary, splitter, link, transport, clock } = await setUpRestores();
    await writePieces(splitter, clock, 16, 65536, 1, true);
    const volume = appliance.volume("db");
    const target = volume.resolvePoint("head");
    const expected = new Uint8Array(volumeBytes);
    await volume.openImage(`seq:${target.seq}`).read(0, expected);
    await writePieces(splitter, clock, 16, 65536, 0xee);
    let restoredWrites = 0;
    primary.onWrite = () => {
      restoredWrites++;
      if (restoredWrites === 3) transport.connections[transport.connections.length - 1].drop();
    };
    const remote = applianceLink.startRestore("db", { toSeq: target.seq, toTimeUs: target.timeUs, instant: false, full: false });
    const started = await settle(remote.started, clock);
    const end = await settle(remote.finished, clock);
    primary.onWrite = null;
    expect(link.connectionCount).toBeGreaterThanOrEqual(2);
    expect(end.state).toBe("done");
    expect(end.bytesMoved).toBe(started.bytesTotal);
    expect(restoredWrites).toBe(16); // each span written once: the copy went on, it did not start over
    expect(remote.bytesMoved).toBeLessThanOrEqual(started.bytesTotal + 256 * 1024);
    expect(primary.bytes()).toEqual(expected);
    await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1 && volume.head.seq >= started.markerSeq, "the marker durable", clock);
    await expectImageEqualsPrimary(appliance, primary, volume.head.seq);
    await link.stop();
    await appliance.close();
  });
});
