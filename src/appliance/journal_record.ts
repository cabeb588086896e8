/**
 * The journal's on-disk record: a fixed 56-byte little-endian header, then the payload,
 * padded with zeros to the next multiple of 8 bytes so every record starts 8-byte aligned.
 *
 * | offset | size | field                 | meaning                                                   |
 * | -----: | ---: | --------------------- | --------------------------------------------------------- |
 * |      0 |    4 | magic u32             | `AJR1` (bytes 0x41 0x4a 0x52 0x31)                         |
 * |      4 |    1 | version u8            | 1                                                         |
 * |      5 |    1 | kind u8               | {@link journalRecordKinds}, or 0xff for a segment-end pad; 0 is never valid |
 * |      6 |    2 | flags u16             | 0; any other value is rejected by this version            |
 * |      8 |    8 | seq f64               | per-volume sequence; baseline records have seq 0          |
 * |     16 |    8 | timeUs f64            | switch clock, µs since the Unix epoch                     |
 * |     24 |    8 | offsetBytes f64       | primary offset of a write or baseline chunk (512-aligned) |
 * |     32 |    8 | payloadChecksum u64   | XXH64 of the payload, computed at the switch              |
 * |     40 |    8 | durableAddressBytes f64 | every journal byte before it was durable when this record's group was written |
 * |     48 |    4 | payloadLengthBytes u32 | payload bytes, padding excluded                          |
 * |     52 |    4 | headerChecksum u32    | XXH32 of header bytes 0..51                               |
 *
 * The header checksum sits last so it covers a contiguous prefix (no field to zero first).
 * Integers that may exceed 2^32 (seq, time, offsets, addresses) are float64: exact up to
 * 2^53, the same numbers the rest of the engine computes with, and checked to be safe
 * integers on decode.
 *
 * `durableAddressBytes` is what lets recovery tell a torn tail from mid-journal corruption
 * (see `journal.ts`): a valid record that claims an address P was durable proves that bytes
 * before P had been synced, so an invalid record before P is corruption, never a torn write.
 *
 * @example
 * ```ts
 * import { createChecksum } from "../core/checksum.ts";
 * import {
 *   createJournalRecordHeader, JournalRecordCodec, journalRecordBytes, journalRecordKinds,
 * } from "./journal_record.ts";
 *
 * const codec = new JournalRecordCodec(await createChecksum());
 * const payload = new Uint8Array(4096);
 * const header = createJournalRecordHeader();
 * header.kind = journalRecordKinds.write;
 * header.seq = 1;
 * header.timeUs = 1_700_000_000_000_000;
 * header.offsetBytes = 8192;
 * header.payloadLengthBytes = payload.length;
 * header.payloadChecksum = codec.checksum.hash64(payload);
 * const target = new Uint8Array(journalRecordBytes(payload.length));
 * codec.encodeHeader(header, target, 0);
 * target.set(payload, 56);
 * const decoded = codec.decodeHeader(target, 0); // throws SyntaxError when invalid
 * ```
 */
import { assert } from "../core/assert.ts";
import type { Checksum } from "../core/checksum.ts";
import { limits } from "../core/limits.ts";
import { xxh32 } from "../core/xxh32.ts";

/** Record kinds, as stored in the header's kind byte. Markers share the write sequence. */
export const journalRecordKinds = {
  /** A host write: payload is the written data. */
  write: 1,
  /** A chunk of the initial full copy: seq 0, before seq 1. */
  baseline: 2,
  snapshot: 3,
  snapshotRemoved: 4,
  /** Writes were missed (link down, buffer overflow): the interval is suspect. */
  gap: 5,
  inSync: 6,
  outOfSync: 7,
  fixupStart: 8,
  fixupEnd: 9,
  primaryWriteError: 10,
  secondaryWriteError: 11,
  /** From here the volume's state is the state of the POINT in the payload. */
  restore: 12,
} as const;

export type JournalRecordKind = typeof journalRecordKinds[keyof typeof journalRecordKinds];

/**
 * The kind of the pad the journal writes where a segment's records end because the next one
 * did not fit: "continue at the next segment's start". It is written in the same store write
 * as the records before it, so recovery only crosses into the next segment when that write
 * survived whole (a lost write cannot be skipped over, even between baseline records, which
 * all have seq 0). Its seq repeats the seq before it; its payload is empty. Never appended by
 * callers, never delivered by recovery.
 */
export const journalSegmentEndKind = 0xff;

/** The kind byte of any stored record. */
export type JournalStoredKind = JournalRecordKind | typeof journalSegmentEndKind;

const kindNames: readonly (string | undefined)[] = (() => {
  const names: (string | undefined)[] = [];
  for (const [name, kind] of Object.entries(journalRecordKinds)) names[kind] = name;
  names[journalSegmentEndKind] = "segmentEnd";
  return names;
})();

/** The name of a kind (`"write"`, `"segmentEnd"`), or `undefined` for a byte that is no kind. */
export function journalRecordKindName(kind: number): string | undefined {
  return kindNames[kind];
}

/** True for kinds whose payload is volume data (writes and baseline chunks). */
export function isDataKind(kind: number): boolean {
  return kind === journalRecordKinds.write || kind === journalRecordKinds.baseline;
}

export const journalRecordMagic = 0x31524a41; // "AJR1" read as a little-endian u32
export const journalRecordVersion = 1;
export const journalRecordHeaderBytes = 56;
/** Records start at multiples of this inside a segment. */
export const journalRecordAlignBytes = 8;
/** Data payloads (writes, baseline chunks) are multiples of the sector size. */
export const journalSectorBytes = 512;

const headerChecksumOffsetBytes = 52;
const payloadLengthOffsetBytes = 48;
const durableAddressOffsetBytes = 40;

/** Largest payload a record of `kind` may carry. */
export function journalRecordPayloadBytesMax(kind: number): number {
  if (kind === journalSegmentEndKind) return 0;
  return isDataKind(kind) ? limits.writeBytesMax : limits.markerPayloadBytesMax;
}

/** Largest record of any kind, header and padding included. */
export const journalRecordBytesMax = journalRecordBytes(
  Math.max(limits.writeBytesMax, limits.markerPayloadBytesMax),
);

/** Bytes a record with `payloadLengthBytes` of payload occupies: header + padded payload. */
export function journalRecordBytes(payloadLengthBytes: number): number {
  const alignMask = journalRecordAlignBytes - 1;
  return journalRecordHeaderBytes + ((payloadLengthBytes + alignMask) & ~alignMask);
}

/** The decoded header fields (flags and magic are checked, not returned). */
export interface JournalRecordHeader {
  kind: JournalStoredKind;
  seq: number;
  timeUs: number;
  offsetBytes: number;
  payloadLengthBytes: number;
  payloadChecksum: bigint;
  durableAddressBytes: number;
}

/** A zeroed header object, to be filled and reused (no allocation per record). */
export function createJournalRecordHeader(): JournalRecordHeader {
  return {
    kind: journalRecordKinds.write,
    seq: 0,
    timeUs: 0,
    offsetBytes: 0,
    payloadLengthBytes: 0,
    payloadChecksum: 0n,
    durableAddressBytes: 0,
  };
}

/**
 * Why a header's fields are not a valid record, or `null` when they are. Shared by encode
 * (where a problem is a programmer error) and decode (where it is bad input).
 */
export function journalRecordHeaderProblem(header: JournalRecordHeader): string | null {
  const { kind, seq, timeUs, offsetBytes, payloadLengthBytes } = header;
  const kindName = journalRecordKindName(kind);
  if (kindName === undefined) return `kind ${kind} is not a record kind`;
  if (!Number.isSafeInteger(seq) || seq < 0) return `seq ${seq} is not a non-negative integer`;
  if (kind !== journalSegmentEndKind && (kind === journalRecordKinds.baseline) !== (seq === 0)) {
    return `a ${kindName} record cannot have seq ${seq} (seq 0 is for baseline records only)`;
  }
  if (!Number.isSafeInteger(timeUs) || timeUs < 0) return `time ${timeUs} µs is not a non-negative integer`;
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) {
    return `offset ${offsetBytes} is not a non-negative integer`;
  }
  const payloadBytesMax = journalRecordPayloadBytesMax(kind);
  if (!Number.isSafeInteger(payloadLengthBytes) || payloadLengthBytes < 0 || payloadLengthBytes > payloadBytesMax) {
    return `payload length ${payloadLengthBytes} is outside 0..${payloadBytesMax} for a ${kindName} record`;
  }
  if (isDataKind(kind)) {
    if (payloadLengthBytes === 0 || payloadLengthBytes % journalSectorBytes !== 0) {
      return `payload length ${payloadLengthBytes} of a ${kindName} record is not a positive multiple of ${journalSectorBytes}`;
    }
    if (offsetBytes % journalSectorBytes !== 0 || offsetBytes + payloadLengthBytes > limits.volumeBytesMax) {
      return `offset ${offsetBytes} of a ${kindName} record is not a multiple of ${journalSectorBytes} inside the largest volume`;
    }
  }
  if (header.payloadChecksum < 0n || header.payloadChecksum > 0xffff_ffff_ffff_ffffn) {
    return `payload checksum ${header.payloadChecksum} is not a u64`;
  }
  const address = header.durableAddressBytes;
  if (!Number.isSafeInteger(address) || address < 0 || address % journalRecordAlignBytes !== 0) {
    return `durable address ${address} is not a non-negative multiple of ${journalRecordAlignBytes}`;
  }
  return null;
}

/**
 * Encodes and decodes record headers in place, in a caller's buffer at a byte offset: no
 * allocation on the data path (one cached DataView per underlying buffer).
 */
export class JournalRecordCodec {
  readonly checksum: Checksum;
  #viewBuffer: ArrayBufferLike | null = null;
  #view: DataView = new DataView(new ArrayBuffer(0));

  constructor(checksum: Checksum) {
    this.checksum = checksum;
  }

  /**
   * Writes the 56 header bytes of `header` into `target` at `atBytes` and seals them with
   * the header checksum. The payload (and its zero padding) is the caller's to copy.
   * Invalid fields are a programmer error: the journal validates input before it encodes.
   */
  encodeHeader(header: JournalRecordHeader, target: Uint8Array, atBytes: number): void {
    const problem = journalRecordHeaderProblem(header);
    if (problem !== null) assert(false, `Cannot encode journal record header: ${problem}`);
    this.encodeHeaderUnsealed(header, target, atBytes);
    this.#seal(target, atBytes);
  }

  /**
   * Writes the header fields as {@link encodeHeader} does, but neither checks nor seals them:
   * for the journal's append path, which has just validated the fields (checking them again
   * cost ~0.2 µs a write) and seals every record once, with {@link stampDurableAddress}, when
   * its group is written (a seal here would be redone then). Until it is sealed the header
   * reads as invalid, never as a record.
   */
  encodeHeaderUnsealed(header: JournalRecordHeader, target: Uint8Array, atBytes: number): void {
    if (!(atBytes >= 0 && atBytes + journalRecordHeaderBytes <= target.length)) assert(false, `Header at ${atBytes} overruns the buffer`);
    const view = this.#viewOf(target);
    const at = target.byteOffset + atBytes;
    view.setUint32(at, journalRecordMagic, true);
    view.setUint8(at + 4, journalRecordVersion);
    view.setUint8(at + 5, header.kind);
    view.setUint16(at + 6, 0, true);
    view.setFloat64(at + 8, header.seq, true);
    view.setFloat64(at + 16, header.timeUs, true);
    view.setFloat64(at + 24, header.offsetBytes, true);
    view.setBigUint64(at + 32, header.payloadChecksum, true);
    view.setFloat64(at + durableAddressOffsetBytes, header.durableAddressBytes, true);
    view.setUint32(at + payloadLengthOffsetBytes, header.payloadLengthBytes, true);
    view.setUint32(at + headerChecksumOffsetBytes, 0, true);
  }

  /**
   * Writes the durable address of an encoded header and seals it, whether or not the address
   * changed (a header from {@link encodeHeaderUnsealed} has no seal yet).
   */
  stampDurableAddress(target: Uint8Array, atBytes: number, durableAddressBytes: number): void {
    assert(
      Number.isSafeInteger(durableAddressBytes) && durableAddressBytes >= 0 &&
        durableAddressBytes % journalRecordAlignBytes === 0,
      `Bad durable address ${durableAddressBytes}`,
    );
    this.#viewOf(target).setFloat64(target.byteOffset + atBytes + durableAddressOffsetBytes, durableAddressBytes, true);
    this.#seal(target, atBytes);
  }

  /**
   * Rewrites the durable address of an encoded header and reseals it (the journal stamps it
   * when the record's group is written, not when the record is appended).
   */
  setDurableAddress(target: Uint8Array, atBytes: number, durableAddressBytes: number): void {
    assert(
      Number.isSafeInteger(durableAddressBytes) && durableAddressBytes >= 0 &&
        durableAddressBytes % journalRecordAlignBytes === 0,
      `Bad durable address ${durableAddressBytes}`,
    );
    const view = this.#viewOf(target);
    const at = target.byteOffset + atBytes;
    if (view.getFloat64(at + durableAddressOffsetBytes, true) === durableAddressBytes) return;
    view.setFloat64(at + durableAddressOffsetBytes, durableAddressBytes, true);
    this.#seal(target, atBytes);
  }

  /** The payload length of an encoded (trusted) header, for walking a buffer of records. */
  payloadLengthAt(source: Uint8Array, atBytes: number): number {
    return this.#viewOf(source).getUint32(source.byteOffset + atBytes + payloadLengthOffsetBytes, true);
  }

  /**
   * Decodes the header at `atBytes` into `into` (or a new object) and validates it: magic,
   * version, header checksum, flags, and every field's range. The payload checksum is the
   * caller's to verify (it needs the payload). Throws `SyntaxError` saying what is wrong.
   */
  decodeHeader(source: Uint8Array, atBytes: number, into = createJournalRecordHeader()): JournalRecordHeader {
    const problem = this.tryDecodeHeader(source, atBytes, into);
    if (problem !== null) {
      throw new SyntaxError(`Cannot decode journal record header at byte ${atBytes}: ${problem}`);
    }
    return into;
  }

  /**
   * Like {@link decodeHeader} but returns why the header is invalid (or `null` when it is
   * valid) instead of throwing: recovery probes many positions that are not records.
   */
  tryDecodeHeader(source: Uint8Array, atBytes: number, into: JournalRecordHeader): string | null {
    if (!Number.isSafeInteger(atBytes) || atBytes < 0 || atBytes + journalRecordHeaderBytes > source.length) {
      const availableBytes = Math.max(0, source.length - Math.max(0, atBytes));
      return `${availableBytes} bytes given, ${journalRecordHeaderBytes} needed`;
    }
    const view = this.#viewOf(source);
    const at = source.byteOffset + atBytes;
    const magic = view.getUint32(at, true);
    if (magic !== journalRecordMagic) return `magic 0x${magic.toString(16)} is not "AJR1"`;
    const version = view.getUint8(at + 4);
    if (version !== journalRecordVersion) return `version ${version} is not ${journalRecordVersion}`;
    const storedChecksum = view.getUint32(at + headerChecksumOffsetBytes, true);
    const headerChecksum = this.#headerChecksum(source, atBytes);
    if (storedChecksum !== headerChecksum) {
      return `header checksum 0x${storedChecksum.toString(16)} does not match 0x${headerChecksum.toString(16)}`;
    }
    const flags = view.getUint16(at + 6, true);
    if (flags !== 0) return `flags 0x${flags.toString(16)} are not known to version ${journalRecordVersion}`;
    into.kind = view.getUint8(at + 5) as JournalStoredKind;
    into.seq = view.getFloat64(at + 8, true);
    into.timeUs = view.getFloat64(at + 16, true);
    into.offsetBytes = view.getFloat64(at + 24, true);
    into.payloadChecksum = view.getBigUint64(at + 32, true);
    into.durableAddressBytes = view.getFloat64(at + durableAddressOffsetBytes, true);
    into.payloadLengthBytes = view.getUint32(at + payloadLengthOffsetBytes, true);
    return journalRecordHeaderProblem(into);
  }

  #seal(target: Uint8Array, atBytes: number): void {
    const view = this.#viewOf(target);
    view.setUint32(target.byteOffset + atBytes + headerChecksumOffsetBytes, this.#headerChecksum(target, atBytes), true);
  }

  #headerChecksum(source: Uint8Array, atBytes: number): number {
    return xxh32(source, atBytes, headerChecksumOffsetBytes);
  }

  #viewOf(bytes: Uint8Array): DataView {
    if (bytes.buffer !== this.#viewBuffer) {
      this.#viewBuffer = bytes.buffer;
      this.#view = new DataView(bytes.buffer);
    }
    return this.#view;
  }
}
