/**
 * The wire messages: one TypeScript type per body, explicit validators, and
 * {@link decodeMessage} / {@link encodeMessage} between frames and typed messages.
 *
 * Validation is hand-written, field by field, because WRITE runs at 100k+ writes/s: no schema
 * library, no per-entry allocation. A body must be a plain CBOR map with exactly its fields
 * (an optional field may be absent); integers must be safe integers in range; offsets and
 * lengths of volume data whole 512-byte sectors; strings, arrays and byte strings of bounded
 * length ({@link wireLimits}); a WRITE's payload exactly its entries' data. Anything else is
 * a {@link ProtocolError} `"bad-body"`, and the whole message is refused: a consumer never sees
 * part of a batch.
 *
 * Bodies' byte strings and payloads are views into the received bytes (see `cbor.ts` and the
 * lifetime rule in `frame.ts`).
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./frame.ts";
 * import { decodeMessage, encodeMessage, messageKinds } from "./messages.ts";
 *
 * const chunks = encodeMessage(messageKinds.ack, { volume: "db", durableSeq: 41 });
 * const decoder = new FrameDecoder();
 * for (const chunk of chunks) {
 *   decoder.push(chunk);
 *   for (const frame of decoder) {
 *     const message = decodeMessage(frame);
 *     if (message.kind === messageKinds.ack) console.log(message.body.durableSeq); // 41
 *   }
 * }
 * ```
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { limits, wireLimits } from "../core/limits.ts";
import { SNAPSHOT_NAME_PATTERN } from "../core/point.ts";
import { decodeCbor } from "./cbor.ts";
import { ProtocolError } from "./errors.ts";
import { encodeFrame, type Frame } from "./frame.ts";
import { type MessageKind, messageKindName, messageKinds } from "./message_kinds.ts";

export { type MessageKind, messageKindName, messageKinds } from "./message_kinds.ts";

/**
 * The protocol version this code speaks (HELLO's `protocol`). Version 2 (2026-12) packs a
 * WRITE batch's entries into one byte string of fixed-width records ({@link writeEntryBytes});
 * version 1 sent them as an array of 5-key CBOR maps. Peers of different versions refuse each
 * other in the handshake.
 */
export const wireProtocolVersion = 2;

/** Volume data moves in whole sectors. */
export const wireSectorBytes = 512;

/** Bytes of one hash in a HASH_REPLY, and of a WRITE entry's checksum (XXH64, little-endian). */
export const hashBytes = 8;

/** Marker kinds a MARK may carry (the journal's marker kinds; seed 003 for the DRL ones). */
export const markKinds = [
  "snapshot",
  "snapshotRemoved",
  "gap",
  "inSync",
  "outOfSync",
  "fixupStart",
  "fixupEnd",
  "primaryWriteError",
  "secondaryWriteError",
  "restore",
] as const;

export type MarkKind = typeof markKinds[number];

/** HELLO, switch → appliance. */
export interface HelloBody {
  readonly protocol: typeof wireProtocolVersion;
  readonly role: "switch";
  readonly switchId: string;
  /** {@link wireLimits.nonceBytes} random bytes. */
  readonly nonce: Uint8Array;
}

/** CHALLENGE, appliance → switch. */
export interface ChallengeBody {
  readonly nonce: Uint8Array;
  /** HMAC-SHA256(secret, "anytime-appliance" ‖ switch nonce ‖ appliance nonce). */
  readonly proof: Uint8Array;
}

/** A volume the switch protects, as announced in PROOF. */
export interface VolumeOffer {
  readonly name: string;
  /** A positive multiple of 512, at most `limits.volumeBytesMax`. */
  readonly sizeBytes: number;
  /** The switch's dirty-region size: a power of two from 512 bytes to 1 GiB. */
  readonly regionBytes: number;
}

/** PROOF, switch → appliance. */
export interface ProofBody {
  /** HMAC-SHA256(secret, "anytime-switch" ‖ appliance nonce ‖ switch nonce). */
  readonly proof: Uint8Array;
  readonly volumes: readonly VolumeOffer[];
}

/** Where the switch resumes a volume: the last seq the appliance holds durably. */
export interface VolumeResume {
  readonly name: string;
  /** -1 when the appliance holds nothing of the volume yet. */
  readonly durableSeq: number;
}

/** WELCOME, appliance → switch. */
export interface WelcomeBody {
  readonly volumes: readonly VolumeResume[];
}

/** One write of a WRITE batch; its data is the next `lengthBytes` of the payload. */
export interface WriteEntry {
  readonly seq: number;
  readonly timeUs: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** XXH64 of the data (a u64), computed once at the switch (end to end). */
  readonly checksum: bigint;
}

/**
 * WRITE, switch → appliance (protocol 2): `entries` is a byte string of packed entry
 * records, {@link writeEntryBytes} each (read them with {@link WriteEntries}, write them with
 * {@link packWriteEntries} or `WriteBatchEncoder`); the payload is the entries' data
 * concatenated in order. Record layout, little-endian:
 *
 * | offset | size | field           | rule                                                  |
 * | -----: | ---: | --------------- | ----------------------------------------------------- |
 * |      0 |    8 | seq u64         | a safe integer                                        |
 * |      8 |    8 | timeUs u64      | a safe integer (µs since the Unix epoch)              |
 * |     16 |    8 | offsetBytes u64 | whole sectors; offset + length within the largest volume |
 * |     24 |    4 | lengthBytes u32 | whole sectors, 512 to `wireLimits.writeLengthBytesMax` |
 * |     28 |    4 | reserved u32    | 0                                                     |
 * |     32 |    8 | checksum u64    | XXH64 (seed 0) of the entry's data                    |
 *
 * Fixed-width fields, because the batch is the hot path: encoding a record is five stores into
 * a reused buffer, and decoding one allocates nothing (version 1's per-entry maps cost the
 * CBOR encoder and decoder an object and five keys each).
 */
export interface WriteBody {
  readonly volume: string;
  readonly entries: Uint8Array;
}

/** A JSON-like value inside a MARK's detail. */
export type MarkDetailValue =
  | string
  | number
  | boolean
  | null
  | readonly MarkDetailValue[]
  | { readonly [key: string]: MarkDetailValue };

/** MARK, switch → appliance. */
export interface MarkBody {
  readonly volume: string;
  readonly seq: number;
  readonly timeUs: number;
  readonly kind: MarkKind;
  /** Small, JSON-like (a snapshot's name, a gap's interval...). */
  readonly detail?: { readonly [key: string]: MarkDetailValue };
}

/** ACK, appliance → switch: every seq of the volume up to `durableSeq` is durable. */
export interface AckBody {
  readonly volume: string;
  readonly durableSeq: number;
}

/** HASH_REQUEST: the hashes of `lengthBytes` from `offsetBytes`, one per `chunkBytes` (the last may be short). */
export interface HashRequestBody {
  readonly requestId: number;
  readonly volume: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly chunkBytes: number;
  /** The image to hash: the volume after this seq (resync compares the primary as it was then); head when absent. */
  readonly atSeq?: number;
}

/**
 * HASH_REPLY: the XXH64 of each chunk of the appliance's image, 8 bytes little-endian per
 * chunk, in order; no hashes when the appliance cannot answer (the switch then treats the
 * range as differing).
 */
export interface HashReplyBody {
  readonly requestId: number;
  readonly hashes: Uint8Array;
}

/** READ_REQUEST (and FETCH): the data of a volume range. */
export interface ReadRequestBody {
  readonly requestId: number;
  readonly volume: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** The image at this seq (a restore's target); absent: the appliance's head. */
  readonly atSeq?: number;
}

/** FETCH: instant restore asks for a range it must serve now. */
export type FetchBody = ReadRequestBody;

/**
 * READ_REPLY: the payload is the data; or, with `error` and no payload, why the appliance
 * could not read (the point no longer retained, a store error): that read fails at once and
 * the link goes on.
 */
export interface ReadReplyBody {
  readonly requestId: number;
  readonly error?: string;
}

/**
 * SNAPSHOT_REQUEST, appliance → switch: queue a `snapshot` marker `{name}` (or, with
 * `remove`, a `snapshotRemoved` marker) in the volume's write stream, after every write the
 * switch copied so far. The switch answers at once with a SNAPSHOT_REPLY.
 */
export interface SnapshotRequestBody {
  readonly requestId: number;
  readonly volume: string;
  /** A snapshot name: `SNAPSHOT_NAME_PATTERN`, 1 to `limits.snapshotNameBytesMax` characters. */
  readonly name: string;
  /** True for a `snapshotRemoved` marker; absent or false for a `snapshot` marker. */
  readonly remove?: boolean;
}

/**
 * SNAPSHOT_REPLY, switch → appliance: the seq the switch gave the marker, or why it took none
 * (marking mode, marker ring full, a volume it does not stream). Exactly one of the two.
 */
export type SnapshotReplyBody =
  | { readonly requestId: number; readonly seq: number; readonly refused?: undefined }
  | { readonly requestId: number; readonly refused: string; readonly seq?: undefined };

/**
 * RESTORE_REQUEST, appliance → switch: put the primary back to the image at `toSeq`, which
 * the appliance resolved and checked (retained, not suspect unless forced). `toTimeUs` is that
 * point's time (for the restore marker's detail).
 */
export interface RestoreRequestBody {
  readonly requestId: number;
  readonly volume: string;
  readonly toSeq: number;
  readonly toTimeUs: number;
  /** Hosts keep reading and writing meanwhile (each I/O restores what it touches first). */
  readonly instant: boolean;
  /** Copy the whole volume, not only what differs. */
  readonly full: boolean;
}

/** RESTORE_PLAN_REQUEST, switch → appliance: host writes are paused and every seq through `headSeq` is acknowledged. */
export interface RestorePlanRequestBody {
  readonly requestId: number;
  readonly headSeq: number;
}

/**
 * RESTORE_PLAN, appliance → switch: the extents to restore, {@link wireLimits.restoreExtentBytes}
 * bytes each (offset, length: little-endian u64, whole sectors, ascending, apart; see
 * {@link encodeRestoreExtents}). The frame with `last` ends the plan.
 */
export interface RestorePlanBody {
  readonly requestId: number;
  readonly extents: Uint8Array;
  readonly last: boolean;
}

/** RESTORE_STARTED, switch → appliance: the restore marker is in the stream; the copy runs. */
export interface RestoreStartedBody {
  readonly requestId: number;
  readonly markerSeq: number;
  readonly bytesTotal: number;
}

/** RESTORE_REFUSED, switch → appliance: the restore did not start, and nothing changed. */
export interface RestoreRefusedBody {
  readonly requestId: number;
  readonly refused: string;
}

/** The states RESTORE_PROGRESS reports (the switch's restore session's). */
export const restoreProgressStates = ["running", "done", "failed", "cancelled"] as const;

export type RestoreProgressState = typeof restoreProgressStates[number];

/** RESTORE_PROGRESS, switch → appliance: `message` says why, for `failed` only. */
export interface RestoreProgressBody {
  readonly requestId: number;
  readonly bytesMoved: number;
  readonly state: RestoreProgressState;
  readonly message?: string;
}

/** RESTORE_CANCEL, appliance → switch. */
export interface RestoreCancelBody {
  readonly requestId: number;
}

/** An extent of a restore plan, bytes. */
export interface PlanExtent {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * Packs extents for a RESTORE_PLAN: per extent, offset then length, each a little-endian u64.
 *
 * @example
 * ```ts
 * encodeRestoreExtents([{ offsetBytes: 4096, lengthBytes: 512 }]).length; // 16
 * ```
 */
export function encodeRestoreExtents(extents: readonly PlanExtent[]): Uint8Array {
  const bytes = new Uint8Array(extents.length * wireLimits.restoreExtentBytes);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < extents.length; index++) {
    const at = index * wireLimits.restoreExtentBytes;
    writeUint64(view, at, extents[index].offsetBytes);
    writeUint64(view, at + 8, extents[index].lengthBytes);
  }
  return bytes;
}

/** Unpacks a validated RESTORE_PLAN's extents. */
export function decodeRestoreExtents(bytes: Uint8Array): PlanExtent[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const extents: PlanExtent[] = [];
  for (let at = 0; at + wireLimits.restoreExtentBytes <= bytes.length; at += wireLimits.restoreExtentBytes) {
    extents.push({ offsetBytes: readUint64(view, at), lengthBytes: readUint64(view, at + 8) });
  }
  return extents;
}

function writeUint64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 2 ** 32, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

function readUint64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 2 ** 32 + view.getUint32(at, true);
}

/** PING and PONG. */
export interface PingBody {
  readonly timeUs: number;
}

/** ERROR: why the sender is closing the connection. */
export interface ErrorBody {
  readonly code: string;
  readonly message: string;
}

/** BYE: an orderly close. */
export interface ByeBody {
  readonly reason: string;
}

/** The body type of each kind. */
export interface MessageBodies {
  [messageKinds.hello]: HelloBody;
  [messageKinds.challenge]: ChallengeBody;
  [messageKinds.proof]: ProofBody;
  [messageKinds.welcome]: WelcomeBody;
  [messageKinds.write]: WriteBody;
  [messageKinds.mark]: MarkBody;
  [messageKinds.ack]: AckBody;
  [messageKinds.hashRequest]: HashRequestBody;
  [messageKinds.hashReply]: HashReplyBody;
  [messageKinds.readRequest]: ReadRequestBody;
  [messageKinds.readReply]: ReadReplyBody;
  [messageKinds.fetch]: FetchBody;
  [messageKinds.snapshotRequest]: SnapshotRequestBody;
  [messageKinds.snapshotReply]: SnapshotReplyBody;
  [messageKinds.restoreRequest]: RestoreRequestBody;
  [messageKinds.restorePlanRequest]: RestorePlanRequestBody;
  [messageKinds.restorePlan]: RestorePlanBody;
  [messageKinds.restoreStarted]: RestoreStartedBody;
  [messageKinds.restoreRefused]: RestoreRefusedBody;
  [messageKinds.restoreProgress]: RestoreProgressBody;
  [messageKinds.restoreCancel]: RestoreCancelBody;
  [messageKinds.ping]: PingBody;
  [messageKinds.pong]: PingBody;
  [messageKinds.error]: ErrorBody;
  [messageKinds.bye]: ByeBody;
}

/** A decoded, validated message: narrow on `kind` to get its body type. */
export type Message = {
  [K in MessageKind]: { readonly kind: K; readonly body: MessageBodies[K]; readonly payload: Uint8Array };
}[MessageKind];

/** The message of one kind. */
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;

/**
 * Decodes and validates a frame's body.
 *
 * @throws {ProtocolError} `"bad-body"` when the body is not valid CBOR or not a valid message
 * of the frame's kind; `"version"` when a HELLO speaks another protocol version.
 */
export function decodeMessage(frame: Frame): Message {
  let body: unknown;
  try {
    body = decodeCbor(frame.body);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ProtocolError("bad-body", `Invalid ${messageKindName(frame.kind)} message: ${error.message}`, {
      cause: error,
    });
  }
  if (frame.kind === messageKinds.hello) checkProtocolVersion(body);
  const problem = messageProblem(frame.kind, body, frame.payload.length);
  if (problem !== null) {
    throw new ProtocolError("bad-body", `Invalid ${messageKindName(frame.kind)} message: ${problem}`);
  }
  return { kind: frame.kind, body, payload: frame.payload } as Message;
}

/**
 * Validates and encodes a message into frame chunks for `Connection.send` (the payload is
 * passed by reference). An invalid body is a programmer error: it fails an assertion here
 * rather than at the peer.
 */
export function encodeMessage<K extends MessageKind>(
  kind: K,
  body: MessageBodies[K],
  payload?: Uint8Array,
): Uint8Array[] {
  const problem = messageProblem(kind, body, payload?.length ?? 0);
  if (problem !== null) assert(false, `Cannot encode ${messageKindName(kind)} message: ${problem}`);
  return encodeFrame(kind, body, payload);
}

/**
 * Why `body` (with `payloadBytes` of payload) is not a valid message of `kind`, or `null`
 * when it is. Shared by encode (a programmer error) and decode (bad input).
 */
export function messageProblem(kind: MessageKind, body: unknown, payloadBytes: number): string | null {
  const validator = validators[kind];
  if (validator === undefined) return `kind ${kind} is not a message kind`;
  return validator(body, payloadBytes);
}

/** HELLO from another protocol version: refuse by version, whatever else the body holds. */
function checkProtocolVersion(body: unknown): void {
  const fields = asFields(body);
  if (fields === null) return;
  const protocol = fields.protocol;
  if (typeof protocol === "number" && Number.isSafeInteger(protocol) && protocol !== wireProtocolVersion) {
    throw new ProtocolError(
      "version",
      `The peer speaks protocol version ${protocol}; this side speaks version ${wireProtocolVersion}`,
    );
  }
}

/** Bytes of one packed WRITE entry record (the layout is in {@link WriteBody}). */
export const writeEntryBytes = wireLimits.writeEntryBytes;

const entrySeqAtBytes = 0;
const entryTimeAtBytes = 8;
const entryOffsetAtBytes = 16;
const entryLengthAtBytes = 24;
const entryReservedAtBytes = 28;
const entryChecksumAtBytes = 32;
assert(entryChecksumAtBytes + hashBytes === writeEntryBytes, "The entry layout fills its record");

/**
 * Stores one entry record at `atBytes` of `view` (no checks: callers validate, or encode
 * values they made). Shared by {@link packWriteEntries} and `WriteBatchEncoder`.
 *
 * @example
 * ```ts
 * const record = new Uint8Array(writeEntryBytes);
 * storeWriteEntry(new DataView(record.buffer), 0, { seq: 1, timeUs: 0, offsetBytes: 0, lengthBytes: 512, checksum: 0n });
 * ```
 */
export function storeWriteEntry(view: DataView, atBytes: number, entry: WriteEntry): void {
  writeUint64(view, atBytes + entrySeqAtBytes, entry.seq);
  writeUint64(view, atBytes + entryTimeAtBytes, entry.timeUs);
  writeUint64(view, atBytes + entryOffsetAtBytes, entry.offsetBytes);
  view.setUint32(atBytes + entryLengthAtBytes, entry.lengthBytes, true);
  view.setUint32(atBytes + entryReservedAtBytes, 0, true);
  view.setBigUint64(atBytes + entryChecksumAtBytes, entry.checksum, true);
}

/**
 * Packs entries into a WRITE body's `entries` byte string (tests, and senders off the hot
 * path; the switch link uses `WriteBatchEncoder`, which allocates nothing per batch).
 *
 * @example
 * ```ts
 * packWriteEntries([{ seq: 1, timeUs: 0, offsetBytes: 0, lengthBytes: 512, checksum: 0n }]).length; // 40
 * ```
 */
export function packWriteEntries(entries: readonly WriteEntry[]): Uint8Array {
  const bytes = new Uint8Array(entries.length * writeEntryBytes);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < entries.length; index++) storeWriteEntry(view, index * writeEntryBytes, entries[index]);
  return bytes;
}

/**
 * Reads the records of a validated WRITE body's `entries` (field by field: no object per
 * entry). Indexes are checked by assertion.
 *
 * @example
 * ```ts
 * const entries = new WriteEntries(packWriteEntries([{ seq: 7, timeUs: 1, offsetBytes: 512, lengthBytes: 512, checksum: 9n }]));
 * entries.count; // 1
 * entries.seq(0); // 7
 * ```
 */
export class WriteEntries {
  /** Entries in the batch. */
  readonly count: number;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    if (bytes.length % writeEntryBytes !== 0) assert(false, `WRITE entries are ${writeEntryBytes}-byte records, not ${bytes.length} bytes`);
    this.count = bytes.length / writeEntryBytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  seq(index: number): number {
    return readUint64(this.#view, this.#at(index) + entrySeqAtBytes);
  }

  timeUs(index: number): number {
    return readUint64(this.#view, this.#at(index) + entryTimeAtBytes);
  }

  offsetBytes(index: number): number {
    return readUint64(this.#view, this.#at(index) + entryOffsetAtBytes);
  }

  lengthBytes(index: number): number {
    return this.#view.getUint32(this.#at(index) + entryLengthAtBytes, true);
  }

  /** The XXH64 the switch computed over the entry's data. */
  checksum(index: number): bigint {
    return this.#view.getBigUint64(this.#at(index) + entryChecksumAtBytes, true);
  }

  /** Entry `index` as an object (tests and logs; the hot path reads fields). */
  entry(index: number): WriteEntry {
    return {
      seq: this.seq(index),
      timeUs: this.timeUs(index),
      offsetBytes: this.offsetBytes(index),
      lengthBytes: this.lengthBytes(index),
      checksum: this.checksum(index),
    };
  }

  #at(index: number): number {
    if (!(index >= 0 && index < this.count && Number.isInteger(index))) {
      assert(false, `Entry index ${index} is not below the batch's ${this.count} entries`);
    }
    return index * writeEntryBytes;
  }
}

/**
 * Checks every entry's data against its checksum (XXH64), or returns why not: the
 * appliance's end-to-end check before it journals a batch (DESIGN.md, "Wire protocol"). Not
 * part of {@link decodeMessage}, which stays synchronous and hash-free.
 */
export function writeChecksumProblem(checksum: Checksum, body: WriteBody, payload: Uint8Array): string | null {
  const entries = new WriteEntries(body.entries);
  let atBytes = 0;
  for (let index = 0; index < entries.count; index++) {
    const lengthBytes = entries.lengthBytes(index);
    const data = payload.subarray(atBytes, atBytes + lengthBytes);
    atBytes += lengthBytes;
    const expected = entries.checksum(index);
    const actual = checksum.hash64(data);
    if (actual !== expected) {
      return `entry ${index} (seq ${entries.seq(index)}) has checksum 0x${hex64(actual)}, the switch sent 0x${hex64(expected)}`;
    }
  }
  return null;
}

/** Hashes a HASH_REPLY to this request carries: one per chunk, the last may be short. */
export function hashChunkCount(request: Pick<HashRequestBody, "lengthBytes" | "chunkBytes">): number {
  return Math.ceil(request.lengthBytes / request.chunkBytes);
}

function hex64(value: bigint): string {
  return value.toString(16).padStart(16, "0");
}

// ---------------------------------------------------------------------------------------
// Validators. Each returns why a body is invalid, or null. They build strings only on
// failure, and allocate nothing on success.

type Fields = Record<string, unknown>;
type Validator = (body: unknown, payloadBytes: number) => string | null;

/** A plain object (what a CBOR map decodes to; senders may also build null-prototype ones). */
function asFields(value: unknown): Fields | null {
  if (typeof value !== "object" || value === null) return null;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null ? value as Fields : null;
}

/** Fields whose value is not `undefined` (an absent optional field may be sent as undefined). */
function definedFieldCount(fields: Fields): number {
  let count = 0;
  for (const key in fields) if (fields[key] !== undefined) count++;
  return count;
}

function extraFieldsProblem(fields: Fields, known: readonly string[], where: string): string | null {
  const extra = Object.keys(fields).filter((key) => fields[key] !== undefined && !known.includes(key));
  return extra.length === 0
    ? null
    : `${where} has unknown fields ${extra.map((key) => JSON.stringify(key)).join(", ")}`;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === null || value === undefined) return String(value);
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  // Not value.constructor.name: a decoded map may have an own "constructor" field.
  return Object.prototype.toString.call(value);
}

function objectProblem(value: unknown, where: string): string | null {
  return asFields(value) === null ? `${where} is ${describe(value)}, not a map` : null;
}

function integerProblem(value: unknown, where: string, min: number, max = Number.MAX_SAFE_INTEGER): string | null {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max) return null;
  return `${where} is ${describe(value)}, not an integer from ${min} to ${max}`;
}

function sectorsProblem(value: unknown, where: string, min: number, max: number): string | null {
  if (
    typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max &&
    value % wireSectorBytes === 0
  ) {
    return null;
  }
  return `${where} is ${describe(value)}, not a multiple of ${wireSectorBytes} from ${min} to ${max}`;
}

function stringProblem(value: unknown, where: string, lengthMin: number, lengthMax: number): string | null {
  if (typeof value === "string" && value.length >= lengthMin && value.length <= lengthMax) return null;
  return `${where} is ${describe(value)}, not a string of ${lengthMin} to ${lengthMax} characters`;
}

function bytesProblem(value: unknown, where: string, length: number): string | null {
  if (value instanceof Uint8Array && value.length === length) return null;
  return `${where} is ${describe(value)}, not ${length} bytes`;
}

function volumeNameProblem(value: unknown, where: string): string | null {
  return stringProblem(value, where, 1, wireLimits.volumeNameLengthMax);
}

/** A data range inside the largest volume. */
function rangeProblem(offsetBytes: number, lengthBytes: number, where: string): string | null {
  if (offsetBytes + lengthBytes <= limits.volumeBytesMax) return null;
  return `${where} ends at byte ${offsetBytes + lengthBytes}, past the largest volume (${limits.volumeBytesMax} bytes)`;
}

function noPayloadProblem(payloadBytes: number): string | null {
  return payloadBytes === 0 ? null : `it carries a ${payloadBytes}-byte payload, and this kind carries none`;
}

/** `first ?? second ?? ...`, short-circuiting: each problem is computed only if the previous ones were null. */
function firstProblem(...checks: (() => string | null)[]): string | null {
  for (const check of checks) {
    const problem = check();
    if (problem !== null) return problem;
  }
  return null;
}

function exactFieldsProblem(
  fields: Fields,
  known: readonly string[],
  requiredCount: number,
  where: string,
): string | null {
  const count = definedFieldCount(fields);
  if (count === requiredCount) return null;
  return extraFieldsProblem(fields, known, where) ?? `${where} lacks a field`;
}

const helloFields = ["protocol", "role", "switchId", "nonce"] as const;

function helloProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  if (fields.protocol !== wireProtocolVersion) {
    return `field "protocol" is ${describe(fields.protocol)}, not ${wireProtocolVersion}`;
  }
  if (fields.role !== "switch") return `field "role" is ${describe(fields.role)}, not "switch"`;
  return stringProblem(fields.switchId, `field "switchId"`, 1, wireLimits.switchIdLengthMax) ??
    bytesProblem(fields.nonce, `field "nonce"`, wireLimits.nonceBytes) ??
    exactFieldsProblem(fields, helloFields, helloFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const challengeFields = ["nonce", "proof"] as const;

function challengeProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return bytesProblem(fields.nonce, `field "nonce"`, wireLimits.nonceBytes) ??
    bytesProblem(fields.proof, `field "proof"`, wireLimits.proofBytes) ??
    exactFieldsProblem(fields, challengeFields, challengeFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

/** Checks an array of volume items with `itemProblem`, and that their names are unique. */
function volumeListProblem(
  value: unknown,
  itemProblem: (item: unknown, where: string) => string | null,
): string | null {
  if (!Array.isArray(value) || value.length > wireLimits.volumesPerConnectionMax) {
    return `field "volumes" is ${describe(value)}, not an array of at most ${wireLimits.volumesPerConnectionMax}`;
  }
  const names = new Set<string>();
  for (let index = 0; index < value.length; index++) {
    const where = `volumes[${index}]`;
    const problem = itemProblem(value[index], where);
    if (problem !== null) return problem;
    const name = (value[index] as { name: string }).name;
    if (names.has(name)) return `${where} repeats volume name ${JSON.stringify(name)}`;
    names.add(name);
  }
  return null;
}

const volumeOfferFields = ["name", "sizeBytes", "regionBytes"] as const;

function volumeOfferProblem(item: unknown, where: string): string | null {
  const fields = asFields(item);
  if (fields === null) return objectProblem(item, where);
  const regionBytes = fields.regionBytes;
  return volumeNameProblem(fields.name, `${where}.name`) ??
    sectorsProblem(fields.sizeBytes, `${where}.sizeBytes`, wireSectorBytes, limits.volumeBytesMax) ??
    integerProblem(regionBytes, `${where}.regionBytes`, wireLimits.regionBytesMin, wireLimits.regionBytesMax) ??
    (isPowerOfTwo(regionBytes as number) ? null : `${where}.regionBytes is ${regionBytes}, not a power of two`) ??
    exactFieldsProblem(fields, volumeOfferFields, volumeOfferFields.length, where);
}

function isPowerOfTwo(value: number): boolean {
  return value > 0 && Number.isSafeInteger(value) && 2 ** Math.round(Math.log2(value)) === value;
}

const proofFields = ["proof", "volumes"] as const;

function proofProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return bytesProblem(fields.proof, `field "proof"`, wireLimits.proofBytes) ??
    volumeListProblem(fields.volumes, volumeOfferProblem) ??
    exactFieldsProblem(fields, proofFields, proofFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const volumeResumeFields = ["name", "durableSeq"] as const;

function volumeResumeProblem(item: unknown, where: string): string | null {
  const fields = asFields(item);
  if (fields === null) return objectProblem(item, where);
  return volumeNameProblem(fields.name, `${where}.name`) ??
    integerProblem(fields.durableSeq, `${where}.durableSeq`, -1) ??
    exactFieldsProblem(fields, volumeResumeFields, volumeResumeFields.length, where);
}

const welcomeFields = ["volumes"] as const;

function welcomeProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return volumeListProblem(fields.volumes, volumeResumeProblem) ??
    exactFieldsProblem(fields, welcomeFields, welcomeFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const writeFields = ["volume", "entries"] as const;

/** The hot path: one pass over the entries, no allocation unless something is wrong. */
function writeProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const problem = volumeNameProblem(fields.volume, `field "volume"`) ??
    exactFieldsProblem(fields, writeFields, writeFields.length, "the body");
  if (problem !== null) return problem;
  const entries = fields.entries;
  if (
    !(entries instanceof Uint8Array) || entries.length === 0 || entries.length % writeEntryBytes !== 0 ||
    entries.length > wireLimits.writeEntriesMax * writeEntryBytes
  ) {
    return `field "entries" is ${describe(entries)}, not 1 to ${wireLimits.writeEntriesMax} records of ${writeEntryBytes} bytes`;
  }
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  let dataBytes = 0;
  for (let atBytes = 0; atBytes < entries.length; atBytes += writeEntryBytes) {
    // The high words first: a u64 is a safe integer when its high word is below 2^21.
    const lengthBytes = view.getUint32(atBytes + entryLengthAtBytes, true);
    if (
      view.getUint32(atBytes + entrySeqAtBytes + 4, true) >= safeHighWordLimit ||
      view.getUint32(atBytes + entryTimeAtBytes + 4, true) >= safeHighWordLimit ||
      view.getUint32(atBytes + entryOffsetAtBytes + 4, true) >= safeHighWordLimit ||
      view.getUint32(atBytes + entryOffsetAtBytes, true) % wireSectorBytes !== 0 ||
      lengthBytes === 0 || lengthBytes > wireLimits.writeLengthBytesMax || lengthBytes % wireSectorBytes !== 0 ||
      view.getUint32(atBytes + entryReservedAtBytes, true) !== 0 ||
      readUint64(view, atBytes + entryOffsetAtBytes) + lengthBytes > limits.volumeBytesMax
    ) {
      return writeEntryProblem(view, atBytes) ?? `entries[${atBytes / writeEntryBytes}] is invalid`;
    }
    dataBytes += lengthBytes;
  }
  if (dataBytes !== payloadBytes) {
    return `the entries hold ${dataBytes} bytes of data, the payload ${payloadBytes}`;
  }
  return null;
}

/** 2^53 / 2^32: a u64's high word must be below it for the value to be a safe integer. */
const safeHighWordLimit = 2 ** 21;

/** The slow path of {@link writeProblem}: says what is wrong with the record at `atBytes`. */
function writeEntryProblem(view: DataView, atBytes: number): string | null {
  const where = `entries[${atBytes / writeEntryBytes}]`;
  const u64 = (fieldAtBytes: number) => view.getUint32(atBytes + fieldAtBytes + 4, true) * 2 ** 32 + view.getUint32(atBytes + fieldAtBytes, true);
  const offsetBytes = u64(entryOffsetAtBytes);
  const lengthBytes = view.getUint32(atBytes + entryLengthAtBytes, true);
  const reserved = view.getUint32(atBytes + entryReservedAtBytes, true);
  return integerProblem(u64(entrySeqAtBytes), `${where}.seq`, 0) ??
    integerProblem(u64(entryTimeAtBytes), `${where}.timeUs`, 0) ??
    sectorsProblem(offsetBytes, `${where}.offsetBytes`, 0, limits.volumeBytesMax) ??
    sectorsProblem(lengthBytes, `${where}.lengthBytes`, wireSectorBytes, wireLimits.writeLengthBytesMax) ??
    rangeProblem(offsetBytes, lengthBytes, where) ??
    (reserved === 0 ? null : `${where} has reserved word ${reserved}, not 0`);
}

const markFields = ["volume", "seq", "timeUs", "kind", "detail"] as const;
const markKindSet: ReadonlySet<unknown> = new Set(markKinds);

function markProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const kind = fields.kind;
  return volumeNameProblem(fields.volume, `field "volume"`) ??
    integerProblem(fields.seq, `field "seq"`, 0) ??
    integerProblem(fields.timeUs, `field "timeUs"`, 0) ??
    (markKindSet.has(kind) ? null : `field "kind" is ${describe(kind)}, not one of ${markKinds.join(", ")}`) ??
    (fields.detail === undefined ? null : markDetailProblem(fields.detail)) ??
    exactFieldsProblem(fields, markFields, fields.detail === undefined ? 4 : 5, "the body") ??
    noPayloadProblem(payloadBytes);
}

/** A MARK's detail: a plain map of JSON-like values, bounded in depth, count and string length. */
function markDetailProblem(detail: unknown): string | null {
  if (asFields(detail) === null) return `field "detail" is ${describe(detail)}, not a map`;
  const budget = { values: wireLimits.markDetailValuesMax };
  return detailValueProblem(detail, "detail", 0, budget);
}

function detailValueProblem(value: unknown, where: string, depth: number, budget: { values: number }): string | null {
  if (--budget.values < 0) return `field "detail" holds more than ${wireLimits.markDetailValuesMax} values`;
  if (value === null || typeof value === "boolean") return null;
  if (typeof value === "number") return Number.isFinite(value) ? null : `${where} is ${value}, not a finite number`;
  if (typeof value === "string") return stringProblem(value, where, 0, wireLimits.markDetailStringLengthMax);
  if (depth >= wireLimits.markDetailDepthMax) return `${where} is nested deeper than ${wireLimits.markDetailDepthMax}`;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const problem = detailValueProblem(value[index], `${where}[${index}]`, depth + 1, budget);
      if (problem !== null) return problem;
    }
    return null;
  }
  const fields = asFields(value);
  if (fields === null) return `${where} is ${describe(value)}, not a JSON-like value`;
  for (const key in fields) {
    // "__proto__" does not survive a round trip (cbor-x renames it against prototype pollution).
    if (key.length > wireLimits.markDetailStringLengthMax || key === "__proto__") {
      return `${where} has a key ${describe(key)} that is too long or reserved`;
    }
    const problem = detailValueProblem(fields[key], `${where}.${key}`, depth + 1, budget);
    if (problem !== null) return problem;
  }
  return null;
}

const ackFields = ["volume", "durableSeq"] as const;

function ackProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return volumeNameProblem(fields.volume, `field "volume"`) ??
    integerProblem(fields.durableSeq, `field "durableSeq"`, 0) ??
    exactFieldsProblem(fields, ackFields, ackFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const hashRequestFields = ["requestId", "volume", "offsetBytes", "lengthBytes", "chunkBytes", "atSeq"] as const;

function hashRequestProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return firstProblem(
    () => integerProblem(fields.requestId, `field "requestId"`, 0),
    () => volumeNameProblem(fields.volume, `field "volume"`),
    () => sectorsProblem(fields.offsetBytes, `field "offsetBytes"`, 0, limits.volumeBytesMax),
    () => sectorsProblem(fields.lengthBytes, `field "lengthBytes"`, wireSectorBytes, wireLimits.hashRequestBytesMax),
    () => sectorsProblem(fields.chunkBytes, `field "chunkBytes"`, wireSectorBytes, wireLimits.hashRequestBytesMax),
    () => rangeProblem(fields.offsetBytes as number, fields.lengthBytes as number, "the range"),
    () => {
      const chunks = hashChunkCount(fields as unknown as HashRequestBody);
      return chunks <= wireLimits.hashChunksMax
        ? null
        : `the request asks for ${chunks} hashes, over the limit of ${wireLimits.hashChunksMax}`;
    },
    () => fields.atSeq === undefined ? null : integerProblem(fields.atSeq, `field "atSeq"`, 0),
    () => exactFieldsProblem(fields, hashRequestFields, fields.atSeq === undefined ? 5 : 6, "the body"),
    () => noPayloadProblem(payloadBytes),
  );
}

const hashReplyFields = ["requestId", "hashes"] as const;

function hashReplyProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const hashes = fields.hashes;
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    (hashes instanceof Uint8Array && hashes.length % hashBytes === 0 &&
        hashes.length <= wireLimits.hashChunksMax * hashBytes
      ? null
      : `field "hashes" is ${describe(hashes)}, not a multiple of ${hashBytes} bytes up to ${
        wireLimits.hashChunksMax * hashBytes
      }`) ??
    exactFieldsProblem(fields, hashReplyFields, hashReplyFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const readRequestFields = ["requestId", "volume", "offsetBytes", "lengthBytes", "atSeq"] as const;

function readRequestProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return firstProblem(
    () => integerProblem(fields.requestId, `field "requestId"`, 0),
    () => volumeNameProblem(fields.volume, `field "volume"`),
    () => sectorsProblem(fields.offsetBytes, `field "offsetBytes"`, 0, limits.volumeBytesMax),
    () => sectorsProblem(fields.lengthBytes, `field "lengthBytes"`, wireSectorBytes, wireLimits.readBytesMax),
    () => rangeProblem(fields.offsetBytes as number, fields.lengthBytes as number, "the range"),
    () => fields.atSeq === undefined ? null : integerProblem(fields.atSeq, `field "atSeq"`, 0),
    () => exactFieldsProblem(fields, readRequestFields, fields.atSeq === undefined ? 4 : 5, "the body"),
    () => noPayloadProblem(payloadBytes),
  );
}

const readReplyFields = ["requestId", "error"] as const;

function readReplyProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  if (fields.error !== undefined) {
    return integerProblem(fields.requestId, `field "requestId"`, 0) ??
      stringProblem(fields.error, `field "error"`, 1, wireLimits.restoreMessageLengthMax) ??
      exactFieldsProblem(fields, readReplyFields, 2, "the body") ??
      noPayloadProblem(payloadBytes);
  }
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    exactFieldsProblem(fields, readReplyFields, 1, "the body") ??
    (payloadBytes % wireSectorBytes === 0 && payloadBytes <= wireLimits.readBytesMax
      ? null
      : `its ${payloadBytes}-byte payload is not whole sectors up to ${wireLimits.readBytesMax} bytes`);
}

const snapshotRequestFields = ["requestId", "volume", "name", "remove"] as const;

function snapshotRequestProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const remove = fields.remove;
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    volumeNameProblem(fields.volume, `field "volume"`) ??
    snapshotNameProblem(fields.name, `field "name"`) ??
    (remove === undefined || typeof remove === "boolean" ? null : `field "remove" is ${describe(remove)}, not a boolean`) ??
    exactFieldsProblem(fields, snapshotRequestFields, remove === undefined ? 3 : 4, "the body") ??
    noPayloadProblem(payloadBytes);
}

/** A snapshot name as the appliance accepts it (`core/point.ts`'s `checkSnapshotName`). */
function snapshotNameProblem(value: unknown, where: string): string | null {
  return stringProblem(value, where, 1, limits.snapshotNameBytesMax) ??
    (SNAPSHOT_NAME_PATTERN.test(value as string)
      ? null
      : `${where} is ${describe(value)}, not letters, digits, '.', '_', ':' or '-' (not starting with '-')`);
}

const snapshotReplyFields = ["requestId", "seq", "refused"] as const;

function snapshotReplyProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const { seq, refused } = fields;
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    (seq === undefined
      ? refused === undefined
        ? `the body has neither field "seq" nor field "refused"`
        : stringProblem(refused, `field "refused"`, 1, wireLimits.snapshotRefusalLengthMax)
      : refused === undefined
      ? integerProblem(seq, `field "seq"`, 1)
      : `the body has both field "seq" and field "refused"`) ??
    exactFieldsProblem(fields, snapshotReplyFields, 2, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restoreRequestFields = ["requestId", "volume", "toSeq", "toTimeUs", "instant", "full"] as const;

function restoreRequestProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    volumeNameProblem(fields.volume, `field "volume"`) ??
    integerProblem(fields.toSeq, `field "toSeq"`, 0) ??
    integerProblem(fields.toTimeUs, `field "toTimeUs"`, 0) ??
    booleanProblem(fields.instant, `field "instant"`) ??
    booleanProblem(fields.full, `field "full"`) ??
    exactFieldsProblem(fields, restoreRequestFields, restoreRequestFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restorePlanRequestFields = ["requestId", "headSeq"] as const;

function restorePlanRequestProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    integerProblem(fields.headSeq, `field "headSeq"`, 0) ??
    exactFieldsProblem(fields, restorePlanRequestFields, restorePlanRequestFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restorePlanFields = ["requestId", "extents", "last"] as const;

function restorePlanProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    planExtentsProblem(fields.extents) ??
    booleanProblem(fields.last, `field "last"`) ??
    exactFieldsProblem(fields, restorePlanFields, restorePlanFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

/** Whole 16-byte extents, bounded in count, each whole sectors inside the largest volume, ascending and apart. */
function planExtentsProblem(extents: unknown): string | null {
  const extentBytes = wireLimits.restoreExtentBytes;
  const countMax = wireLimits.restorePlanExtentsPerFrameMax;
  if (!(extents instanceof Uint8Array) || extents.length % extentBytes !== 0 || extents.length > countMax * extentBytes) {
    return `field "extents" is ${describe(extents)}, not a multiple of ${extentBytes} bytes up to ${countMax * extentBytes}`;
  }
  const view = new DataView(extents.buffer, extents.byteOffset, extents.byteLength);
  let previousEndBytes = 0;
  for (let at = 0; at < extents.length; at += extentBytes) {
    const offsetBytes = readUint64(view, at);
    const lengthBytes = readUint64(view, at + 8);
    const where = `extents[${at / extentBytes}]`;
    const problem = sectorsProblem(offsetBytes, `${where}.offsetBytes`, 0, limits.volumeBytesMax) ??
      sectorsProblem(lengthBytes, `${where}.lengthBytes`, wireSectorBytes, limits.volumeBytesMax) ??
      rangeProblem(offsetBytes, lengthBytes, where) ??
      (offsetBytes >= previousEndBytes ? null : `${where} starts at byte ${offsetBytes}, before the previous extent ends (${previousEndBytes})`);
    if (problem !== null) return problem;
    previousEndBytes = offsetBytes + lengthBytes;
  }
  return null;
}

const restoreStartedFields = ["requestId", "markerSeq", "bytesTotal"] as const;

function restoreStartedProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    integerProblem(fields.markerSeq, `field "markerSeq"`, 1) ??
    integerProblem(fields.bytesTotal, `field "bytesTotal"`, 0, limits.volumeBytesMax) ??
    exactFieldsProblem(fields, restoreStartedFields, restoreStartedFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restoreRefusedFields = ["requestId", "refused"] as const;

function restoreRefusedProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    stringProblem(fields.refused, `field "refused"`, 1, wireLimits.restoreMessageLengthMax) ??
    exactFieldsProblem(fields, restoreRefusedFields, restoreRefusedFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restoreProgressFields = ["requestId", "bytesMoved", "state", "message"] as const;
const restoreProgressStateSet: ReadonlySet<unknown> = new Set(restoreProgressStates);

function restoreProgressProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  const { state, message } = fields;
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    integerProblem(fields.bytesMoved, `field "bytesMoved"`, 0, limits.volumeBytesMax) ??
    (restoreProgressStateSet.has(state) ? null : `field "state" is ${describe(state)}, not one of ${restoreProgressStates.join(", ")}`) ??
    (message === undefined
      ? null
      : state !== "failed"
      ? `field "message" is given for state ${describe(state)}; only "failed" carries one`
      : stringProblem(message, `field "message"`, 1, wireLimits.restoreMessageLengthMax)) ??
    exactFieldsProblem(fields, restoreProgressFields, message === undefined ? 3 : 4, "the body") ??
    noPayloadProblem(payloadBytes);
}

const restoreCancelFields = ["requestId"] as const;

function restoreCancelProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.requestId, `field "requestId"`, 0) ??
    exactFieldsProblem(fields, restoreCancelFields, restoreCancelFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

function booleanProblem(value: unknown, where: string): string | null {
  return typeof value === "boolean" ? null : `${where} is ${describe(value)}, not a boolean`;
}

const pingFields = ["timeUs"] as const;

function pingProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return integerProblem(fields.timeUs, `field "timeUs"`, 0) ??
    exactFieldsProblem(fields, pingFields, pingFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const errorFields = ["code", "message"] as const;

function errorProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return stringProblem(fields.code, `field "code"`, 1, wireLimits.errorCodeLengthMax) ??
    stringProblem(fields.message, `field "message"`, 0, wireLimits.errorMessageLengthMax) ??
    exactFieldsProblem(fields, errorFields, errorFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const byeFields = ["reason"] as const;

function byeProblem(body: unknown, payloadBytes: number): string | null {
  const fields = asFields(body);
  if (fields === null) return objectProblem(body, "the body");
  return stringProblem(fields.reason, `field "reason"`, 0, wireLimits.byeReasonLengthMax) ??
    exactFieldsProblem(fields, byeFields, byeFields.length, "the body") ??
    noPayloadProblem(payloadBytes);
}

const validators: Readonly<Record<MessageKind, Validator>> = {
  [messageKinds.hello]: helloProblem,
  [messageKinds.challenge]: challengeProblem,
  [messageKinds.proof]: proofProblem,
  [messageKinds.welcome]: welcomeProblem,
  [messageKinds.write]: writeProblem,
  [messageKinds.mark]: markProblem,
  [messageKinds.ack]: ackProblem,
  [messageKinds.hashRequest]: hashRequestProblem,
  [messageKinds.hashReply]: hashReplyProblem,
  [messageKinds.readRequest]: readRequestProblem,
  [messageKinds.readReply]: readReplyProblem,
  [messageKinds.fetch]: readRequestProblem,
  [messageKinds.snapshotRequest]: snapshotRequestProblem,
  [messageKinds.snapshotReply]: snapshotReplyProblem,
  [messageKinds.restoreRequest]: restoreRequestProblem,
  [messageKinds.restorePlanRequest]: restorePlanRequestProblem,
  [messageKinds.restorePlan]: restorePlanProblem,
  [messageKinds.restoreStarted]: restoreStartedProblem,
  [messageKinds.restoreRefused]: restoreRefusedProblem,
  [messageKinds.restoreProgress]: restoreProgressProblem,
  [messageKinds.restoreCancel]: restoreCancelProblem,
  [messageKinds.ping]: pingProblem,
  [messageKinds.pong]: pingProblem,
  [messageKinds.error]: errorProblem,
  [messageKinds.bye]: byeProblem,
};

/** A text cut to fit a restore message or a read error (`wireLimits.restoreMessageLengthMax`). */
export function fitWireText(text: string): string {
  const lengthMax = wireLimits.restoreMessageLengthMax;
  return text.length === 0 ? "unknown" : text.length <= lengthMax ? text : `${text.slice(0, lengthMax - 3)}...`;
}
