// Proves FramedConnection over an in-test duplex pair (no sockets): messages of every kind
// arrive whole and in order however the byte stream is chunked; a peer that breaks the
// protocol (bad magic, oversize header, a WRITE whose payload disagrees with its entries, a
// HELLO of another version) gets an ERROR with the error's code and then a closed connection,
// while the receiver gets every valid message sent before the fault and then the
// ProtocolError, never part of a message; a peer closing inside a frame is "truncated";
// received messages do not alias the transport's (lent) buffers, except held in-process
// chunks, which lent messages read in place.
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { ConnectionClosedError } from "../../src/io/transport.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { MemoryTransport } from "../../src/io/memory_transport.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { FramedConnection } from "../../src/wire/framed_connection.ts";
import { type Message, messageKinds } from "../../src/wire/messages.ts";
import { wireLimits } from "../../src/core/limits.ts";
import {
  concatBytes,
  duplexPair,
  everyKindSamples,
  messageArbitrary,
  rawFrame,
  rawHeader,
  type TestConnection,
} from "./wire_support.ts";

let checksum: Checksum;

beforeAll(async () => {
  checksum = await createChecksum();
});

/** Receives until the end or an error. */
async function receiveAll(framed: FramedConnection): Promise<{ messages: Message[]; error: unknown }> {
  const messages: Message[] = [];
  try {
    for await (const message of framed) messages.push(message);
  } catch (error) {
    return { messages, error };
  }
  return { messages, error: null };
}

/** The messages a raw end received (what the misbehaving peer was told). */
async function messagesReceivedBy(end: TestConnection): Promise<Message[]> {
  const outcome = await receiveAll(new FramedConnection(end));
  expect(outcome.error).toBeNull();
  return outcome.messages;
}

describe("delivery", () => {
  test("every kind arrives whole and in order through random chunkings", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(messageArbitrary(checksum), { maxLength: 12 }), fc.nat(), async (samples, seed) => {
        const [a, b] = duplexPair({ random: new SeededRandom(seed) });
        const sender = new FramedConnection(a);
        for (const sample of samples) await sender.send(sample.kind, sample.body as never, sample.payload);
        await sender.close();
        const outcome = await receiveAll(new FramedConnection(b));
        expect(outcome.error).toBeNull();
        expect(outcome.messages.map((message) => message.kind)).toEqual(samples.map((sample) => sample.kind));
        for (let i = 0; i < samples.length; i++) {
          expect(outcome.messages[i].body).toEqual(samples[i].body);
          expect(outcome.messages[i].payload).toEqual(samples[i].payload);
        }
      }),
      { numRuns: 100 },
    );
  });

  test("received messages do not alias the buffers the transport lent", async () => {
    const [a, b] = duplexPair();
    const write = everyKindSamples(checksum)[4];
    const bytes = concatBytes([rawFrame(checksum, messageKinds.write, write.body, write.payload)]);
    await a.send(bytes);
    const message = await new FramedConnection(b).receive();
    bytes.fill(0); // the sender reuses its buffer once the send settled
    expect(message?.payload).toEqual(write.payload);
    expect(message?.body).toEqual(write.body);
  });

  test("in-process, a held WRITE is read where it lies once messages are lent; a plain one is copied", async () => {
    const transport = new MemoryTransport();
    const listener = await transport.listen("appliance");
    const accepted = listener[Symbol.asyncIterator]().next();
    const sender = new FramedConnection(await transport.connect("appliance"));
    const receiver = new FramedConnection((await accepted).value!);
    receiver.lendMessages((lengthBytes) => checksum.allocate(lengthBytes));
    const write = everyKindSamples(checksum).find((sample) => sample.kind === messageKinds.write)!;
    const payload = checksum.allocate(write.payload!.length);
    payload.set(write.payload!);
    const [headerAndBody] = encodeFrame(messageKinds.write, write.body, payload);
    let settled = false;
    const held = sender.sendFrame(headerAndBody, [payload], { held: true }).then(() => (settled = true));
    const first = await receiver.receive();
    expect(first?.payload.buffer).toBe(payload.buffer); // a view of the sender's bytes, no copy
    expect(checksum.hash64(first!.payload)).toBe(checksum.hash64(write.payload!));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(settled).toBe(false); // the receiver may still read it
    const plain = sender.sendFrame(headerAndBody, [payload]);
    const second = await receiver.receive(); // asking for more released the held chunks
    await held;
    await plain;
    expect(second?.payload.buffer).not.toBe(payload.buffer); // copied: the sender may reuse its bytes
    expect(second?.payload).toEqual(write.payload);
    await sender.close();
    expect(await receiver.receive()).toBeUndefined();
    await listener.close();
  });

  test("leaving the message loop releases a held chunk, so the held send settles", async () => {
    const transport = new MemoryTransport();
    const listener = await transport.listen("appliance");
    const accepted = listener[Symbol.asyncIterator]().next();
    const sender = new FramedConnection(await transport.connect("appliance"));
    const receiver = new FramedConnection((await accepted).value!);
    receiver.lendMessages();
    const [headerAndBody] = encodeFrame(messageKinds.bye, { reason: "done" });
    let settled = false;
    const held = sender.sendFrame(headerAndBody, [], { held: true }).then(() => (settled = true));
    for await (const message of receiver) {
      expect(message.kind).toBe(messageKinds.bye);
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(settled).toBe(false); // still the receiver's
      break;
    }
    await held;
    expect(settled).toBe(true);
    await sender.close();
    await listener.close();
  });

  test("an orderly close between messages ends the iteration", async () => {
    const [a, b] = duplexPair();
    const sender = new FramedConnection(a);
    await sender.send(messageKinds.bye, { reason: "done" });
    await sender.close();
    const receiver = new FramedConnection(b);
    expect((await receiver.receive())?.kind).toBe(messageKinds.bye);
    expect(await receiver.receive()).toBeUndefined();
    expect(await receiver.receive()).toBeUndefined();
  });

  test("a broken connection surfaces the transport's error", async () => {
    const [a, b] = duplexPair();
    const receiver = new FramedConnection(b);
    const pending = receiver.receive();
    a.drop();
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("sendError after the connection ended reports that nobody was told", async () => {
    const [a, b] = duplexPair();
    await b.close();
    expect(await new FramedConnection(a).sendError("bye", "late")).toBe(false);
  });
});

describe("protocol faults", () => {
  async function expectRefused(
    stream: Uint8Array,
    code: ProtocolError["code"],
    options: { deliveredKinds?: number[]; random?: SeededRandom } = {},
  ): Promise<void> {
    const [a, b] = duplexPair({ random: options.random });
    await a.send(stream); // and stays open to hear what it is told
    const receiver = new FramedConnection(b);
    const outcome = await receiveAll(receiver);
    expect(outcome.error).toBeInstanceOf(ProtocolError);
    expect((outcome.error as ProtocolError).code).toBe(code);
    expect(outcome.messages.map((message) => message.kind)).toEqual(options.deliveredKinds ?? []);
    // Every later receive throws the same error.
    await expect(receiver.receive()).rejects.toBe(outcome.error);
    // The peer was told: one ERROR with the code and the message, then the end.
    expect(b.closed).toBe(true);
    const told = await messagesReceivedBy(a);
    expect(told.map((message) => message.kind)).toEqual([messageKinds.error]);
    expect(told[0].body).toEqual({ code, message: (outcome.error as Error).message });
  }

  test('bad magic: ERROR "bad-magic", then close', async () => {
    await expectRefused(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad-magic");
  });

  test("an oversize header is refused as soon as it arrives: the rest is never awaited", async () => {
    const [a, b] = duplexPair();
    await a.send(rawHeader(checksum, { kind: messageKinds.write, bodyBytes: 2 ** 30 }));
    // Nothing more is sent and the connection stays open: the refusal cannot wait for data.
    const receiver = new FramedConnection(b);
    const error = await receiver.receive().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("too-large");
    const told = await messagesReceivedBy(a);
    expect(told[0].body).toMatchObject({ code: "too-large" });
  });

  test("valid messages before a fault are delivered, then the fault; never part of a message", async () => {
    const ping = rawFrame(checksum, messageKinds.ping, { timeUs: 1 });
    const ack = rawFrame(checksum, messageKinds.ack, { volume: "db", durableSeq: 3 });
    const write = everyKindSamples(checksum)[4];
    const badWrite = rawFrame(checksum, messageKinds.write, write.body, write.payload.subarray(0, 512));
    const stream = concatBytes([ping, ack, badWrite, ping]);
    await expectRefused(stream, "bad-body", { deliveredKinds: [messageKinds.ping, messageKinds.ack] });
    for (let seed = 0; seed < 20; seed++) {
      await expectRefused(stream, "bad-body", {
        deliveredKinds: [messageKinds.ping, messageKinds.ack],
        random: new SeededRandom(seed),
      });
    }
  });

  test('a HELLO of another version: ERROR "version" naming both versions', async () => {
    const hello = rawFrame(checksum, messageKinds.hello, {
      protocol: 1,
      role: "switch",
      switchId: "s",
      nonce: new Uint8Array(32),
    });
    await expectRefused(hello, "version");
  });

  test('a peer closing inside a frame is "truncated"', async () => {
    const [a, b] = duplexPair();
    const ping = rawFrame(checksum, messageKinds.ping, { timeUs: 1 });
    await a.send(concatBytes([ping, ping.subarray(0, 10)]));
    await a.close();
    const outcome = await receiveAll(new FramedConnection(b));
    expect(outcome.messages.length).toBe(1);
    expect((outcome.error as ProtocolError).code).toBe("truncated");
  });

  test("an over-long error message is cut to the limit", async () => {
    const [a, b] = duplexPair();
    expect(await new FramedConnection(a).sendError("volume", "x".repeat(5000))).toBe(true);
    const told = await messagesReceivedBy(b);
    expect((told[0].body as { message: string }).message.length).toBe(wireLimits.errorMessageLengthMax);
  });
});
