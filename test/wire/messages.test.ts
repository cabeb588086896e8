// Proves message validation: for every kind, bodies that break one rule (type, integer range,
// safe integers, 512-byte alignment, the 4 MiB write limit, string and array lengths, unknown
// or missing fields, WRITE entry records of the wrong size, with a reserved word set or a u64
// past 2^53, a WRITE payload that disagrees with its entries, MARK details that are
// too deep or not JSON-like, SNAPSHOT_REQUEST names the appliance would not accept, a
// SNAPSHOT_REPLY with both or neither of seq and refused) are refused with ProtocolError
// "bad-body" naming the field, and the sender refuses to encode them (assertion); a HELLO of
// another protocol version is refused with "version" naming both versions; the checksum
// helpers agree with XXH64.
import { frameHeaderBytes } from "../../src/wire/frame.ts";
import { beforeAll, describe, expect, test } from "vitest";
import { AssertionError } from "../../src/core/assert.ts";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { FrameDecoder } from "../../src/wire/frame.ts";
import {
  decodeMessage,
  decodeRestoreExtents,
  encodeMessage,
  encodeRestoreExtents,
  hashChunkCount,
  type MessageKind,
  messageKinds,
  packWriteEntries,
  type WriteBody,
  writeChecksumProblem,
  WriteEntries,
  writeEntryBytes,
} from "../../src/wire/messages.ts";
import { wireLimits } from "../../src/core/limits.ts";
import { everyKindSamples, rawFrame, sampleData } from "./wire_support.ts";

let checksum: Checksum;

beforeAll(async () => {
  checksum = await createChecksum();
});

/** Decodes one raw frame, returning the error (or null when the message is valid). */
function decodeError(kind: number, body: unknown, payload: Uint8Array = new Uint8Array(0)): unknown {
  const decoder = new FrameDecoder();
  try {
    decoder.push(rawFrame(checksum, kind, body, payload));
    const frame = decoder.nextFrame();
    if (frame === undefined) return "no frame";
    decodeMessage(frame);
    return null;
  } catch (error) {
    return error;
  }
}

function bodyOf(index: number): Record<string, unknown> {
  return { ...(everyKindSamples(checksum)[index].body as unknown as Record<string, unknown>) };
}

/** Fields of a raw WRITE entry record; u64 fields may be bigints past 2^53. */
interface RawEntry {
  seq?: number | bigint;
  timeUs?: number | bigint;
  offsetBytes?: number | bigint;
  lengthBytes?: number;
  reserved?: number;
  checksum?: bigint;
}

/** Packs records as they go on the wire, whatever their values (the encoder would refuse bad ones). */
function rawEntries(...entries: RawEntry[]): Uint8Array {
  const bytes = new Uint8Array(entries.length * writeEntryBytes);
  const view = new DataView(bytes.buffer);
  entries.forEach((entry, index) => {
    const at = index * writeEntryBytes;
    view.setBigUint64(at, BigInt(entry.seq ?? 1), true);
    view.setBigUint64(at + 8, BigInt(entry.timeUs ?? 1_795_000_000_000_000), true);
    view.setBigUint64(at + 16, BigInt(entry.offsetBytes ?? 0), true);
    view.setUint32(at + 24, entry.lengthBytes ?? 512, true);
    view.setUint32(at + 28, entry.reserved ?? 0, true);
    view.setBigUint64(at + 32, entry.checksum ?? 0n, true);
  });
  return bytes;
}

interface Case {
  what: string;
  kind: MessageKind;
  body: () => unknown;
  payloadBytes?: number;
  /** A piece of the error message. */
  says: RegExp;
}

const cases: Case[] = [
  // WRITE, the hot path
  {
    what: "an entry offset not a multiple of 512",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ offsetBytes: 100 }) }),
    payloadBytes: 512,
    says: /entries\[0\]\.offsetBytes is 100/,
  },
  {
    what: "an entry length not a multiple of 512",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ lengthBytes: 1000 }) }),
    payloadBytes: 1000,
    says: /lengthBytes is 1000/,
  },
  {
    what: "an entry length of zero",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ lengthBytes: 0 }) }),
    payloadBytes: 0,
    says: /lengthBytes is 0/,
  },
  {
    what: "an entry length over 4 MiB",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ lengthBytes: 4 * 1024 * 1024 + 512 }) }),
    payloadBytes: 4 * 1024 * 1024 + 512,
    says: /lengthBytes is 4194816/,
  },
  {
    what: "a seq of 2^64 - 1 (a negative number's bits)",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ seq: 2n ** 64n - 1n }) }),
    payloadBytes: 512,
    says: /entries\[0\]\.seq is 18446744073709552000, not an integer/,
  },
  {
    what: "a seq of 2^53",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ seq: 2 ** 53 }) }),
    payloadBytes: 512,
    says: /seq is 9007199254740992/,
  },
  {
    what: "a time past 2^53",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ timeUs: 2n ** 60n }) }),
    payloadBytes: 512,
    says: /timeUs is 1152921504606847000/,
  },
  {
    what: "an offset past 2^53",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ offsetBytes: 2n ** 63n }) }),
    payloadBytes: 512,
    says: /offsetBytes is 9223372036854776000/,
  },
  {
    what: "a range past the largest volume",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({ offsetBytes: 2 ** 50 }) }),
    payloadBytes: 512,
    says: /past the largest volume|offsetBytes/,
  },
  {
    what: "a reserved word that is not 0",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({}, { seq: 2, reserved: 7 }) }),
    payloadBytes: 1024,
    says: /entries\[1\] has reserved word 7, not 0/,
  },
  {
    what: "entries one byte short of a record",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({}).subarray(0, writeEntryBytes - 1) }),
    payloadBytes: 512,
    says: /entries" is 39 bytes, not 1 to 4096 records of 40 bytes/,
  },
  {
    what: "entries one byte past a record",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: new Uint8Array(writeEntryBytes + 1) }),
    payloadBytes: 512,
    says: /entries" is 41 bytes/,
  },
  {
    what: "entries as an array of maps (protocol 1)",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: [{ seq: 1, timeUs: 1, offsetBytes: 0, lengthBytes: 512, checksum: new Uint8Array(8) }] }),
    payloadBytes: 512,
    says: /entries" is an array of 1, not 1 to 4096 records/,
  },
  {
    what: "entries as a string",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: "x".repeat(40) }),
    payloadBytes: 512,
    says: /entries" is "x{40}", not 1 to 4096 records/,
  },
  {
    what: "no entries",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: new Uint8Array(0) }),
    says: /entries" is 0 bytes/,
  },
  {
    what: "more than 4096 entries",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries(...Array.from({ length: 4097 }, (_, index) => ({ seq: index + 1 }))) }),
    payloadBytes: 4097 * 512,
    says: /163880 bytes, not 1 to 4096 records/,
  },
  {
    what: "an empty volume name",
    kind: messageKinds.write,
    body: () => ({ volume: "", entries: rawEntries({}) }),
    payloadBytes: 512,
    says: /volume" is ""/,
  },
  {
    what: "a volume name over 128 characters",
    kind: messageKinds.write,
    body: () => ({ volume: "v".repeat(129), entries: rawEntries({}) }),
    payloadBytes: 512,
    says: /not a string of 1 to 128/,
  },
  {
    what: "a payload shorter than the entries",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({}, { seq: 2 }) }),
    payloadBytes: 512,
    says: /1024 bytes of data, the payload 512/,
  },
  {
    what: "a payload longer than the entries",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({}) }),
    payloadBytes: 1024,
    says: /512 bytes of data, the payload 1024/,
  },
  {
    what: "a body that is an array",
    kind: messageKinds.write,
    body: () => [rawEntries({})],
    payloadBytes: 512,
    says: /not a map/,
  },
  {
    what: "a body with an unknown field",
    kind: messageKinds.write,
    body: () => ({ volume: "db", entries: rawEntries({}), more: true }),
    payloadBytes: 512,
    says: /unknown fields "more"/,
  },
  {
    what: "a body without entries",
    kind: messageKinds.write,
    body: () => ({ volume: "db" }),
    payloadBytes: 512,
    says: /lacks a field/,
  },
  // Handshake
  {
    what: "a HELLO from another role",
    kind: messageKinds.hello,
    body: () => ({ ...bodyOf(0), role: "appliance" }),
    says: /role" is "appliance"/,
  },
  {
    what: "a HELLO with a short nonce",
    kind: messageKinds.hello,
    body: () => ({ ...bodyOf(0), nonce: new Uint8Array(31) }),
    says: /nonce" is 31 bytes/,
  },
  {
    what: "a HELLO with an empty switch id",
    kind: messageKinds.hello,
    body: () => ({ ...bodyOf(0), switchId: "" }),
    says: /switchId/,
  },
  {
    what: "a HELLO with a protocol that is not a number",
    kind: messageKinds.hello,
    body: () => ({ ...bodyOf(0), protocol: "1" }),
    says: /protocol" is "1"/,
  },
  {
    what: "a CHALLENGE with a long proof",
    kind: messageKinds.challenge,
    body: () => ({ ...bodyOf(1), proof: new Uint8Array(33) }),
    says: /proof" is 33 bytes/,
  },
  {
    what: "a PROOF with a region size that is no power of two",
    kind: messageKinds.proof,
    body: () => ({ ...bodyOf(2), volumes: [{ name: "db", sizeBytes: 2 ** 30, regionBytes: 3 * 2 ** 20 }] }),
    says: /regionBytes is 3145728, not a power of two/,
  },
  {
    what: "a PROOF with a size not in sectors",
    kind: messageKinds.proof,
    body: () => ({ ...bodyOf(2), volumes: [{ name: "db", sizeBytes: 1000, regionBytes: 2 ** 20 }] }),
    says: /sizeBytes is 1000/,
  },
  {
    what: "a PROOF naming a volume twice",
    kind: messageKinds.proof,
    body: () => ({
      ...bodyOf(2),
      volumes: [{ name: "db", sizeBytes: 512, regionBytes: 512 }, { name: "db", sizeBytes: 512, regionBytes: 512 }],
    }),
    says: /repeats volume name "db"/,
  },
  {
    what: "a PROOF with too many volumes",
    kind: messageKinds.proof,
    body: () => ({
      ...bodyOf(2),
      volumes: Array.from({ length: 1025 }, (_, i) => ({ name: `v${i}`, sizeBytes: 512, regionBytes: 512 })),
    }),
    says: /at most 1024/,
  },
  {
    what: "a WELCOME with a durable seq below -1",
    kind: messageKinds.welcome,
    body: () => ({ volumes: [{ name: "db", durableSeq: -2 }] }),
    says: /durableSeq is -2/,
  },
  // MARK
  {
    what: "a MARK of an unknown kind",
    kind: messageKinds.mark,
    body: () => ({ ...bodyOf(5), kind: "checkpoint" }),
    says: /kind" is "checkpoint", not one of snapshot/,
  },
  {
    what: "a MARK detail that is not a map",
    kind: messageKinds.mark,
    body: () => ({ ...bodyOf(5), detail: [1] }),
    says: /detail" is an array/,
  },
  {
    what: "a MARK detail holding bytes",
    kind: messageKinds.mark,
    body: () => ({ ...bodyOf(5), detail: { blob: new Uint8Array(4) } }),
    says: /detail\.blob is 4 bytes, not a JSON-like value/,
  },
  {
    what: "a MARK detail nested too deep",
    kind: messageKinds.mark,
    body: () => ({ ...bodyOf(5), detail: { a: [[[[[[[[[1]]]]]]]]] } }),
    says: /nested deeper than 8/,
  },
  {
    what: "a MARK detail with too many values",
    kind: messageKinds.mark,
    body: () => ({ ...bodyOf(5), detail: { list: Array.from({ length: 1100 }, () => 1) } }),
    says: /more than 1024 values/,
  },
  // Requests and replies
  {
    what: "an ACK with a negative seq",
    kind: messageKinds.ack,
    body: () => ({ volume: "db", durableSeq: -1 }),
    says: /durableSeq" is -1/,
  },
  {
    what: "a HASH_REQUEST for too many chunks",
    kind: messageKinds.hashRequest,
    body: () => ({ ...bodyOf(7), lengthBytes: 2 ** 30, chunkBytes: 512 }),
    says: /2097152 hashes, over the limit of 65536/,
  },
  {
    what: "a HASH_REQUEST with a chunk not in sectors",
    kind: messageKinds.hashRequest,
    body: () => ({ ...bodyOf(7), chunkBytes: 4000 }),
    says: /chunkBytes" is 4000/,
  },
  {
    what: "a HASH_REPLY whose hashes are not whole",
    kind: messageKinds.hashReply,
    body: () => ({ requestId: 1, hashes: new Uint8Array(12) }),
    says: /hashes" is 12 bytes/,
  },
  {
    what: "a READ_REQUEST over the read limit",
    kind: messageKinds.readRequest,
    body: () => ({ ...bodyOf(9), lengthBytes: 8 * 1024 * 1024 }),
    says: /lengthBytes" is 8388608/,
  },
  {
    what: "a FETCH with a negative request id",
    kind: messageKinds.fetch,
    body: () => ({ ...bodyOf(11), requestId: -1 }),
    says: /requestId" is -1/,
  },
  {
    what: "a READ_REPLY payload not in sectors",
    kind: messageKinds.readReply,
    body: () => ({ requestId: 1 }),
    payloadBytes: 100,
    says: /100-byte payload is not whole sectors/,
  },
  {
    what: "a READ_REPLY error with data",
    kind: messageKinds.readReply,
    body: () => ({ requestId: 1, error: "Cannot read" }),
    payloadBytes: 512,
    says: /payload/,
  },
  {
    what: "a HASH_REQUEST with a fractional atSeq",
    kind: messageKinds.hashRequest,
    body: () => ({ requestId: 1, volume: "db", offsetBytes: 0, lengthBytes: 4096, chunkBytes: 4096, atSeq: 1.5 }),
    says: /atSeq" is 1\.5/,
  },
  {
    what: "a READ_REPLY with an empty error",
    kind: messageKinds.readReply,
    body: () => ({ requestId: 1, error: "" }),
    says: /error" is ""/,
  },
  {
    what: "a PING with a fractional time",
    kind: messageKinds.ping,
    body: () => ({ timeUs: 0.5 }),
    says: /timeUs" is 0\.5/,
  },
  {
    what: "an ERROR with an empty code",
    kind: messageKinds.error,
    body: () => ({ code: "", message: "x" }),
    says: /code" is ""/,
  },
  {
    what: "an ERROR with a long message",
    kind: messageKinds.error,
    body: () => ({ code: "x", message: "m".repeat(1025) }),
    says: /message" is/,
  },
  { what: "a BYE without a reason", kind: messageKinds.bye, body: () => ({}), says: /reason" is undefined/ },
  // SNAPSHOT_REQUEST and SNAPSHOT_REPLY
  {
    what: "a SNAPSHOT_REQUEST with an empty name",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), name: "" }),
    says: /name" is "", not a string of 1 to 200/,
  },
  {
    what: "a SNAPSHOT_REQUEST with a name over 200 characters",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), name: "n".repeat(201) }),
    says: /name" is "n+\.\.\.", not a string of 1 to 200/,
  },
  {
    what: "a SNAPSHOT_REQUEST with a name starting with '-'",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), name: "-rf" }),
    says: /name" is "-rf", not letters, digits/,
  },
  {
    what: "a SNAPSHOT_REQUEST with a name holding a slash",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), name: "a/b" }),
    says: /name" is "a\/b", not letters, digits/,
  },
  {
    what: "a SNAPSHOT_REQUEST with a name that is not a string",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), name: 7 }),
    says: /name" is 7/,
  },
  {
    what: "a SNAPSHOT_REQUEST whose remove is not a boolean",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(17), remove: 1 }),
    says: /remove" is 1, not a boolean/,
  },
  {
    what: "a SNAPSHOT_REQUEST without a volume",
    kind: messageKinds.snapshotRequest,
    body: () => ({ requestId: 1, name: "x" }),
    says: /volume" is undefined/,
  },
  {
    what: "a SNAPSHOT_REQUEST with an unknown field",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), at: "now" }),
    says: /unknown fields "at"/,
  },
  {
    what: "a SNAPSHOT_REQUEST with a fractional request id",
    kind: messageKinds.snapshotRequest,
    body: () => ({ ...bodyOf(16), requestId: 1.5 }),
    says: /requestId" is 1\.5/,
  },
  {
    what: "a SNAPSHOT_REPLY with both a seq and a refusal",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, seq: 4, refused: "no" }),
    says: /both field "seq" and field "refused"/,
  },
  {
    what: "a SNAPSHOT_REPLY with neither a seq nor a refusal",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1 }),
    says: /neither field "seq" nor field "refused"/,
  },
  {
    what: "a SNAPSHOT_REPLY with seq 0",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, seq: 0 }),
    says: /seq" is 0, not an integer from 1/,
  },
  {
    what: "a SNAPSHOT_REPLY with a seq beyond 2^53",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, seq: 2 ** 53 }),
    says: /seq" is 9007199254740992/,
  },
  {
    what: "a SNAPSHOT_REPLY with an empty refusal",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, refused: "" }),
    says: /refused" is "", not a string of 1 to 1024/,
  },
  {
    what: "a SNAPSHOT_REPLY with a refusal over 1024 characters",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, refused: "r".repeat(1025) }),
    says: /refused" is/,
  },
  {
    what: "a SNAPSHOT_REPLY with a refusal that is not a string",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, refused: true }),
    says: /refused" is true/,
  },
  {
    what: "a SNAPSHOT_REPLY with an unknown field",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: 1, seq: 3, timeUs: 5 }),
    says: /unknown fields "timeUs"/,
  },
  {
    what: "a SNAPSHOT_REPLY with a negative request id",
    kind: messageKinds.snapshotReply,
    body: () => ({ requestId: -1, seq: 3 }),
    says: /requestId" is -1/,
  },
  // READ_REQUEST's atSeq, and the RESTORE_* kinds
  {
    what: "a READ_REQUEST with a negative atSeq",
    kind: messageKinds.readRequest,
    body: () => ({ ...bodyOf(28), atSeq: -1 }),
    says: /atSeq" is -1/,
  },
  {
    what: "a READ_REQUEST with a fractional atSeq",
    kind: messageKinds.readRequest,
    body: () => ({ ...bodyOf(28), atSeq: 2.5 }),
    says: /atSeq" is 2\.5/,
  },
  {
    what: "a RESTORE_REQUEST whose instant is not a boolean",
    kind: messageKinds.restoreRequest,
    body: () => ({ ...bodyOf(20), instant: "yes" }),
    says: /instant" is "yes", not a boolean/,
  },
  {
    what: "a RESTORE_REQUEST without full",
    kind: messageKinds.restoreRequest,
    body: () => ({ ...bodyOf(20), full: undefined }),
    says: /full" is undefined, not a boolean/,
  },
  {
    what: "a RESTORE_REQUEST with a seq beyond 2^53",
    kind: messageKinds.restoreRequest,
    body: () => ({ ...bodyOf(20), toSeq: 2 ** 53 }),
    says: /toSeq" is 9007199254740992/,
  },
  {
    what: "a RESTORE_REQUEST with a point in text",
    kind: messageKinds.restoreRequest,
    body: () => ({ ...bodyOf(20), at: "snap:good" }),
    says: /unknown fields "at"/,
  },
  {
    what: "a RESTORE_REQUEST without a volume",
    kind: messageKinds.restoreRequest,
    body: () => ({ ...bodyOf(20), volume: undefined }),
    says: /volume" is undefined/,
  },
  {
    what: "a RESTORE_PLAN_REQUEST with a negative head",
    kind: messageKinds.restorePlanRequest,
    body: () => ({ requestId: 1, headSeq: -1 }),
    says: /headSeq" is -1/,
  },
  {
    what: "a RESTORE_PLAN whose extents are not whole",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: new Uint8Array(20), last: true }),
    says: /extents" is 20 bytes, not a multiple of 16/,
  },
  {
    what: "a RESTORE_PLAN with more extents than a frame carries",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: new Uint8Array((wireLimits.restorePlanExtentsPerFrameMax + 1) * 16), last: true }),
    says: /not a multiple of 16 bytes up to 524288/,
  },
  {
    what: "a RESTORE_PLAN with an empty extent",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: encodeRestoreExtents([{ offsetBytes: 0, lengthBytes: 0 }]), last: true }),
    says: /extents\[0\]\.lengthBytes" is 0|extents\[0\]\.lengthBytes is 0/,
  },
  {
    what: "a RESTORE_PLAN with an extent not in sectors",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: encodeRestoreExtents([{ offsetBytes: 100, lengthBytes: 512 }]), last: true }),
    says: /extents\[0\]\.offsetBytes is 100/,
  },
  {
    what: "a RESTORE_PLAN with overlapping extents",
    kind: messageKinds.restorePlan,
    body: () => ({
      requestId: 1,
      extents: encodeRestoreExtents([{ offsetBytes: 0, lengthBytes: 4096 }, { offsetBytes: 2048, lengthBytes: 512 }]),
      last: false,
    }),
    says: /extents\[1\] starts at byte 2048, before the previous extent ends \(4096\)/,
  },
  {
    what: "a RESTORE_PLAN with an extent past the largest volume",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: encodeRestoreExtents([{ offsetBytes: 2 ** 50, lengthBytes: 512 }]), last: true }),
    says: /extents\[0\] ends at byte/,
  },
  {
    what: "a RESTORE_PLAN without last",
    kind: messageKinds.restorePlan,
    body: () => ({ requestId: 1, extents: new Uint8Array(0) }),
    says: /last" is undefined, not a boolean/,
  },
  {
    what: "a RESTORE_STARTED with marker seq 0",
    kind: messageKinds.restoreStarted,
    body: () => ({ ...bodyOf(23), markerSeq: 0 }),
    says: /markerSeq" is 0, not an integer from 1/,
  },
  {
    what: "a RESTORE_STARTED with a negative total",
    kind: messageKinds.restoreStarted,
    body: () => ({ ...bodyOf(23), bytesTotal: -512 }),
    says: /bytesTotal" is -512/,
  },
  {
    what: "a RESTORE_REFUSED with an empty reason",
    kind: messageKinds.restoreRefused,
    body: () => ({ requestId: 1, refused: "" }),
    says: /refused" is "", not a string of 1 to 1024/,
  },
  {
    what: "a RESTORE_REFUSED with a reason over 1024 characters",
    kind: messageKinds.restoreRefused,
    body: () => ({ requestId: 1, refused: "r".repeat(1025) }),
    says: /refused" is/,
  },
  {
    what: "a RESTORE_PROGRESS with an unknown state",
    kind: messageKinds.restoreProgress,
    body: () => ({ ...bodyOf(25), state: "paused" }),
    says: /state" is "paused", not one of running, done, failed, cancelled/,
  },
  {
    what: "a RESTORE_PROGRESS with a message while running",
    kind: messageKinds.restoreProgress,
    body: () => ({ ...bodyOf(25), message: "fine" }),
    says: /message" is given for state "running"/,
  },
  {
    what: "a RESTORE_PROGRESS with an empty failure message",
    kind: messageKinds.restoreProgress,
    body: () => ({ ...bodyOf(26), message: "" }),
    says: /message" is "", not a string of 1 to 1024/,
  },
  {
    what: "a RESTORE_PROGRESS with fractional bytes",
    kind: messageKinds.restoreProgress,
    body: () => ({ ...bodyOf(25), bytesMoved: 1.5 }),
    says: /bytesMoved" is 1\.5/,
  },
  {
    what: "a RESTORE_CANCEL with an unknown field",
    kind: messageKinds.restoreCancel,
    body: () => ({ requestId: 1, force: true }),
    says: /unknown fields "force"/,
  },
];

describe("invalid bodies", () => {
  for (const item of cases) {
    test(`${item.what} is refused with bad-body`, () => {
      const payload = new Uint8Array(item.payloadBytes ?? 0);
      const error = decodeError(item.kind, item.body(), payload);
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).code).toBe("bad-body");
      expect((error as Error).message).toMatch(item.says);
      expect(() => encodeMessage(item.kind, item.body() as never, payload)).toThrow(AssertionError);
    });
  }

  test("every valid sample passes the same checks", () => {
    for (const sample of everyKindSamples(checksum)) {
      expect(decodeError(sample.kind, sample.body, sample.payload)).toBeNull();
    }
  });

  test("a full WRITE batch of 4096 maximal entries fits the body limit and reads back field by field", () => {
    const entries = Array.from({ length: wireLimits.writeEntriesMax }, (_, index) => ({
      seq: Number.MAX_SAFE_INTEGER - wireLimits.writeEntriesMax + index + 1,
      timeUs: Number.MAX_SAFE_INTEGER,
      offsetBytes: 2 ** 50 - 4 * 1024 * 1024,
      lengthBytes: 512,
      checksum: 2n ** 64n - 1n - BigInt(index),
    }));
    const body: WriteBody = { volume: "v".repeat(wireLimits.volumeNameLengthMax), entries: packWriteEntries(entries) };
    const [frame] = encodeMessage(messageKinds.write, body, new Uint8Array(512 * wireLimits.writeEntriesMax));
    expect(frame.length - frameHeaderBytes).toBeLessThanOrEqual(
      wireLimits.writeEntriesMax * wireLimits.writeEntryBytes + wireLimits.volumeNameLengthMax + 32,
    );
    const read = new WriteEntries(body.entries);
    expect(read.count).toBe(wireLimits.writeEntriesMax);
    for (const index of [0, 1, 4095]) expect(read.entry(index)).toEqual(entries[index]);
  });
});

describe("restore plan extents", () => {
  test("pack as little-endian u64 pairs and unpack to the same extents, up to 2^50", () => {
    const extents = [{ offsetBytes: 0, lengthBytes: 512 }, { offsetBytes: 2 ** 49, lengthBytes: 2 ** 49 - 512 }];
    const bytes = encodeRestoreExtents(extents);
    expect(bytes.length).toBe(32);
    expect([...bytes.subarray(8, 16)]).toEqual([0, 2, 0, 0, 0, 0, 0, 0]);
    expect(decodeRestoreExtents(bytes)).toEqual(extents);
  });
});

describe("protocol version", () => {
  test('a HELLO of another protocol version is refused with "version" naming both versions', () => {
    for (const protocol of [0, 1, 3, 77]) {
      const error = decodeError(messageKinds.hello, { protocol, role: "switch", future: "fields" });
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).code).toBe("version");
      expect((error as Error).message).toBe(
        `The peer speaks protocol version ${protocol}; this side speaks version 2`,
      );
    }
  });
});

describe("checksums", () => {
  test("an entry's checksum is its XXH64, little-endian in the record's last 8 bytes", () => {
    const data = sampleData(4096, 3);
    const hash = checksum.hash64(data);
    const bytes = packWriteEntries([{ seq: 1, timeUs: 2, offsetBytes: 512, lengthBytes: 4096, checksum: hash }]);
    expect(bytes.length).toBe(writeEntryBytes);
    expect(bytes[32]).toBe(Number(hash & 0xffn));
    expect(new WriteEntries(bytes).checksum(0)).toBe(hash);
  });

  test("writeChecksumProblem finds the entry whose data does not match", () => {
    const write = everyKindSamples(checksum)[4];
    const body = write.body as WriteBody;
    expect(writeChecksumProblem(checksum, body, write.payload)).toBeNull();
    const corrupted = write.payload.slice();
    corrupted[700] ^= 1;
    expect(writeChecksumProblem(checksum, body, corrupted)).toMatch(/^entry 1 \(seq 2\) has checksum/);
  });

  test("hashChunkCount rounds the last short chunk up", () => {
    expect(hashChunkCount({ lengthBytes: 4096, chunkBytes: 1024 })).toBe(4);
    expect(hashChunkCount({ lengthBytes: 4608, chunkBytes: 1024 })).toBe(5);
  });
});
