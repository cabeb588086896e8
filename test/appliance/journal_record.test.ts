// Proves the journal record header codec: every valid header survives an encode/decode round
// trip at any aligned offset (fast-check), and decoding rejects with a SyntaxError every
// single-byte mutation of an encoded header (all 255 other values at each of its 56 bytes),
// every truncation, and well-sealed headers whose fields break a rule.
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { limits } from "../../src/core/limits.ts";
import {
  createJournalRecordHeader,
  JournalRecordCodec,
  journalRecordBytes,
  type JournalRecordHeader,
  journalRecordHeaderBytes,
  type JournalRecordKind,
  journalRecordKindName,
  journalRecordKinds,
  journalSegmentEndKind,
} from "../../src/appliance/journal_record.ts";

let checksum: Checksum;
let codec: JournalRecordCodec;

beforeAll(async () => {
  checksum = await createChecksum();
  codec = new JournalRecordCodec(checksum);
});

const markerKinds = Object.values(journalRecordKinds).filter(
  (kind) => kind !== journalRecordKinds.write && kind !== journalRecordKinds.baseline,
) as JournalRecordKind[];

const headerArbitrary: fc.Arbitrary<JournalRecordHeader> = fc.oneof(
  fc.record({
    kind: fc.constant(journalRecordKinds.write as JournalRecordKind),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    timeUs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    offsetBytes: fc.integer({ min: 0, max: 2 ** 30 }).map((sectors) => sectors * 512),
    payloadLengthBytes: fc.integer({ min: 1, max: limits.writeBytesMax / 512 }).map((sectors) => sectors * 512),
    payloadChecksum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    durableAddressBytes: fc.integer({ min: 0, max: 2 ** 50 }).map((units) => units * 8),
  }),
  fc.record({
    kind: fc.constant(journalRecordKinds.baseline as JournalRecordKind),
    seq: fc.constant(0),
    timeUs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    offsetBytes: fc.integer({ min: 0, max: 2 ** 30 }).map((sectors) => sectors * 512),
    payloadLengthBytes: fc.integer({ min: 1, max: limits.writeBytesMax / 512 }).map((sectors) => sectors * 512),
    payloadChecksum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    durableAddressBytes: fc.integer({ min: 0, max: 2 ** 50 }).map((units) => units * 8),
  }),
  fc.record({
    kind: fc.constantFrom(...markerKinds),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    timeUs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    offsetBytes: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    payloadLengthBytes: fc.integer({ min: 0, max: limits.markerPayloadBytesMax }),
    payloadChecksum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    durableAddressBytes: fc.integer({ min: 0, max: 2 ** 50 }).map((units) => units * 8),
  }),
);

function sampleHeader(): JournalRecordHeader {
  return {
    kind: journalRecordKinds.write,
    seq: 1041,
    timeUs: 1_790_000_000_123_456,
    offsetBytes: 81920,
    payloadLengthBytes: 4096,
    payloadChecksum: 0x0123_4567_89ab_cdefn,
    durableAddressBytes: 65536,
  };
}

/** Rewrites the header checksum so a test can forge a well-sealed header with bad fields. */
function reseal(bytes: Uint8Array): void {
  const checksumValue = checksum.hash32(bytes.subarray(0, 52));
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(52, checksumValue, true);
}

describe("journal record", () => {
  test("a record takes the header plus the payload rounded up to 8 bytes", () => {
    expect(journalRecordHeaderBytes).toBe(56);
    expect(journalRecordBytes(0)).toBe(56);
    expect(journalRecordBytes(1)).toBe(64);
    expect(journalRecordBytes(4096)).toBe(56 + 4096);
    expect(journalRecordBytes(13)).toBe(56 + 16);
  });

  test("every valid header survives encode and decode at any aligned offset", () => {
    fc.assert(
      fc.property(headerArbitrary, fc.integer({ min: 0, max: 16 }), (header, slot) => {
        const atBytes = slot * 8;
        const target = new Uint8Array(atBytes + journalRecordHeaderBytes + 8);
        codec.encodeHeader(header, target, atBytes);
        expect(codec.decodeHeader(target, atBytes)).toEqual(header);
        const reused = createJournalRecordHeader();
        expect(codec.tryDecodeHeader(target, atBytes, reused)).toBeNull();
        expect(reused).toEqual(header);
      }),
      { numRuns: 500, seed: 20261122 },
    );
  });

  test("the header layout is little-endian with the documented field offsets", () => {
    const target = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(sampleHeader(), target, 0);
    const view = new DataView(target.buffer);
    expect([...target.subarray(0, 4)]).toEqual([0x41, 0x4a, 0x52, 0x31]); // "AJR1"
    expect(view.getUint8(4)).toBe(1);
    expect(view.getUint8(5)).toBe(journalRecordKinds.write);
    expect(view.getUint16(6, true)).toBe(0);
    expect(view.getFloat64(8, true)).toBe(1041);
    expect(view.getFloat64(16, true)).toBe(1_790_000_000_123_456);
    expect(view.getFloat64(24, true)).toBe(81920);
    expect(view.getBigUint64(32, true)).toBe(0x0123_4567_89ab_cdefn);
    expect(view.getFloat64(40, true)).toBe(65536);
    expect(view.getUint32(48, true)).toBe(4096);
    expect(view.getUint32(52, true)).toBe(checksum.hash32(target.subarray(0, 52)));
  });

  test("decode rejects every single-byte mutation of a header with a SyntaxError", () => {
    const original = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(sampleHeader(), original, 0);
    const mutated = new Uint8Array(journalRecordHeaderBytes);
    const into = createJournalRecordHeader();
    let rejected = 0;
    for (let byteIndex = 0; byteIndex < journalRecordHeaderBytes; byteIndex++) {
      for (let value = 0; value < 256; value++) {
        if (value === original[byteIndex]) continue;
        mutated.set(original);
        mutated[byteIndex] = value;
        expect(codec.tryDecodeHeader(mutated, 0, into)).not.toBeNull();
        rejected++;
      }
    }
    expect(rejected).toBe(journalRecordHeaderBytes * 255);
    mutated.set(original);
    mutated[20] ^= 0x01;
    expect(() => codec.decodeHeader(mutated, 0)).toThrow(SyntaxError);
    expect(() => codec.decodeHeader(mutated, 0)).toThrow(/header checksum/);
  });

  test("decode rejects every truncation with a SyntaxError", () => {
    const original = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(sampleHeader(), original, 0);
    for (let lengthBytes = 0; lengthBytes < journalRecordHeaderBytes; lengthBytes++) {
      const truncated = original.slice(0, lengthBytes);
      expect(() => codec.decodeHeader(truncated, 0)).toThrow(SyntaxError);
      expect(() => codec.decodeHeader(truncated, 0)).toThrow(`${lengthBytes} bytes given, 56 needed`);
    }
    // A header that starts too close to the end of a larger buffer is truncated too.
    const shifted = new Uint8Array(journalRecordHeaderBytes + 8);
    shifted.set(original, 8);
    expect(() => codec.decodeHeader(shifted, 16)).toThrow(SyntaxError);
    expect(codec.decodeHeader(shifted, 8)).toEqual(sampleHeader());
  });

  test("decode rejects sealed headers whose fields break a rule", () => {
    const cases: { name: string; edit: (view: DataView) => void; message: RegExp }[] = [
      { name: "kind 0", edit: (view) => view.setUint8(5, 0), message: /kind 0 is not a record kind/ },
      { name: "kind 200", edit: (view) => view.setUint8(5, 200), message: /kind 200/ },
      { name: "flags", edit: (view) => view.setUint16(6, 4, true), message: /flags 0x4/ },
      { name: "version", edit: (view) => view.setUint8(4, 2), message: /version 2/ },
      { name: "fractional seq", edit: (view) => view.setFloat64(8, 1.5, true), message: /seq 1.5/ },
      { name: "write with seq 0", edit: (view) => view.setFloat64(8, 0, true), message: /seq 0/ },
      { name: "negative time", edit: (view) => view.setFloat64(16, -1, true), message: /time -1/ },
      { name: "unaligned offset", edit: (view) => view.setFloat64(24, 100, true), message: /offset 100/ },
      { name: "unaligned length", edit: (view) => view.setUint32(48, 1000, true), message: /payload length 1000/ },
      {
        name: "oversize payload",
        edit: (view) => view.setUint32(48, limits.writeBytesMax + 512, true),
        message: /payload length/,
      },
      { name: "unaligned durable address", edit: (view) => view.setFloat64(40, 12, true), message: /durable address 12/ },
      { name: "NaN durable address", edit: (view) => view.setFloat64(40, NaN, true), message: /durable address NaN/ },
    ];
    for (const { name, edit, message } of cases) {
      const bytes = new Uint8Array(journalRecordHeaderBytes);
      codec.encodeHeader(sampleHeader(), bytes, 0);
      edit(new DataView(bytes.buffer));
      reseal(bytes);
      expect(() => codec.decodeHeader(bytes, 0), name).toThrow(SyntaxError);
      expect(() => codec.decodeHeader(bytes, 0), name).toThrow(message);
    }
  });

  test("encoding invalid fields is a programmer error caught by an assertion", () => {
    const target = new Uint8Array(journalRecordHeaderBytes);
    expect(() => codec.encodeHeader({ ...sampleHeader(), payloadLengthBytes: 100 }, target, 0)).toThrow(
      /Cannot encode journal record header/,
    );
    expect(() => codec.encodeHeader(sampleHeader(), target, 8)).toThrow(/overruns/);
  });

  test("the journal's segment-end pad decodes with an empty payload and any seq", () => {
    const pad: JournalRecordHeader = {
      ...sampleHeader(),
      kind: journalSegmentEndKind,
      seq: 0,
      offsetBytes: 0,
      payloadLengthBytes: 0,
    };
    const bytes = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(pad, bytes, 0);
    expect(codec.decodeHeader(bytes, 0)).toEqual(pad);
    expect(journalRecordKindName(journalSegmentEndKind)).toBe("segmentEnd");
    new DataView(bytes.buffer).setUint32(48, 8, true);
    reseal(bytes);
    expect(() => codec.decodeHeader(bytes, 0)).toThrow(/payload length 8 is outside 0..0/);
  });

  test("setDurableAddress rewrites the field and keeps the header valid", () => {
    const bytes = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(sampleHeader(), bytes, 0);
    codec.setDurableAddress(bytes, 0, 1_048_576);
    expect(codec.decodeHeader(bytes, 0)).toEqual({ ...sampleHeader(), durableAddressBytes: 1_048_576 });
    expect(codec.payloadLengthAt(bytes, 0)).toBe(4096);
  });

  test("an unsealed header reads as invalid until stampDurableAddress seals it, even at the same address", () => {
    const bytes = new Uint8Array(journalRecordHeaderBytes).fill(0xee);
    codec.encodeHeaderUnsealed(sampleHeader(), bytes, 0);
    expect(() => codec.decodeHeader(bytes, 0)).toThrow(/header checksum/);
    codec.stampDurableAddress(bytes, 0, sampleHeader().durableAddressBytes);
    expect(codec.decodeHeader(bytes, 0)).toEqual(sampleHeader());
    const sealed = new Uint8Array(journalRecordHeaderBytes);
    codec.encodeHeader(sampleHeader(), sealed, 0);
    expect(bytes).toEqual(sealed);
  });
});
