/**
 * Proves the NBD server (`src/nbd/nbd_server.ts`) over an in-test duplex connection, no
 * sockets: a whole session (handshake, GO, reads, writes, flush, write zeroes, trim, DISC)
 * gives the same replies and device state wherever the client's bytes are split; options
 * LIST, INFO, GO, EXPORT_NAME (with and without zeroes), ABORT and unknown ones answer as
 * the NBD document says; each rejected request gets its error value and writes nothing;
 * bad magic and unknown client flags close that connection only; at most the configured
 * number of requests run at once and replies may come out of order; at most the configured
 * number of connections are served (one more is refused its GO, with a message); a WRITE payload (in a
 * pooled, reused buffer) stays unchanged until its device write settles; and a fast-check fuzz
 * of mutated request streams never crashes or hangs the server, never changes the read-only
 * export, and never disturbs a well-behaved connection served at the same time. Over a
 * connection that reads where the decoder says the bytes belong (`sinkTo`, as the TCP
 * transports do), at random read sizes: the same replies and device state, with large
 * payloads read into their buffers, and receiving paused while decoded requests wait; the
 * fuzz runs over such connections too.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BlockDevice } from "../../src/io/block_device.ts";
import type { Connection } from "../../src/io/transport.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { NbdServer, sinkPendingPayloadBytesMax, sinkPendingRequestsMax } from "../../src/nbd/nbd_server.ts";
import { SeededRandom } from "../../src/io/random.ts";
import {
  encodeInfoRequest,
  encodeOption,
  greetingBytes,
  nbdClientFlags,
  nbdCommandFlags,
  nbdCommands,
  nbdErrors,
  nbdOptionReplies,
  nbdOptions,
  nbdTransmissionFlags,
  type RequestFields,
} from "../../src/nbd/protocol.ts";
import {
  concatBytes,
  duplexPair,
  firstDifference,
  flagsThen,
  goBytes,
  memoryServer,
  parseTranscript,
  patternBytes,
  readLengthsOf,
  requestBytes,
  SinkingConnection,
  within,
} from "./nbd_support.ts";

const bothFlags = nbdClientFlags.fixedNewstyle | nbdClientFlags.noZeroes;

/**
 * Sends `pieces` to a fresh connection of `server`, waits for it to end, returns what the
 * server sent. With `sinkSeed`, the server reads through a {@link SinkingConnection}.
 */
async function session(
  server: NbdServer,
  pieces: readonly Uint8Array[],
  options: { closeAfter?: boolean; sinkSeed?: number; sunk?: (connection: SinkingConnection) => void } = {},
) {
  const [client, serverEnd] = duplexPair();
  let served: Connection = serverEnd;
  if (options.sinkSeed !== undefined) {
    const sinking = new SinkingConnection(serverEnd, new SeededRandom(options.sinkSeed));
    options.sunk?.(sinking);
    served = sinking;
  }
  const done = server.handle(served);
  for (const piece of pieces) await client.send(piece);
  if (options.closeAfter ?? false) await client.close();
  await within(done, 10_000, "The session");
  return serverEnd.sentBytes;
}

const sessionRequests: RequestFields[] = [
  { type: nbdCommands.write, cookie: 1n, offsetBytes: 4096, lengthBytes: 2048, payload: patternBytes(2048, 1) },
  { type: nbdCommands.read, cookie: 2n, offsetBytes: 0, lengthBytes: 8192 },
  { type: nbdCommands.write, flags: nbdCommandFlags.fua, cookie: 3n, offsetBytes: 65536, lengthBytes: 512, payload: patternBytes(512, 2) },
  { type: nbdCommands.flush, cookie: 4n, offsetBytes: 0, lengthBytes: 0 },
  { type: nbdCommands.writeZeroes, cookie: 5n, offsetBytes: 4096, lengthBytes: 1024 },
  { type: nbdCommands.trim, cookie: 6n, offsetBytes: 8192, lengthBytes: 4096 },
  { type: nbdCommands.write, cookie: 7n, offsetBytes: 128 * 1024 - 512, lengthBytes: 1024, payload: patternBytes(1024, 3) },
  { type: nbdCommands.read, cookie: 8n, offsetBytes: 100, lengthBytes: 512 },
  { type: nbdCommands.disconnect, cookie: 9n, offsetBytes: 0, lengthBytes: 0 },
];

describe("NbdServer sessions", () => {
  it("gives the same replies and device state wherever the client's bytes are split", async () => {
    const stream = concatBytes([goBytes("disk"), requestBytes(sessionRequests)]);
    let reference: { replies: string; bytes: Uint8Array } | undefined;
    for (let splitBytes = 0; splitBytes <= stream.length; splitBytes++) {
      const fixture = memoryServer({ sizeBytes: 128 * 1024 });
      const sent = await session(fixture.server, [stream.subarray(0, splitBytes), stream.subarray(splitBytes)]);
      const parsed = parseTranscript(sent, readLengthsOf(sessionRequests));
      expect(parsed.restBytes).toBe(0);
      const replies = [...parsed.replies.entries()].sort(([a], [b]) => Number(a - b));
      const bytes = fixture.disk.bytes().subarray(0, 70_000);
      const replyKey = JSON.stringify(replies.map(([cookie, reply]) => [String(cookie), reply.errorValue, reply.data ? [...reply.data].join() : null]));
      if (reference === undefined) {
        reference = { replies: replyKey, bytes };
        expect(replies.map(([cookie, reply]) => [cookie, reply.errorValue])).toEqual([
          [1n, 0], [2n, 0], [3n, 0], [4n, 0], [5n, 0], [6n, 0], [7n, nbdErrors.noSpace], [8n, nbdErrors.invalid],
        ]);
        expect(fixture.closed).toEqual(["disk"]);
      } else {
        expect(replyKey === reference.replies, `replies, split at ${splitBytes}`).toBe(true);
        expect(firstDifference(bytes, reference.bytes), `device, split at ${splitBytes}`).toBe(-1);
      }
    }
    const expected = new Uint8Array(70_000);
    expected.set(patternBytes(2048, 1), 4096);
    expected.fill(0, 4096, 5120);
    expected.set(patternBytes(512, 2), 65536);
    expect(firstDifference(reference!.bytes, expected)).toBe(-1);
  });

  it("greets with fixed newstyle and no zeroes, and answers GO with the export and block sizes", async () => {
    const { server } = memoryServer();
    const sent = await session(server, [goBytes("disk"), requestBytes([sessionRequests.at(-1)!])]);
    const view = new DataView(sent.buffer, sent.byteOffset);
    expect(view.getBigUint64(0)).toBe(0x4e42444d41474943n);
    expect(view.getBigUint64(8)).toBe(0x49484156454f5054n);
    expect(view.getUint16(16)).toBe(3);
    const { optionReplies } = parseTranscript(sent);
    expect(optionReplies.map((reply) => reply.replyType)).toEqual([
      nbdOptionReplies.info,
      nbdOptionReplies.info,
      nbdOptionReplies.ack,
    ]);
    const exportInfo = new DataView(optionReplies[0].data.buffer);
    expect(exportInfo.getUint16(0)).toBe(0);
    expect(Number(exportInfo.getBigUint64(2))).toBe(1024 * 1024);
    const flags = exportInfo.getUint16(10);
    expect(flags & nbdTransmissionFlags.readOnly).toBe(0);
    for (const flag of ["hasFlags", "sendFlush", "sendFua", "sendTrim", "sendWriteZeroes"] as const) {
      expect(flags & nbdTransmissionFlags[flag], flag).not.toBe(0);
    }
    const blockSize = new DataView(optionReplies[1].data.buffer);
    expect([blockSize.getUint16(0), blockSize.getUint32(2), blockSize.getUint32(6), blockSize.getUint32(10)]).toEqual([
      3, 512, 4096, 4 * 1024 * 1024,
    ]);
  });

  it("lists exports, answers INFO, refuses unknown options and exports, then still goes", async () => {
    const { server, closed } = memoryServer();
    const sent = await session(server, [
      flagsThen(
        bothFlags,
        encodeOption(nbdOptions.list),
        encodeOption(nbdOptions.list, new Uint8Array(1)),
        encodeOption(nbdOptions.structuredReply),
        encodeOption(nbdOptions.info, encodeInfoRequest("image", [2])),
        encodeOption(nbdOptions.go, encodeInfoRequest("nope", [])),
        encodeOption(nbdOptions.go, new Uint8Array(3)),
        encodeOption(nbdOptions.go, encodeInfoRequest("image", [])),
      ),
      requestBytes([sessionRequests.at(-1)!]),
    ]);
    const { optionReplies } = parseTranscript(sent);
    const summary = optionReplies.map((reply) => [reply.option, reply.replyType]);
    expect(summary).toEqual([
      [nbdOptions.list, nbdOptionReplies.server],
      [nbdOptions.list, nbdOptionReplies.server],
      [nbdOptions.list, nbdOptionReplies.ack],
      [nbdOptions.list, nbdOptionReplies.errorInvalid],
      [nbdOptions.structuredReply, nbdOptionReplies.errorUnsupported],
      [nbdOptions.info, nbdOptionReplies.info],
      [nbdOptions.info, nbdOptionReplies.info],
      [nbdOptions.info, nbdOptionReplies.info],
      [nbdOptions.info, nbdOptionReplies.ack],
      [nbdOptions.go, nbdOptionReplies.errorUnknown],
      [nbdOptions.go, nbdOptionReplies.errorInvalid],
      [nbdOptions.go, nbdOptionReplies.info],
      [nbdOptions.go, nbdOptionReplies.info],
      [nbdOptions.go, nbdOptionReplies.ack],
    ]);
    expect(new TextDecoder().decode(optionReplies[0].data.subarray(4))).toBe("diska writable disk");
    expect(new TextDecoder().decode(optionReplies[7].data.subarray(2))).toBe("a read-only image");
    const imageFlags = new DataView(optionReplies[11].data.buffer).getUint16(10);
    expect(imageFlags & nbdTransmissionFlags.readOnly).not.toBe(0);
    expect(new TextDecoder().decode(optionReplies[9].data)).toContain('"nope"');
    expect(closed).toEqual(["image", "image"]); // once after INFO, once after the session
  });

  it("answers EXPORT_NAME with the size and flags, with or without the 124 zeros", async () => {
    for (const [flags, zeroBytes] of [[bothFlags, 0], [nbdClientFlags.fixedNewstyle, 124], [0, 124]] as const) {
      const { server } = memoryServer();
      const sent = await session(server, [
        flagsThen(flags, encodeOption(nbdOptions.exportName, new TextEncoder().encode("disk"))),
        requestBytes([{ type: nbdCommands.read, cookie: 1n, offsetBytes: 0, lengthBytes: 512 }, sessionRequests.at(-1)!]),
      ]);
      expect(sent.length).toBe(greetingBytes + 10 + zeroBytes + 16 + 512);
      const view = new DataView(sent.buffer, sent.byteOffset);
      expect(Number(view.getBigUint64(greetingBytes))).toBe(1024 * 1024);
    }
  });

  it("hangs up after EXPORT_NAME of an unknown export, after ABORT, and on unknown client flags", async () => {
    const { server } = memoryServer();
    const unknown = await session(server, [flagsThen(bothFlags, encodeOption(nbdOptions.exportName, new Uint8Array([120])))]);
    expect(unknown.length).toBe(greetingBytes);
    const aborted = await session(server, [flagsThen(bothFlags, encodeOption(nbdOptions.abort), encodeOption(nbdOptions.list))]);
    expect(parseTranscript(aborted).optionReplies.map((reply) => reply.replyType)).toEqual([nbdOptionReplies.ack]);
    const badFlags = await session(server, [flagsThen(0x80, encodeOption(nbdOptions.list))]);
    expect(badFlags.length).toBe(greetingBytes);
    expect(server.connectionCount).toBe(0);
  });

  it("answers each bad request with its error value, writes nothing, and reads on", async () => {
    const fixture = memoryServer();
    const oversize = 4 * 1024 * 1024 + 512;
    const requests: RequestFields[] = [
      { type: nbdCommands.write, cookie: 1n, offsetBytes: 1024 * 1024, lengthBytes: 512, payload: patternBytes(512, 1) },
      { type: nbdCommands.write, cookie: 2n, offsetBytes: 100, lengthBytes: 512, payload: patternBytes(512, 1) },
      { type: nbdCommands.write, cookie: 3n, offsetBytes: 0, lengthBytes: oversize, payload: patternBytes(oversize, 1) },
      { type: nbdCommands.write, flags: nbdCommandFlags.df, cookie: 4n, offsetBytes: 0, lengthBytes: 512, payload: patternBytes(512, 1) },
      { type: nbdCommands.blockStatus, cookie: 5n, offsetBytes: 0, lengthBytes: 512 },
      { type: nbdCommands.read, cookie: 6n, offsetBytes: 1024 * 1024, lengthBytes: 512 },
      { type: nbdCommands.writeZeroes, cookie: 7n, offsetBytes: 0, lengthBytes: 2 * 1024 * 1024 },
      { type: nbdCommands.read, cookie: 8n, offsetBytes: 0, lengthBytes: 512 },
      sessionRequests.at(-1)!,
    ];
    const sent = await session(fixture.server, [goBytes("disk"), requestBytes(requests)]);
    const { replies } = parseTranscript(sent, readLengthsOf(requests));
    expect([...replies].map(([cookie, reply]) => [cookie, reply.errorValue]).sort(([a], [b]) => Number(a) - Number(b))).toEqual([
      [1n, nbdErrors.noSpace],
      [2n, nbdErrors.invalid],
      [3n, nbdErrors.overflow],
      [4n, nbdErrors.invalid],
      [5n, nbdErrors.invalid],
      [6n, nbdErrors.invalid],
      [7n, nbdErrors.noSpace],
      [8n, 0],
    ]);
    expect(fixture.disk.stats.writes).toBe(0);
    expect(fixture.disk.bytes().every((byte) => byte === 0)).toBe(true);
  });

  it("refuses writes, trims and write zeroes on the read-only export with EPERM", async () => {
    const fixture = memoryServer();
    const requests: RequestFields[] = [
      { type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: 512, payload: new Uint8Array(512) },
      { type: nbdCommands.trim, cookie: 2n, offsetBytes: 0, lengthBytes: 512 },
      { type: nbdCommands.writeZeroes, cookie: 3n, offsetBytes: 0, lengthBytes: 512 },
      { type: nbdCommands.read, cookie: 4n, offsetBytes: 0, lengthBytes: 512 },
      sessionRequests.at(-1)!,
    ];
    const sent = await session(fixture.server, [goBytes("image"), requestBytes(requests)]);
    const { replies } = parseTranscript(sent, readLengthsOf(requests));
    expect(replies.get(1n)!.errorValue).toBe(nbdErrors.permission);
    expect(replies.get(2n)!.errorValue).toBe(nbdErrors.permission);
    expect(replies.get(3n)!.errorValue).toBe(nbdErrors.permission);
    expect(replies.get(4n)!.data).toEqual(fixture.imageContents.subarray(0, 512));
    expect(firstDifference(fixture.image.bytes(), fixture.imageContents)).toBe(-1);
  });

  it("maps device failures to EIO and keeps serving", async () => {
    const fixture = memoryServer();
    fixture.disk.faults.failNextWrite = true;
    fixture.disk.faults.failNextFlush = true;
    const requests: RequestFields[] = [
      { type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: 512, payload: patternBytes(512, 1) },
      { type: nbdCommands.flush, cookie: 2n, offsetBytes: 0, lengthBytes: 0 },
      { type: nbdCommands.write, cookie: 3n, offsetBytes: 512, lengthBytes: 512, payload: patternBytes(512, 1) },
      sessionRequests.at(-1)!,
    ];
    const sent = await session(fixture.server, [goBytes("disk"), requestBytes(requests)]);
    const { replies } = parseTranscript(sent);
    expect([replies.get(1n)!.errorValue, replies.get(2n)!.errorValue, replies.get(3n)!.errorValue]).toEqual([
      nbdErrors.io,
      nbdErrors.io,
      0,
    ]);
  });

  it("makes a FUA write durable before replying", async () => {
    const fixture = memoryServer();
    const requests: RequestFields[] = [
      { type: nbdCommands.write, flags: nbdCommandFlags.fua, cookie: 1n, offsetBytes: 0, lengthBytes: 512, payload: patternBytes(512, 1) },
      sessionRequests.at(-1)!,
    ];
    await session(fixture.server, [goBytes("disk"), requestBytes(requests)]);
    expect(fixture.disk.pendingBytes()).toBe(0);
    expect(fixture.disk.stats.writes).toBe(1);
  });

  it("closes a connection that sends a bad request magic, and serves others meanwhile", async () => {
    const fixture = memoryServer();
    const bad = requestBytes([{ type: nbdCommands.read, cookie: 1n, offsetBytes: 0, lengthBytes: 512 }]);
    bad[1] ^= 0x55;
    const [badClient, badEnd] = duplexPair();
    const badDone = fixture.server.handle(badEnd);
    await badClient.send([goBytes("disk"), bad]);
    await within(badDone, 5000, "The bad session");
    expect(badEnd.closed).toBe(true);
    const sent = await session(fixture.server, [goBytes("disk"), requestBytes(sessionRequests)]);
    expect(parseTranscript(sent, readLengthsOf(sessionRequests)).replies.size).toBe(8);
  });

  it("runs at most the configured requests at once and replies in completion order", async () => {
    const { gate, server } = gatedServer(4);
    const requests: RequestFields[] = Array.from({ length: 10 }, (_, index) => ({
      type: nbdCommands.read,
      cookie: BigInt(index + 1),
      offsetBytes: index * 512,
      lengthBytes: 512,
    }));
    const [client, serverEnd] = duplexPair();
    const done = server.handle(serverEnd);
    await client.send([goBytes("disk"), requestBytes(requests), requestBytes([sessionRequests.at(-1)!])]);
    await until(() => gate.waiting.length === 4);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(gate.waiting.length).toBe(4); // the fifth is not read while four are in flight
    // Release the four newest first: replies follow completion, not request order.
    for (let count = 0; count < 4; count++) gate.waiting.pop()!();
    while (gate.started < 10 || gate.waiting.length > 0) {
      await until(() => gate.waiting.length > 0);
      gate.waiting.shift()!();
    }
    await within(done, 5000, "The session");
    const order = [...parseTranscript(serverEnd.sentBytes, readLengthsOf(requests)).replies.keys()];
    expect(order.slice(0, 4)).toEqual([4n, 3n, 2n, 1n]);
    expect(new Set(order).size).toBe(10);
  });

  it("serves at most connectionsServedMax connections; one more is refused its GO with a message, and goes once one ends", async () => {
    const { server, logs } = memoryServer({ connectionsServedMax: 2 });
    const acked = (bytes: Uint8Array) =>
      parseTranscript(bytes).optionReplies.some((reply) => reply.option === nbdOptions.go && reply.replyType === nbdOptionReplies.ack);
    const served = [0, 1].map(() => {
      const [client, serverEnd] = duplexPair();
      return { client, serverEnd, done: server.handle(serverEnd) };
    });
    for (const one of served) await one.client.send(goBytes("disk"));
    await until(() => served.every((one) => acked(one.serverEnd.sentBytes)));
    const [client, serverEnd] = duplexPair();
    const done = server.handle(serverEnd);
    await client.send(goBytes("disk"));
    await until(() => parseTranscript(serverEnd.sentBytes).optionReplies.length === 1);
    const [refused] = parseTranscript(serverEnd.sentBytes).optionReplies;
    expect(refused.replyType).toBe(nbdOptionReplies.errorUnknown);
    const message = 'Cannot serve export "disk": 2 connections are being served, the limit; try again when one ends';
    expect(new TextDecoder().decode(refused.data)).toBe(message);
    expect(logs.some((line) => line.includes(message))).toBe(true);
    // INFO takes no place; after one connection ends, the same client's next GO is served.
    await client.send(encodeOption(nbdOptions.info, encodeInfoRequest("disk", [])));
    await served[0].client.send(requestBytes([sessionRequests.at(-1)!]));
    await within(served[0].done, 10_000, "The first session");
    await client.send(encodeOption(nbdOptions.go, encodeInfoRequest("disk", [])));
    await until(() => acked(serverEnd.sentBytes));
    const replies = parseTranscript(serverEnd.sentBytes).optionReplies.map((reply) => [reply.option, reply.replyType]);
    expect(replies[0]).toEqual([nbdOptions.go, nbdOptionReplies.errorUnknown]);
    expect(replies.filter(([option]) => option === nbdOptions.info).at(-1)).toEqual([nbdOptions.info, nbdOptionReplies.ack]);
    expect(replies.at(-1)).toEqual([nbdOptions.go, nbdOptionReplies.ack]);
    for (const end of [served[1].client, client]) await end.send(requestBytes([sessionRequests.at(-1)!]));
    await within(Promise.all([served[1].done, done]), 10_000, "The sessions");
    expect(() => memoryServer({ connectionsServedMax: 0 })).toThrow(/connectionsServedMax 0/);
  });

  it("keeps each WRITE payload unchanged until its device write settles, though buffers are reused", async () => {
    const device = new HoldingWriteDevice(new MemoryBlockDevice(1024 * 1024));
    const server = new NbdServer({ resolveExport: async () => ({ device, readOnly: false }), listExports: () => [] });
    const requests: RequestFields[] = Array.from({ length: 24 }, (_, index) => ({
      type: nbdCommands.write,
      cookie: BigInt(index + 1),
      offsetBytes: index * 4096,
      lengthBytes: 4096,
      payload: patternBytes(4096, index + 1),
    }));
    const [client, serverEnd] = duplexPair();
    const done = server.handle(serverEnd);
    await client.send(goBytes("disk"));
    // Three rounds of eight; after each, all but the four oldest settle, so the next round's
    // payloads reuse buffers while the four oldest writes are still held.
    for (let round = 0; round < 3; round++) {
      await client.send(requestBytes(requests.slice(round * 8, round * 8 + 8)));
      await until(() => device.held.length === (round === 0 ? 8 : 12));
      while (device.held.length > (round === 2 ? 0 : 4)) device.held.pop()!(); // newest first
    }
    await client.send(requestBytes([sessionRequests.at(-1)!]));
    await within(done, 5000, "The session");
    expect(device.changedWhileHeld).toBe(0);
    for (const request of requests) {
      const target = new Uint8Array(4096);
      await device.next.read(request.offsetBytes, target);
      expect(firstDifference(target, request.payload!)).toBe(-1);
    }
  });
});

/** A device whose writes wait until the test releases them, checking the source meanwhile. */
class HoldingWriteDevice implements BlockDevice {
  readonly held: (() => void)[] = [];
  changedWhileHeld = 0;
  constructor(readonly next: MemoryBlockDevice) {}
  get sizeBytes() {
    return this.next.sizeBytes;
  }
  get capabilities() {
    return this.next.capabilities;
  }
  read(offsetBytes: number, target: Uint8Array) {
    return this.next.read(offsetBytes, target);
  }
  async write(offsetBytes: number, source: Uint8Array): Promise<void> {
    const copy = source.slice();
    await new Promise<void>((resolve) => this.held.push(resolve));
    if (firstDifference(source, copy) !== -1) this.changedWhileHeld++;
    await this.next.write(offsetBytes, source);
  }
  flush() {
    return this.next.flush();
  }
  close() {
    return this.next.close();
  }
}

/** A device whose reads wait until the test releases them. */
class GatedDevice implements BlockDevice {
  readonly waiting: (() => void)[] = [];
  started = 0;
  constructor(readonly next: MemoryBlockDevice) {}
  get sizeBytes() {
    return this.next.sizeBytes;
  }
  get capabilities() {
    return this.next.capabilities;
  }
  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.started++;
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    await this.next.read(offsetBytes, target);
  }
  write(offsetBytes: number, source: Uint8Array) {
    return this.next.write(offsetBytes, source);
  }
  flush() {
    return this.next.flush();
  }
  close() {
    return this.next.close();
  }
}

/** A server whose one export's reads wait for the test, with at most `requestsInFlightMax` requests at once. */
function gatedServer(requestsInFlightMax: number) {
  const gate = new GatedDevice(new MemoryBlockDevice(1024 * 1024));
  const server = new NbdServer({
    resolveExport: async () => ({ device: gate, readOnly: false }),
    listExports: () => [],
  }, { requestsInFlightMax });
  return { gate, server };
}

async function until(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 1000 && !condition(); attempt++) await new Promise((resolve) => setTimeout(resolve, 2));
  expect(condition()).toBe(true);
}

// ---------------------------------------------------------------------------------------
// Reading in place

describe("NbdServer on a connection that reads where the bytes belong (sinkTo)", () => {
  const KiB = 1024;
  const requests: RequestFields[] = [
    { type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: 256 * KiB, payload: patternBytes(256 * KiB, 1) },
    { type: nbdCommands.write, cookie: 2n, offsetBytes: 512 * KiB, lengthBytes: 4 * KiB, payload: patternBytes(4 * KiB, 2) },
    { type: nbdCommands.write, cookie: 3n, offsetBytes: 1024 * KiB, lengthBytes: 1024 * KiB, payload: patternBytes(1024 * KiB, 3) },
    { type: nbdCommands.write, cookie: 4n, offsetBytes: 2048 * KiB, lengthBytes: 1024 * KiB, payload: patternBytes(1024 * KiB, 4) },
    { type: nbdCommands.read, cookie: 5n, offsetBytes: 1020 * KiB, lengthBytes: 8 * KiB },
    { type: nbdCommands.write, cookie: 6n, offsetBytes: 3072 * KiB, lengthBytes: 64 * KiB + 512, payload: patternBytes(64 * KiB + 512, 6) },
    { type: nbdCommands.flush, cookie: 7n, offsetBytes: 0, lengthBytes: 0 },
    { type: nbdCommands.write, cookie: 8n, offsetBytes: 256 * KiB, lengthBytes: 128 * KiB, payload: patternBytes(128 * KiB, 8) },
    { type: nbdCommands.write, cookie: 9n, offsetBytes: 4 * 1024 * KiB - 512, lengthBytes: 1024, payload: patternBytes(1024, 9) },
    sessionRequests.at(-1)!,
  ];

  it("gives the same replies and device state as an iterating server, with large payloads read into their buffers", async () => {
    const stream = concatBytes([goBytes("disk"), requestBytes(requests)]);
    const reference = memoryServer({ sizeBytes: 4 * 1024 * KiB });
    const referenceSent = await session(reference.server, [stream]);
    const expected = parseTranscript(referenceSent, readLengthsOf(requests));
    const errorValues = [...expected.replies].sort(([a], [b]) => Number(a - b)).map(([, reply]) => reply.errorValue);
    expect(errorValues).toEqual([0, 0, 0, 0, 0, 0, 0, 0, nbdErrors.noSpace]);
    let inPlace = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const fixture = memoryServer({ sizeBytes: 4 * 1024 * KiB });
      let sinking: SinkingConnection | undefined;
      // Sent whole, and cut into pieces the sender awaits one by one (the reader keeps up).
      const requestStream = stream.subarray(goBytes("disk").length);
      const pieceCount = seed % 2 === 0 ? 1 : 64;
      const pieces = [goBytes("disk"), ...Array.from({ length: pieceCount }, (_, index) => requestStream.subarray(
        Math.floor((index * requestStream.length) / pieceCount),
        Math.floor(((index + 1) * requestStream.length) / pieceCount),
      ))];
      const sent = await session(fixture.server, pieces, { sinkSeed: seed, sunk: (connection) => (sinking = connection) });
      const parsed = parseTranscript(sent, readLengthsOf(requests));
      expect(parsed.restBytes).toBe(0);
      for (const [cookie, reply] of expected.replies) {
        const actual = parsed.replies.get(cookie);
        expect(actual?.errorValue, `cookie ${cookie}, seed ${seed}`).toBe(reply.errorValue);
        expect(firstDifference(actual?.data ?? new Uint8Array(0), reply.data ?? new Uint8Array(0)), `cookie ${cookie}`).toBe(-1);
      }
      expect(firstDifference(fixture.disk.bytes(), reference.disk.bytes()), `device, seed ${seed}`).toBe(-1);
      inPlace += sinking!.readsInPlace;
      expect(sinking!.readsOwn).toBeGreaterThan(0);
    }
    expect(inPlace).toBeGreaterThan(12 * 4);
  });

  it("pauses receiving while decoded requests wait for the window, and serves them all once it frees", async () => {
    const { gate, server } = gatedServer(4);
    const reads: RequestFields[] = Array.from({ length: 3 * sinkPendingRequestsMax }, (_, index) => ({
      type: nbdCommands.read,
      cookie: BigInt(index + 1),
      offsetBytes: (index % 64) * 512,
      lengthBytes: 512,
    }));
    const [client, serverEnd] = duplexPair();
    const sinking = new SinkingConnection(serverEnd, new SeededRandom(7));
    const done = server.handle(sinking);
    await client.send([goBytes("disk"), requestBytes(reads), requestBytes([sessionRequests.at(-1)!])]);
    await until(() => gate.waiting.length === 4 && sinking.pauses > 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(gate.started).toBe(4); // the rest wait, decoded or unread
    while (gate.started < reads.length || gate.waiting.length > 0) {
      gate.waiting.shift()?.();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await within(done, 5000, "The session");
    const parsed = parseTranscript(serverEnd.sentBytes, readLengthsOf(reads));
    expect(parsed.replies.size).toBe(reads.length);
    expect([...parsed.replies.values()].every((reply) => reply.errorValue === 0)).toBe(true);
  });

  it("pauses after a read's worth of decoded payload bytes", () => {
    expect(sinkPendingPayloadBytesMax).toBeLessThanOrEqual(256 * KiB);
  });
});

// ---------------------------------------------------------------------------------------
// Fuzz

const requestArbitrary: fc.Arbitrary<RequestFields> = fc.record({
  type: fc.constantFrom(0, 0, 1, 1, 1, 3, 4, 6, 7, 99),
  flags: fc.constantFrom(0, 0, 1, 2, 4, 0xffff),
  cookie: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  offsetSectors: fc.oneof(fc.integer({ min: 0, max: 2100 }), fc.constant(2 ** 40)),
  lengthSectors: fc.integer({ min: 0, max: 24 }),
  misaligned: fc.boolean(),
}).map(({ type, flags, cookie, offsetSectors, lengthSectors, misaligned }) => {
  const lengthBytes = lengthSectors * 512 + (misaligned ? 7 : 0);
  return {
    type,
    flags,
    cookie,
    offsetBytes: offsetSectors * 512,
    lengthBytes,
    payload: type === nbdCommands.write ? patternBytes(lengthBytes, Number(cookie % 256n)) : undefined,
  };
});

const mutationArbitrary = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), atPermille: fc.integer({ min: 0, max: 999 }), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), atPermille: fc.integer({ min: 0, max: 999 }) }),
  fc.record({ kind: fc.constant("insert" as const), atPermille: fc.integer({ min: 0, max: 999 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
);

interface Mutation {
  kind: "flip" | "truncate" | "insert";
  atPermille: number;
  mask?: number;
  bytes?: Uint8Array;
}

function mutate(stream: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = stream.slice();
  for (const mutation of mutations) {
    const atBytes = Math.floor((mutation.atPermille / 1000) * bytes.length);
    if (mutation.kind === "flip") bytes[atBytes] ^= mutation.mask!;
    if (mutation.kind === "truncate") bytes = bytes.slice(0, atBytes);
    if (mutation.kind === "insert") bytes = concatBytes([bytes.subarray(0, atBytes), mutation.bytes!, bytes.subarray(atBytes)]);
  }
  return bytes;
}

describe("NbdServer under mutated request streams", () => {
  it("never crashes or hangs, never changes the read-only export, and never disturbs another connection", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("disk", "image"),
        fc.array(requestArbitrary, { minLength: 1, maxLength: 12 }),
        fc.array(mutationArbitrary, { maxLength: 3 }),
        fc.boolean(),
        fc.option(fc.integer({ min: 1, max: 1_000_000 }), { nil: undefined }),
        async (name, requests, mutations, disconnect, sinkSeed) => {
          const fixture = memoryServer({ sizeBytes: 1024 * 1024 });
          const stream = mutate(
            concatBytes([
              goBytes(name),
              requestBytes(requests),
              disconnect ? requestBytes([sessionRequests.at(-1)!]) : new Uint8Array(0),
            ]),
            mutations,
          );
          // A well-behaved client on the same server at the same time.
          const goodRequests: RequestFields[] = [
            { type: nbdCommands.write, cookie: 1n, offsetBytes: 1024 * 1024 - 4096, lengthBytes: 4096, payload: patternBytes(4096, 9) },
            { type: nbdCommands.read, cookie: 2n, offsetBytes: 0, lengthBytes: 4096 },
            sessionRequests.at(-1)!,
          ];
          const good = session(fixture.server, [goBytes("image"), requestBytes(goodRequests)]);
          await session(fixture.server, [stream], { closeAfter: true, sinkSeed });
          const goodReplies = parseTranscript(await good, readLengthsOf(goodRequests)).replies;
          expect(goodReplies.get(1n)!.errorValue).toBe(nbdErrors.permission);
          expect(goodReplies.get(2n)!.data).toEqual(fixture.imageContents.subarray(0, 4096));
          expect(firstDifference(fixture.image.bytes(), fixture.imageContents)).toBe(-1);
          expect(fixture.image.stats.writes).toBe(0);
          expect(fixture.server.connectionCount).toBe(0);
          expect(fixture.logs.filter((line) => line.startsWith("Unexpected"))).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
