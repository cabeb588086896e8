/**
 * Proves the WriteBatchEncoder (the switch link's WRITE frames, built in one reused buffer)
 * writes what the decoder reads back exactly: the volume name (ASCII and multi-byte UTF-8, at
 * every CBOR text-head width), every entry's fields including u64 extremes, and the payload
 * length; the frame decodes the same when split at every byte; a batch built after a larger
 * one in the same buffer carries no stale bytes; its frames are byte for byte what
 * `encodeMessage` accepts as valid (fast-check over random batches); and misuse (a full batch,
 * an empty finish) fails an assertion.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { AssertionError } from "../../src/core/assert.ts";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { FrameDecoder } from "../../src/wire/frame.ts";
import {
  decodeMessage,
  type Message,
  messageKinds,
  messageProblem,
  type WriteBody,
  type WriteEntry,
  WriteEntries,
} from "../../src/wire/messages.ts";
import { WriteBatchEncoder } from "../../src/wire/write_batch.ts";
import { concatBytes, writeArbitrary } from "./wire_support.ts";

let checksum: Checksum;

beforeAll(async () => {
  checksum = await createChecksum();
});

function entriesOf(count: number, lengthBytes = 512): WriteEntry[] {
  return Array.from({ length: count }, (_, index) => ({
    seq: 1000 + index,
    timeUs: 1_795_000_000_000_000 + index,
    offsetBytes: index * lengthBytes,
    lengthBytes,
    checksum: BigInt(index) * 0x0123_4567_89ab_cdefn % 2n ** 64n,
  }));
}

function encodeBatch(encoder: WriteBatchEncoder, volume: string, entries: readonly WriteEntry[]): Uint8Array {
  encoder.begin(volume);
  for (const entry of entries) encoder.add(entry);
  const payload = new Uint8Array(encoder.payloadBytes).fill(0x5a);
  return concatBytes([encoder.finish(), payload]);
}

function decodeAll(pieces: readonly Uint8Array[]): Message[] {
  const decoder = new FrameDecoder();
  const messages: Message[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    for (const frame of decoder) messages.push(decodeMessage(frame));
  }
  return messages;
}

function writeOf(message: Message | undefined): { body: WriteBody; entries: WriteEntry[]; payloadBytes: number } {
  expect(message?.kind).toBe(messageKinds.write);
  const body = message!.body as WriteBody;
  const entries = new WriteEntries(body.entries);
  return {
    body,
    entries: Array.from({ length: entries.count }, (_, index) => entries.entry(index)),
    payloadBytes: message!.payload.length,
  };
}

describe("WriteBatchEncoder", () => {
  test.each([
    ["db", "a short name"],
    ["v".repeat(23), "the longest one-byte text head"],
    ["v".repeat(24), "a two-byte text head"],
    ["é".repeat(100), "multi-byte UTF-8, a two-byte head"],
    ["ü".repeat(128), "256 UTF-8 bytes, a three-byte head"],
    ["日".repeat(128), "the longest name in UTF-8 bytes"],
  ])("reads back volume %j (%s) and every entry", (volume) => {
    const entries = entriesOf(3, 4096);
    const [message] = decodeAll([encodeBatch(new WriteBatchEncoder(), volume, entries)]);
    const write = writeOf(message);
    expect(write.body.volume).toBe(volume);
    expect(write.entries).toEqual(entries);
    expect(write.payloadBytes).toBe(3 * 4096);
  });

  test("carries u64 extremes: seqs and times up to 2^53 - 1, offsets up to the largest volume, any checksum", () => {
    const entries: WriteEntry[] = [
      { seq: Number.MAX_SAFE_INTEGER - 1, timeUs: 0, offsetBytes: 0, lengthBytes: 512, checksum: 0n },
      { seq: Number.MAX_SAFE_INTEGER, timeUs: Number.MAX_SAFE_INTEGER, offsetBytes: 2 ** 50 - 512, lengthBytes: 512, checksum: 2n ** 64n - 1n },
    ];
    expect(writeOf(decodeAll([encodeBatch(new WriteBatchEncoder(), "db", entries)])[0]).entries).toEqual(entries);
  });

  test("decodes the same when the frame is split at every byte", () => {
    const entries = entriesOf(2);
    const bytes = encodeBatch(new WriteBatchEncoder(), "vol-é", entries);
    for (let splitBytes = 1; splitBytes < bytes.length; splitBytes++) {
      const messages = decodeAll([bytes.subarray(0, splitBytes), bytes.subarray(splitBytes)]);
      expect(messages.length).toBe(1);
      expect(writeOf(messages[0]).entries).toEqual(entries);
    }
  });

  test("a batch after a larger one in the same buffer carries nothing of it", () => {
    const encoder = new WriteBatchEncoder();
    decodeAll([encodeBatch(encoder, "日".repeat(128), entriesOf(50))]);
    const small = entriesOf(1);
    const write = writeOf(decodeAll([encodeBatch(encoder, "a", small)])[0]);
    expect(write.body.volume).toBe("a");
    expect(write.entries).toEqual(small);
    expect(write.body.entries.length).toBe(40);
  });

  test("its frames are valid messages with the same body as a packed one, for random batches", () => {
    const encoder = new WriteBatchEncoder();
    fc.assert(
      fc.property(writeArbitrary(checksum, 20), (sample) => {
        const body = sample.body as WriteBody;
        const entries = new WriteEntries(body.entries);
        encoder.begin(body.volume);
        for (let index = 0; index < entries.count; index++) encoder.add(entries.entry(index));
        const [message] = decodeAll([encoder.finish(), sample.payload]);
        expect(messageProblem(messageKinds.write, message.body, message.payload.length)).toBeNull();
        const decoded = message.body as WriteBody;
        expect(decoded.volume).toBe(body.volume);
        expect([...decoded.entries]).toEqual([...body.entries]);
      }),
      { seed: 1201, numRuns: 200 },
    );
  });

  test("a full batch takes no more entries, and a batch without entries cannot finish", () => {
    const encoder = new WriteBatchEncoder({ entriesMax: 2 });
    encoder.begin("db");
    expect(() => encoder.finish()).toThrow(AssertionError);
    encoder.begin("db");
    const [first, second] = entriesOf(2);
    encoder.add(first);
    encoder.add(second);
    expect(encoder.isFull).toBe(true);
    expect(() => encoder.add(first)).toThrow(AssertionError);
    expect(() => new WriteBatchEncoder({ entriesMax: 4097 })).toThrow(RangeError);
  });
});
