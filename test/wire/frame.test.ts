// Proves the frame codec and FrameDecoder: every message kind survives encode → decode; the
// same byte stream yields the same messages however it is chunked (split at every byte
// boundary, fed one byte at a time, and in random chunkings from fast-check); every header
// fault is refused with its own ProtocolError code, and an oversize length is refused as soon
// as its 16 header bytes are known, holding nothing more; the decoder stays dead after a fault;
// and fuzzing (random bytes, every single-byte mutation of a valid stream, random mutations
// in random chunkings) never crashes or hangs it: it yields only valid messages or throws a
// ProtocolError. The header check is compared with xxhash-wasm's XXH32.
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { decodeCbor } from "../../src/wire/cbor.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { encodeFrame, type Frame, FrameDecoder, frameHeaderBytes } from "../../src/wire/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  messageKinds,
  messageProblem,
  type WriteBody,
  writeEntryBytes,
} from "../../src/wire/messages.ts";
import { wireLimits } from "../../src/core/limits.ts";
import { firstDifference } from "../io/test_bytes.ts";
import {
  concatBytes,
  everyKindSamples,
  messageArbitrary,
  rawFrame,
  rawFrameOfBodyBytes,
  rawHeader,
  type SampleMessage,
} from "./wire_support.ts";

let checksum: Checksum;

beforeAll(async () => {
  checksum = await createChecksum();
});

function encodeSample(sample: SampleMessage): Uint8Array {
  return concatBytes(encodeMessage(sample.kind, sample.body, sample.payload));
}

/** What a consumer sees: the messages, and the error that ended the stream (if any). */
interface Outcome {
  messages: Message[];
  error: unknown;
}

/** Feeds `chunks` to a new decoder, decoding every frame as FramedConnection does. */
function decodeChunks(chunks: readonly Uint8Array[], options: { copyFrames?: boolean } = {}): Outcome {
  const decoder = new FrameDecoder(options);
  const messages: Message[] = [];
  const take = (): void => {
    for (const frame of decoder) messages.push(decodeMessage(frame));
  };
  try {
    for (const chunk of chunks) {
      try {
        decoder.push(chunk);
      } catch (error) {
        take(); // frames completed before the fault are still delivered
        throw error;
      }
      take();
    }
  } catch (error) {
    return { messages, error };
  }
  return { messages, error: decoder.bufferedBytes > 0 ? "incomplete" : null };
}

function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const sorted = [...new Set(cuts)].filter((cut) => cut > 0 && cut < bytes.length).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let atBytes = 0;
  for (const cut of sorted) {
    chunks.push(bytes.subarray(atBytes, cut));
    atBytes = cut;
  }
  chunks.push(bytes.subarray(atBytes));
  return chunks;
}

/**
 * Same kinds, bodies and payloads, compared through their encodings (the encoding is
 * deterministic, and vitest's deep equality walks typed arrays slowly).
 */
function expectSameMessages(actual: readonly Message[], expected: readonly SampleMessage[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const actualBytes = concatBytes(encodeMessage(actual[i].kind, actual[i].body as never, actual[i].payload));
    const expectedBytes = encodeSample(expected[i]);
    if (firstDifference(actualBytes, expectedBytes) !== -1) {
      expect(actual[i].body).toEqual(expected[i].body); // says what differs
      expect(actual[i].payload).toEqual(expected[i].payload);
    }
  }
}

function expectProtocolError(error: unknown, code: ProtocolError["code"]): void {
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe(code);
}

/**
 * The invariant of every fuzz test: only ProtocolErrors, only valid messages. Plain checks,
 * not `expect`, because the exhaustive mutation test runs it some 200k times.
 */
function expectSafeOutcome(outcome: Outcome): void {
  if (outcome.error !== null && outcome.error !== "incomplete" && !(outcome.error instanceof ProtocolError)) {
    throw new Error(`The decoder threw something other than a ProtocolError: ${outcome.error}`, {
      cause: outcome.error,
    });
  }
  for (const message of outcome.messages) {
    const problem = messageProblem(message.kind, message.body, message.payload.length);
    if (problem !== null) throw new Error(`The decoder yielded an invalid message: ${problem}`);
    // A decoded message can be sent on as it is (encodeMessage asserts it is valid).
    encodeMessage(message.kind, message.body as never, message.payload);
  }
}

describe("frame body check", () => {
  test("a body changed after encoding — even into other valid CBOR — is refused whole", () => {
    // A WRITE entry's offset lives in the body; flip it from 1024 to 1536, both valid.
    const chunks = encodeFrame(messageKinds.ack, { volume: "db", durableSeq: 1024 });
    const frame = chunks[0].slice();
    const body = frame.subarray(frameHeaderBytes);
    const at = body.findIndex((b, i) => b === 0x04 && body[i + 1] === 0x00);
    expect(at).toBeGreaterThan(0);
    body[at] = 0x06;
    const decoder = new FrameDecoder();
    expect(() => decoder.push(frame)).toThrow(/body check/);
    const split = new FrameDecoder();
    split.push(frame.subarray(0, 25));
    expect(() => split.push(frame.subarray(25))).toThrow(/body check/);
  });
});

describe("frame encoding", () => {
  test("the header is 20 little-endian bytes: a body check (XXH32 of the body) and a header check (XXH32 of bytes 0..15)", () => {
    const payload = new Uint8Array(1024);
    const chunks = encodeFrame(messageKinds.write, { any: "body" }, payload);
    expect(chunks.length).toBe(2);
    expect(chunks[1]).toBe(payload); // by reference, not copied
    const header = chunks[0].subarray(0, frameHeaderBytes);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    expect([header[0], header[1]]).toEqual([0x41, 0x57]);
    expect(view.getUint8(2)).toBe(1);
    expect(view.getUint8(3)).toBe(messageKinds.write);
    expect(view.getUint32(4, true)).toBe(chunks[0].length - frameHeaderBytes);
    expect(view.getUint32(8, true)).toBe(1024);
    expect(view.getUint32(12, true)).toBe(checksum.hash32(chunks[0].subarray(frameHeaderBytes)));
    expect(view.getUint32(16, true)).toBe(checksum.hash32(header.subarray(0, 16)));
  });

  test("both checks agree with xxhash-wasm for any header and body", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        (bodyFill, payloadBytes) => {
          const chunks = encodeFrame(messageKinds.write, "x".repeat(bodyFill % 1000), new Uint8Array(payloadBytes));
          const view = new DataView(chunks[0].buffer);
          expect(view.getUint32(12, true)).toBe(checksum.hash32(chunks[0].subarray(frameHeaderBytes)));
          expect(view.getUint32(16, true)).toBe(checksum.hash32(chunks[0].subarray(0, 16)));
        },
      ),
      { numRuns: 200 },
    );
  });

  test("a frame without payload is one chunk", () => {
    expect(encodeFrame(messageKinds.ping, { timeUs: 1 }).length).toBe(1);
  });

  test("lengths over a kind's limits are refused at the sender (assertion)", () => {
    expect(() => encodeFrame(messageKinds.ping, { timeUs: 1 }, new Uint8Array(512))).toThrow(/limits/);
    expect(() => encodeFrame(messageKinds.ping, "x".repeat(wireLimits.controlBodyBytesMax))).toThrow(/limit/);
  });
});

describe("round trips", () => {
  test("one message of every kind survives encode and decode", () => {
    const samples = everyKindSamples(checksum);
    expect(new Set(samples.map((sample) => sample.kind))).toEqual(new Set(Object.values(messageKinds)));
    for (const sample of samples) {
      const outcome = decodeChunks([encodeSample(sample)]);
      expect(outcome.error).toBeNull();
      expectSameMessages(outcome.messages, [sample]);
    }
  });

  test("random valid messages of every kind survive encode and decode", () => {
    fc.assert(
      fc.property(fc.array(messageArbitrary(checksum), { minLength: 1, maxLength: 8 }), (samples) => {
        const outcome = decodeChunks([concatBytes(samples.map(encodeSample))]);
        expect(outcome.error).toBeNull();
        expectSameMessages(outcome.messages, samples);
      }),
      { numRuns: 300 },
    );
  });

  test("frames inside one chunk are views into it; with copyFrames they are not", () => {
    const stream = encodeSample(everyKindSamples(checksum)[4]); // WRITE
    const viewed = new FrameDecoder();
    viewed.push(stream);
    const frame = viewed.nextFrame() as Frame;
    expect(frame.payload.buffer).toBe(stream.buffer);
    const copied = new FrameDecoder({ copyFrames: true });
    copied.push(stream);
    expect((copied.nextFrame() as Frame).payload.buffer).not.toBe(stream.buffer);
  });
});

describe("chunking", () => {
  const samples = (): SampleMessage[] => everyKindSamples(checksum);

  test("a stream split at every byte boundary yields the same messages", () => {
    const expected = samples();
    const stream = concatBytes(expected.map(encodeSample));
    for (let cut = 0; cut <= stream.length; cut++) {
      const outcome = decodeChunks(splitAt(stream, [cut]));
      expect(outcome.error, `cut at ${cut}`).toBeNull();
      expectSameMessages(outcome.messages, expected);
    }
  });

  test("a stream split at every pair of byte boundaries inside a frame yields the same messages", () => {
    const expected = samples().slice(0, 3);
    const stream = concatBytes(expected.map(encodeSample));
    for (let first = 1; first < stream.length; first += 3) {
      for (let second = first + 1; second < stream.length; second += 7) {
        const outcome = decodeChunks(splitAt(stream, [first, second]));
        expect(outcome.error).toBeNull();
        expectSameMessages(outcome.messages, expected);
      }
    }
  });

  test("a stream fed one byte at a time yields the same messages", () => {
    const expected = samples();
    const stream = concatBytes(expected.map(encodeSample));
    const outcome = decodeChunks(Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
    expect(outcome.error).toBeNull();
    expectSameMessages(outcome.messages, expected);
  });

  test("random messages in random chunkings yield the same messages, copied or not", () => {
    fc.assert(
      fc.property(
        fc.array(messageArbitrary(checksum), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (expected, cutSeeds, copyFrames) => {
          const stream = concatBytes(expected.map(encodeSample));
          const cuts = cutSeeds.map((seed) => seed % (stream.length + 1));
          const outcome = decodeChunks(splitAt(stream, cuts), { copyFrames });
          expect(outcome.error).toBeNull();
          expectSameMessages(outcome.messages, expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a frame spanning chunks is copied into a buffer sized by its header", () => {
    const stream = encodeSample(everyKindSamples(checksum)[4]);
    const decoder = new FrameDecoder();
    decoder.push(stream.subarray(0, 20));
    expect(decoder.allocatedBytes).toBe(stream.length - frameHeaderBytes);
    expect(decoder.bufferedBytes).toBe(20);
    expect(decoder.nextFrame()).toBeUndefined();
    decoder.push(stream.subarray(20));
    expect(decoder.nextFrame()?.kind).toBe(messageKinds.write);
    expect(decoder.bufferedBytes).toBe(0);
  });

  test("pushing before the frames of the previous chunk are taken is a programmer error", () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeSample(everyKindSamples(checksum)[12]));
    expect(() => decoder.push(new Uint8Array(1))).toThrow(/taken/);
  });
});

describe("limits", () => {
  test("a header announcing a 1 GiB body is refused as soon as it arrives, holding nothing", () => {
    const header = rawHeader(checksum, { kind: messageKinds.write, bodyBytes: 2 ** 30 });
    const decoder = new FrameDecoder();
    let error: unknown;
    try {
      decoder.push(header);
    } catch (caught) {
      error = caught;
    }
    expectProtocolError(error, "too-large");
    expect(decoder.bufferedBytes).toBe(0);
    expect(decoder.allocatedBytes).toBe(0);
  });

  test("a 1 GiB header fed byte by byte is refused at its 16th byte, having held at most 15", () => {
    const header = rawHeader(checksum, { kind: messageKinds.write, bodyBytes: 100, payloadBytes: 2 ** 30 });
    const decoder = new FrameDecoder();
    for (let i = 0; i < frameHeaderBytes - 1; i++) {
      decoder.push(header.subarray(i, i + 1));
      expect(decoder.bufferedBytes).toBe(i + 1);
      expect(decoder.allocatedBytes).toBe(0);
    }
    expect(() => decoder.push(header.subarray(15))).toThrow(ProtocolError);
    expect(decoder.allocatedBytes).toBe(0);
  });

  test("an oversize header after valid frames in the same chunk is refused without buffering its frame", () => {
    const ping = encodeSample(everyKindSamples(checksum)[12]);
    const stream = concatBytes([
      ping,
      rawHeader(checksum, { kind: messageKinds.write, bodyBytes: 2 ** 31 }),
      new Uint8Array(4096),
    ]);
    const outcome = decodeChunks([stream]);
    expectProtocolError(outcome.error, "too-large");
    expect(outcome.messages.map((message) => message.kind)).toEqual([messageKinds.ping]);
  });

  const oversize: [string, { kind: number; bodyBytes: number; payloadBytes?: number }][] = [
    ["a body over the kind's limit (PING)", { kind: messageKinds.ping, bodyBytes: wireLimits.controlBodyBytesMax + 1 }],
    ["a body over the body limit (WRITE)", { kind: messageKinds.write, bodyBytes: wireLimits.bodyBytesMax + 1 }],
    ["a payload on a kind that carries none", { kind: messageKinds.ack, bodyBytes: 10, payloadBytes: 1 }],
    ["a READ_REPLY payload over the read limit", {
      kind: messageKinds.readReply,
      bodyBytes: 10,
      payloadBytes: wireLimits.readBytesMax + 1,
    }],
    [
      "body and payload over the frame limit",
      {
        kind: messageKinds.write,
        bodyBytes: wireLimits.bodyBytesMax,
        payloadBytes: wireLimits.frameBytesMax - wireLimits.bodyBytesMax + 1,
      },
    ],
    ["u32 maxima", { kind: messageKinds.write, bodyBytes: 0xffff_ffff, payloadBytes: 0xffff_ffff }],
  ];
  for (const [what, fields] of oversize) {
    test(`${what} is refused with "too-large" from the header alone`, () => {
      const decoder = new FrameDecoder();
      let error: unknown;
      try {
        decoder.push(rawHeader(checksum, fields));
      } catch (caught) {
        error = caught;
      }
      expectProtocolError(error, "too-large");
      expect(decoder.allocatedBytes).toBe(0);
    });
  }

  test("a frame at exactly the frame limit is accepted", () => {
    const header = rawHeader(checksum, {
      kind: messageKinds.write,
      bodyBytes: wireLimits.bodyBytesMax,
      payloadBytes: wireLimits.frameBytesMax - wireLimits.bodyBytesMax,
    });
    const decoder = new FrameDecoder();
    decoder.push(header);
    expect(decoder.allocatedBytes).toBe(wireLimits.frameBytesMax);
  });
});

describe("header faults", () => {
  const ping = (): Uint8Array => encodeSample(everyKindSamples(checksum)[12]);

  function pushError(bytes: Uint8Array): unknown {
    const decoder = new FrameDecoder();
    try {
      decoder.push(bytes);
    } catch (error) {
      return error;
    }
    return null;
  }

  test("bad magic", () => {
    const bytes = ping();
    bytes[0] = 0x47; // "GET / HTTP/1.1" would start like this
    expectProtocolError(pushError(bytes), "bad-magic");
    expect(() => {
      throw pushError(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    }).toThrow(/magic 0x4547 is not 0x5741/);
  });

  test("bad version", () => {
    const error = pushError(rawHeader(checksum, { kind: messageKinds.ping, bodyBytes: 8, version: 2 }));
    expectProtocolError(error, "bad-version");
    expect((error as Error).message).toMatch(/version 2 is not 1/);
  });

  test("bad header check", () => {
    expectProtocolError(
      pushError(rawHeader(checksum, { kind: messageKinds.ping, bodyBytes: 8, headerCheck: 1234 })),
      "bad-header",
    );
    const bytes = ping();
    bytes[5] ^= 0x01; // a corrupted length
    expectProtocolError(pushError(bytes), "bad-header");
  });

  test("unknown kind", () => {
    for (const kind of [0, 5, 15, 19, 46, 47, 50, 61, 64, 255]) {
      const error = pushError(rawHeader(checksum, { kind, bodyBytes: 8 }));
      expectProtocolError(error, "unknown-kind");
    }
  });

  test("after a fault the decoder is dead: every later push throws the same error", () => {
    const decoder = new FrameDecoder();
    const bytes = ping();
    bytes[0] = 0;
    let first: unknown;
    try {
      decoder.push(bytes);
    } catch (error) {
      first = error;
    }
    expect(first).toBeInstanceOf(ProtocolError);
    expect(decoder.fault).toBe(first);
    for (let i = 0; i < 3; i++) {
      let later: unknown;
      try {
        decoder.push(ping());
      } catch (error) {
        later = error;
      }
      expect(later).toBe(first);
    }
    expect(decoder.nextFrame()).toBeUndefined();
  });

  test("frames completed before a fault in the same chunk are still taken", () => {
    const bad = ping();
    bad[2] = 9;
    const outcome = decodeChunks([concatBytes([ping(), ping(), bad, ping()])]);
    expectProtocolError(outcome.error, "bad-version");
    expect(outcome.messages.length).toBe(2);
  });
});

describe("body faults", () => {
  test("truncated CBOR is refused with bad-body", () => {
    const body = new Uint8Array([0xa1, 0x66, 0x74, 0x69, 0x6d, 0x65, 0x55]); // {"timeU... cut short
    const outcome = decodeChunks([rawFrameOfBodyBytes(checksum, messageKinds.ping, body)]);
    expectProtocolError(outcome.error, "bad-body");
  });

  test("an empty body and trailing bytes after the CBOR item are refused with bad-body", () => {
    expectProtocolError(
      decodeChunks([rawFrameOfBodyBytes(checksum, messageKinds.ping, new Uint8Array(0))]).error,
      "bad-body",
    );
    const body = concatBytes([
      encodeSample(everyKindSamples(checksum)[12]).subarray(frameHeaderBytes),
      new Uint8Array([0]),
    ]);
    expectProtocolError(decodeChunks([rawFrameOfBodyBytes(checksum, messageKinds.ping, body)]).error, "bad-body");
  });

  test("CBOR of the wrong shape is refused with bad-body", () => {
    for (const body of [1, "ping", [1], null, { timeUs: "1" }, { timeUs: -1 }, { timeUs: 1, extra: 2 }, {}]) {
      expectProtocolError(decodeChunks([rawFrame(checksum, messageKinds.ping, body)]).error, "bad-body");
    }
  });

  test("a WRITE whose payload disagrees with its entries is refused whole", () => {
    const write = everyKindSamples(checksum)[4];
    for (const payloadBytes of [0, 512, 1023, 1025, 1536]) {
      const frame = rawFrame(checksum, messageKinds.write, write.body, new Uint8Array(payloadBytes));
      const outcome = decodeChunks([frame]);
      expectProtocolError(outcome.error, "bad-body");
      expect(outcome.messages).toEqual([]);
      expect((outcome.error as Error).message).toMatch(/1024 bytes of data, the payload/);
    }
  });
});

describe("fuzzing", () => {
  test("random bytes never crash or hang the decoder", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        expectSafeOutcome(decodeChunks(splitAt(bytes, cuts.map((cut) => cut % (bytes.length + 1)))));
      }),
      { numRuns: 2000 },
    );
  });

  test("random bytes behind a valid header never crash the decoder", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.values(messageKinds)),
        fc.uint8Array({ minLength: 1, maxLength: 512 }),
        (kind, body) => {
          expectSafeOutcome(decodeChunks([rawFrameOfBodyBytes(checksum, kind, body)]));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("every single-byte mutation of a valid stream yields valid messages or a ProtocolError", () => {
    const all = everyKindSamples(checksum);
    const write = all[4];
    const oneEntryWrite: SampleMessage = {
      kind: messageKinds.write,
      body: { volume: "db", entries: (write.body as WriteBody).entries.subarray(0, writeEntryBytes) },
      payload: write.payload.subarray(0, 512),
    };
    const samples = [all[0], oneEntryWrite, all[5], all[6]]; // HELLO, WRITE, MARK, ACK
    const encoded = samples.map(encodeSample);
    const stream = concatBytes(encoded);
    // The WRITE's payload bytes are opaque data: mutating them changes nothing to check.
    const payloadEndBytes = encoded[0].length + encoded[1].length;
    const payloadStartBytes = payloadEndBytes - 512;
    let faults = 0;
    for (let i = 0; i < stream.length; i++) {
      if (i >= payloadStartBytes && i < payloadEndBytes) continue;
      for (let delta = 1; delta < 256; delta++) {
        const mutated = stream.slice();
        mutated[i] = (mutated[i] + delta) & 0xff;
        const outcome = decodeChunks([mutated]);
        expectSafeOutcome(outcome);
        if (outcome.error !== null) faults++;
      }
    }
    // Every header byte is covered by the magic, version or the header check.
    expect(faults).toBeGreaterThan(0);
  });

  test("random mutations of random valid streams in random chunkings yield valid messages or a ProtocolError", () => {
    fc.assert(
      fc.property(
        fc.array(messageArbitrary(checksum), { minLength: 1, maxLength: 5 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (samples, mutations, cuts) => {
          const stream = concatBytes(samples.map(encodeSample));
          for (const mutation of mutations) stream[mutation.at % stream.length] = mutation.value;
          expectSafeOutcome(decodeChunks(splitAt(stream, cuts.map((cut) => cut % (stream.length + 1)))));
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("CBOR extensions a peer might send are refused or decode to plain data that passes validation", () => {
    const hex = (text: string): Uint8Array => Uint8Array.from(text.match(/../g)!.map((pair) => parseInt(pair, 16)));
    const timeKey = "a16674696d655573"; // {"timeUs": ...
    const refused = [
      `${timeKey}c11a00000001`, // tag 1 (date)
      `${timeKey}c2420101`, // tag 2 (bignum)
      "d81b83665265674578706628612a292a2460", // tag 27: RegExp("(a*)*$")
      "d90103a1", // tag 259 (Map), truncated
      `${timeKey}d81d05`, // tag 29: a shared reference to nothing
      "d81c81d81d00", // tag 28: an array holding itself
      `${timeKey}9f0102ff`, // an indefinite array
      "9f".repeat(4000), // absurd nesting (within the PING body limit)
      `${timeKey}fb7ff8000000000000`, // NaN
      `${timeKey}fb4340000000000001`, // 2^53 + 2: not a safe integer
      `${timeKey}1b0020000000000001`, // uint64 2^53 + 1
    ];
    for (const body of refused) {
      const outcome = decodeChunks([rawFrameOfBodyBytes(checksum, messageKinds.ping, hex(body))]);
      expectProtocolError(outcome.error, "bad-body");
    }
    // A legacy cbor-x record (tag 105) decodes to a plain object: it passes only as valid data.
    const record = decodeChunks([
      rawFrameOfBodyBytes(checksum, messageKinds.ping, hex("d869830081" + "6674696d655573" + "01")),
    ]);
    expectSafeOutcome(record);
    // A 64-bit encoding of a small integer is still that integer.
    const wide = decodeChunks([rawFrameOfBodyBytes(checksum, messageKinds.ping, hex(`${timeKey}1b0000000000000007`))]);
    expect(wide.messages[0]?.body).toEqual({ timeUs: 7 });
  });
});

describe("FrameDecoder lend mode (reused buffers)", () => {
  test("yields the same frames as the default for random chunkings, and assembles them in at most three buffers", () => {
    const samples = everyKindSamples(checksum);
    const stream = concatBytes(samples.map(encodeSample));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 60 }), fc.boolean(), (sizes, copyFrames) => {
        const lending = new FrameDecoder({ copyFrames });
        lending.lendFrames();
        const plain = new FrameDecoder();
        const buffers = new Set<ArrayBufferLike>();
        let atBytes = 0;
        let sizeIndex = 0;
        while (atBytes < stream.length) {
          const piece = stream.subarray(atBytes, Math.min(stream.length, atBytes + sizes[sizeIndex++ % sizes.length]));
          atBytes += piece.length;
          lending.push(piece);
          plain.push(piece);
          for (const frame of lending) {
            const expected = plain.nextFrame();
            expect(frame.kind).toBe(expected?.kind);
            // Compared now: a lent frame is valid only until the next push.
            expect(firstDifference(frame.body, expected!.body)).toBe(-1);
            expect(firstDifference(frame.payload, expected!.payload)).toBe(-1);
            if (frame.body.buffer !== piece.buffer) buffers.add(frame.body.buffer);
          }
          expect(plain.nextFrame()).toBeUndefined();
        }
        // Two for frames that span chunks, used in turn, and one for copied complete frames
        // (each may be replaced once by a larger one as frames grow).
        expect(buffers.size).toBeLessThanOrEqual(6);
      }),
      { seed: 31, numRuns: 100 },
    );
  });

  test("makes its buffers with the allocator it is given: payloads the appliance checks are hashed in place", () => {
    const payload = new Uint8Array(100_000).map((_, index) => index * 7);
    const stream = concatBytes([...encodeFrame(messageKinds.write, { any: "body" }, payload), ...encodeFrame(messageKinds.ping, { timeUs: 1 })]);
    for (const copyFrames of [false, true]) {
      const allocated = new Set<ArrayBufferLike>();
      const decoder = new FrameDecoder({ copyFrames });
      decoder.lendFrames((lengthBytes) => {
        const bytes = checksum.allocate(lengthBytes);
        allocated.add(bytes.buffer);
        return bytes;
      });
      const seen: Frame[] = [];
      for (let atBytes = 0; atBytes < stream.length; atBytes += 65_536) {
        decoder.push(stream.slice(atBytes, atBytes + 65_536));
        for (const frame of decoder) {
          seen.push(frame);
          if (frame.kind === messageKinds.write) {
            expect(allocated.has(frame.payload.buffer)).toBe(true); // it spanned chunks
            expect(checksum.hash64(frame.payload)).toBe(checksum.hash64(payload));
          }
        }
      }
      expect(seen.map((frame) => frame.kind)).toEqual([messageKinds.write, messageKinds.ping]);
      // The PING arrived whole in the last chunk: copied into an allocated buffer only with copyFrames.
      expect(allocated.has(seen[1].body.buffer)).toBe(copyFrames);
    }
  });

  test("reads a chunk lent until the next push in place: whole frames, and a payload after its body", () => {
    const payload = new Uint8Array(5000).map((_, index) => index * 3);
    const [headerAndBody, payloadChunk] = encodeFrame(messageKinds.write, { any: "body" }, payload);
    const [ping] = encodeFrame(messageKinds.ping, { timeUs: 1 });
    for (const lend of [true, false]) {
      const decoder = new FrameDecoder({ copyFrames: true });
      if (lend) decoder.lendFrames();
      decoder.push(ping, true); // a whole frame in a lent chunk
      const pinged = decoder.nextFrame()!;
      expect(pinged.body.buffer === ping.buffer).toBe(lend); // not lending: copied as ever
      decoder.push(headerAndBody, true);
      expect(decoder.nextFrame()).toBeUndefined();
      decoder.push(payloadChunk, true);
      const written = decoder.nextFrame()!;
      expect(written.payload.buffer === payloadChunk.buffer).toBe(lend);
      expect(written.payload).toEqual(payload);
      expect(decodeCbor(written.body)).toEqual({ any: "body" });
      // A payload split over two lent chunks is assembled (copied), as a plain chunk's is.
      decoder.push(headerAndBody, true);
      decoder.push(payloadChunk.subarray(0, 100), true);
      expect(decoder.nextFrame()).toBeUndefined();
      decoder.push(payloadChunk.subarray(100), true);
      const assembled = decoder.nextFrame()!;
      expect(assembled.payload.buffer).not.toBe(payloadChunk.buffer);
      expect(assembled.payload).toEqual(payload);
    }
  });

  test("a frame completed in a push and the one started at its end use different buffers", () => {
    const ping = rawFrame(checksum, messageKinds.ping, { timeUs: 1 });
    const decoder = new FrameDecoder();
    decoder.lendFrames();
    const stream = concatBytes([ping, ping, ping, ping]);
    const pieceBytes = ping.length + 3; // every push completes one frame and starts the next
    let previous: Uint8Array | null = null;
    for (let atBytes = 0; atBytes < stream.length; atBytes += pieceBytes) {
      decoder.push(stream.subarray(atBytes, atBytes + pieceBytes));
      for (const frame of decoder) {
        expect(decodeMessage(frame).body).toEqual({ timeUs: 1 });
        if (previous !== null) expect(previous.buffer).not.toBe(frame.body.buffer);
        previous = frame.body;
      }
    }
  });
});
