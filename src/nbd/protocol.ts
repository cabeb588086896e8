/**
 * The NBD wire format (NetworkBlockDevice/nbd `doc/proto.md`, fixed newstyle with simple
 * replies): constants, pure encoders and decoders of the fixed-size structures, and a byte
 * queue with decoders that never buffer more than a capped length (pg-protocol's missing cap
 * is the bug avoided here). No I/O: the server feeds the queue, the decoders take whole
 * messages out of it, so tests can cut the stream at every byte.
 *
 * @example
 * ```ts
 * import { ByteQueue, decodeRequest, encodeRequest, nbdCommands } from "./protocol.ts";
 *
 * const queue = new ByteQueue();
 * const bytes = encodeRequest({ type: nbdCommands.read, cookie: 7n, offsetBytes: 0, lengthBytes: 512 });
 * queue.push(bytes.subarray(0, 10));
 * decodeRequest(queue, 4096); // undefined: needs more bytes
 * queue.push(bytes.subarray(10));
 * decodeRequest(queue, 4096); // { header: { type: 0, ... }, payloadDiscarded: false }
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";

/** `NBDMAGIC`, the first 8 bytes the server sends. */
export const nbdInitMagic = 0x4e42444d41474943n;
/** `IHAVEOPT`: the newstyle magic, sent by the server and in front of every option. */
export const nbdOptionMagic = 0x49484156454f5054n;
/** Magic of every option reply. */
export const nbdOptionReplyMagic = 0x3e889045565a9n;
/** Magic of a transmission request. */
export const nbdRequestMagic = 0x25609513;
/** Magic of a simple reply. */
export const nbdSimpleReplyMagic = 0x67446698;

/** Handshake flags (server, 16 bits). */
export const nbdHandshakeFlags = {
  fixedNewstyle: 1 << 0,
  noZeroes: 1 << 1,
} as const;

/** Client flags (32 bits); any other bit set makes the server hang up. */
export const nbdClientFlags = {
  fixedNewstyle: 1 << 0,
  noZeroes: 1 << 1,
} as const;

/** Option codes. */
export const nbdOptions = {
  exportName: 1,
  abort: 2,
  list: 3,
  peekExport: 4,
  startTls: 5,
  info: 6,
  go: 7,
  structuredReply: 8,
  listMetaContext: 9,
  setMetaContext: 10,
  extendedHeaders: 11,
} as const;

const replyErrorBit = 2 ** 31;

/** Option reply types; the errors have bit 31 set. */
export const nbdOptionReplies = {
  ack: 1,
  server: 2,
  info: 3,
  metaContext: 4,
  errorUnsupported: replyErrorBit + 1,
  errorPolicy: replyErrorBit + 2,
  errorInvalid: replyErrorBit + 3,
  errorPlatform: replyErrorBit + 4,
  errorTlsRequired: replyErrorBit + 5,
  errorUnknown: replyErrorBit + 6,
  errorShutdown: replyErrorBit + 7,
  errorBlockSizeRequired: replyErrorBit + 8,
  errorTooBig: replyErrorBit + 9,
} as const;

/** Information types of NBD_OPT_INFO / NBD_OPT_GO and NBD_REP_INFO. */
export const nbdInfoTypes = {
  export: 0,
  name: 1,
  description: 2,
  blockSize: 3,
} as const;

/** Transmission flags (16 bits). */
export const nbdTransmissionFlags = {
  hasFlags: 1 << 0,
  readOnly: 1 << 1,
  sendFlush: 1 << 2,
  sendFua: 1 << 3,
  rotational: 1 << 4,
  sendTrim: 1 << 5,
  sendWriteZeroes: 1 << 6,
  sendDf: 1 << 7,
  canMultiConn: 1 << 8,
  sendResize: 1 << 9,
  sendCache: 1 << 10,
  sendFastZero: 1 << 11,
} as const;

/** Request types. */
export const nbdCommands = {
  read: 0,
  write: 1,
  disconnect: 2,
  flush: 3,
  trim: 4,
  cache: 5,
  writeZeroes: 6,
  blockStatus: 7,
  resize: 8,
} as const;

/** Command flags (16 bits). */
export const nbdCommandFlags = {
  fua: 1 << 0,
  noHole: 1 << 1,
  df: 1 << 2,
  reqOne: 1 << 3,
  fastZero: 1 << 4,
  payloadLength: 1 << 5,
} as const;

/** Error values of a reply (the document's fixed set, errno-like numbers). */
export const nbdErrors = {
  none: 0,
  permission: 1, // EPERM
  io: 5, // EIO
  noMemory: 12, // ENOMEM
  invalid: 22, // EINVAL
  noSpace: 28, // ENOSPC
  overflow: 75, // EOVERFLOW
  notSupported: 95, // ENOTSUP
  shutdown: 108, // ESHUTDOWN
} as const;

/** One of {@link nbdErrors}. */
export type NbdError = (typeof nbdErrors)[keyof typeof nbdErrors];

/** Bytes of the server's greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export const greetingBytes = 18;
/** Bytes of the client flags. */
export const clientFlagsBytes = 4;
/** Bytes of an option header: IHAVEOPT, option, data length. */
export const optionHeaderBytes = 16;
/** Bytes of an option reply header. */
export const optionReplyHeaderBytes = 20;
/** Bytes of a request header. */
export const requestHeaderBytes = 28;
/** Bytes of a simple reply header. */
export const simpleReplyHeaderBytes = 16;
/** Reserved zeros after the NBD_OPT_EXPORT_NAME reply, unless NO_ZEROES was agreed. */
export const exportNameZeroBytes = 124;

/**
 * The peer broke the protocol in a way the stream cannot recover from (bad magic, unknown
 * client flags): the connection must be dropped.
 */
export class NbdProtocolError extends Error {
  override name = "NbdProtocolError";
}

// ---------------------------------------------------------------------------------------
// 64-bit fields: offsets and sizes stay numbers (exact up to 2^53, past any device size).

function setUint64(view: DataView, atBytes: number, value: number): void {
  view.setUint32(atBytes, Math.floor(value / 2 ** 32));
  view.setUint32(atBytes + 4, value % 2 ** 32);
}

/**
 * Reads a 64-bit unsigned number. Values past 2^53 come out rounded, but still at least
 * 2^53, which is past every device, so range checks stay right.
 */
function getUint64(view: DataView, atBytes: number): number {
  return view.getUint32(atBytes) * 2 ** 32 + view.getUint32(atBytes + 4);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------
// Handshake

/** The server's greeting, with NBD_FLAG_FIXED_NEWSTYLE and NBD_FLAG_NO_ZEROES. */
export function encodeGreeting(): Uint8Array {
  const bytes = new Uint8Array(greetingBytes);
  const view = viewOf(bytes);
  view.setBigUint64(0, nbdInitMagic);
  view.setBigUint64(8, nbdOptionMagic);
  view.setUint16(16, nbdHandshakeFlags.fixedNewstyle | nbdHandshakeFlags.noZeroes);
  return bytes;
}

/**
 * Decodes the client flags.
 *
 * @throws {NbdProtocolError} when a flag the server did not offer is set (the document:
 *   "the server MUST drop the TCP connection").
 */
export function decodeClientFlags(bytes: Uint8Array): number {
  const flags = viewOf(bytes).getUint32(0);
  const known = nbdClientFlags.fixedNewstyle | nbdClientFlags.noZeroes;
  if ((flags & ~known) !== 0) {
    throw new NbdProtocolError(`Cannot accept client flags 0x${flags.toString(16)}: unknown bits are set`);
  }
  return flags;
}

/** An option header. */
export interface OptionHeader {
  readonly option: number;
  readonly dataBytes: number;
}

/**
 * Decodes an option header.
 *
 * @throws {NbdProtocolError} when the magic is not IHAVEOPT.
 */
export function decodeOptionHeader(bytes: Uint8Array): OptionHeader {
  const view = viewOf(bytes);
  const magic = view.getBigUint64(0);
  if (magic !== nbdOptionMagic) {
    throw new NbdProtocolError(`Cannot read an option: magic 0x${magic.toString(16)} is not IHAVEOPT`);
  }
  return { option: view.getUint32(8), dataBytes: view.getUint32(12) };
}

/** Encodes an option header and its data (for clients and tests). */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(optionHeaderBytes + data.length);
  const view = viewOf(bytes);
  view.setBigUint64(0, nbdOptionMagic);
  view.setUint32(8, option);
  view.setUint32(12, data.length);
  bytes.set(data, optionHeaderBytes);
  return bytes;
}

/** Encodes an option reply. */
export function encodeOptionReply(option: number, replyType: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(optionReplyHeaderBytes + data.length);
  const view = viewOf(bytes);
  view.setBigUint64(0, nbdOptionReplyMagic);
  view.setUint32(8, option);
  view.setUint32(12, replyType);
  view.setUint32(16, data.length);
  bytes.set(data, optionReplyHeaderBytes);
  return bytes;
}

/** Encodes an option reply whose data is a message for a human (errors). */
export function encodeOptionErrorReply(option: number, replyType: number, message: string): Uint8Array {
  return encodeOptionReply(option, replyType, utf8Encoder.encode(message));
}

/** The reply to NBD_OPT_EXPORT_NAME: size, transmission flags, and maybe 124 zeros. */
export function encodeExportNameReply(sizeBytes: number, transmissionFlags: number, noZeroes: boolean): Uint8Array {
  const bytes = new Uint8Array(10 + (noZeroes ? 0 : exportNameZeroBytes));
  const view = viewOf(bytes);
  setUint64(view, 0, sizeBytes);
  view.setUint16(8, transmissionFlags);
  return bytes;
}

/** Data of an NBD_REP_SERVER reply: name length, name, description. */
export function encodeServerListing(name: string, description = ""): Uint8Array {
  const nameBytes = utf8Encoder.encode(name);
  const descriptionBytes = utf8Encoder.encode(description);
  const bytes = new Uint8Array(4 + nameBytes.length + descriptionBytes.length);
  viewOf(bytes).setUint32(0, nameBytes.length);
  bytes.set(nameBytes, 4);
  bytes.set(descriptionBytes, 4 + nameBytes.length);
  return bytes;
}

/** Data of NBD_REP_INFO / NBD_INFO_EXPORT. */
export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = viewOf(bytes);
  view.setUint16(0, nbdInfoTypes.export);
  setUint64(view, 2, sizeBytes);
  view.setUint16(10, transmissionFlags);
  return bytes;
}

/** Data of NBD_REP_INFO / NBD_INFO_BLOCK_SIZE. */
export function encodeInfoBlockSize(minimumBytes: number, preferredBytes: number, maximumBytes: number): Uint8Array {
  const bytes = new Uint8Array(14);
  const view = viewOf(bytes);
  view.setUint16(0, nbdInfoTypes.blockSize);
  view.setUint32(2, minimumBytes);
  view.setUint32(6, preferredBytes);
  view.setUint32(10, maximumBytes);
  return bytes;
}

/** Data of NBD_REP_INFO / NBD_INFO_NAME or NBD_INFO_DESCRIPTION. */
export function encodeInfoText(infoType: number, text: string): Uint8Array {
  const textBytes = utf8Encoder.encode(text);
  const bytes = new Uint8Array(2 + textBytes.length);
  viewOf(bytes).setUint16(0, infoType);
  bytes.set(textBytes, 2);
  return bytes;
}

/** What NBD_OPT_INFO and NBD_OPT_GO ask for. */
export interface InfoRequest {
  readonly name: string;
  readonly infoTypes: readonly number[];
}

/**
 * Decodes the data of NBD_OPT_INFO / NBD_OPT_GO: name length, name, count, info types.
 *
 * @throws {SyntaxError} when the lengths do not add up, the name is too long, not UTF-8 or
 *   holds a NUL (the server answers NBD_REP_ERR_INVALID).
 */
export function decodeInfoRequest(data: Uint8Array, nameBytesMax: number): InfoRequest {
  const view = viewOf(data);
  if (data.length < 6) throw new SyntaxError(`Cannot read an info request of ${data.length} bytes: too short`);
  const nameBytes = view.getUint32(0);
  if (nameBytes > nameBytesMax) {
    throw new SyntaxError(`Cannot read an export name of ${nameBytes} bytes: more than ${nameBytesMax}`);
  }
  if (4 + nameBytes + 2 > data.length) {
    throw new SyntaxError(`Cannot read an info request: the name of ${nameBytes} bytes overruns the data`);
  }
  const name = decodeName(data.subarray(4, 4 + nameBytes));
  const count = view.getUint16(4 + nameBytes);
  const expectedBytes = 4 + nameBytes + 2 + count * 2;
  if (expectedBytes !== data.length) {
    throw new SyntaxError(
      `Cannot read an info request: ${count} info types need ${expectedBytes} bytes, the option has ${data.length}`,
    );
  }
  const infoTypes: number[] = [];
  for (let index = 0; index < count; index++) infoTypes.push(view.getUint16(4 + nameBytes + 2 + index * 2));
  return { name, infoTypes };
}

/** Encodes the data of NBD_OPT_INFO / NBD_OPT_GO (for clients and tests). */
export function encodeInfoRequest(name: string, infoTypes: readonly number[] = []): Uint8Array {
  const nameBytes = utf8Encoder.encode(name);
  const bytes = new Uint8Array(4 + nameBytes.length + 2 + infoTypes.length * 2);
  const view = viewOf(bytes);
  view.setUint32(0, nameBytes.length);
  bytes.set(nameBytes, 4);
  view.setUint16(4 + nameBytes.length, infoTypes.length);
  infoTypes.forEach((infoType, index) => view.setUint16(4 + nameBytes.length + 2 + index * 2, infoType));
  return bytes;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes an export name (NBD_OPT_EXPORT_NAME data or the name in INFO/GO).
 *
 * @throws {SyntaxError} when the bytes are not UTF-8 or hold a NUL.
 */
export function decodeName(bytes: Uint8Array): string {
  let name: string;
  try {
    name = utf8Decoder.decode(bytes);
  } catch (error) {
    throw new SyntaxError("Cannot read an export name: not UTF-8", { cause: error });
  }
  if (name.includes("\0")) throw new SyntaxError(`Cannot read export name "${name.replaceAll("\0", "\\0")}": it holds a NUL`);
  return name;
}

// ---------------------------------------------------------------------------------------
// Transmission

/** A request header. The cookie (handle) is opaque: echoed back as the 8 bytes received. */
export interface RequestHeader {
  readonly flags: number;
  readonly type: number;
  readonly cookie: Uint8Array;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * Decodes a request header (the cookie is copied).
 *
 * @throws {NbdProtocolError} when the magic is wrong: the stream cannot be resynchronized.
 */
export function decodeRequestHeader(bytes: Uint8Array): RequestHeader {
  const view = viewOf(bytes);
  const magic = view.getUint32(0);
  if (magic !== nbdRequestMagic) {
    throw new NbdProtocolError(`Cannot read a request: magic 0x${magic.toString(16)} is not 0x25609513`);
  }
  return {
    flags: view.getUint16(4),
    type: view.getUint16(6),
    cookie: bytes.slice(8, 16),
    offsetBytes: getUint64(view, 16),
    lengthBytes: view.getUint32(24),
  };
}

/** A request as a client sends it (for clients and tests); `payload` follows a WRITE. */
export interface RequestFields {
  readonly type: number;
  readonly flags?: number;
  readonly cookie: bigint;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly payload?: Uint8Array;
}

/** Encodes a request header and its payload, if any. */
export function encodeRequest(fields: RequestFields): Uint8Array {
  const payload = fields.payload ?? new Uint8Array(0);
  const bytes = new Uint8Array(requestHeaderBytes + payload.length);
  const view = viewOf(bytes);
  view.setUint32(0, nbdRequestMagic);
  view.setUint16(4, fields.flags ?? 0);
  view.setUint16(6, fields.type);
  view.setBigUint64(8, fields.cookie);
  setUint64(view, 16, fields.offsetBytes);
  view.setUint32(24, fields.lengthBytes);
  bytes.set(payload, requestHeaderBytes);
  return bytes;
}

/** Writes a simple reply header into the first 16 bytes of `target`. */
export function encodeSimpleReplyHeader(target: Uint8Array, errorValue: number, cookie: Uint8Array): void {
  const view = viewOf(target);
  view.setUint32(0, nbdSimpleReplyMagic);
  view.setUint32(4, errorValue);
  target.set(cookie, 8);
}

/** A simple reply header, decoded (for clients and tests). */
export interface SimpleReplyHeader {
  readonly errorValue: number;
  readonly cookie: bigint;
}

/**
 * Decodes a simple reply header (for clients and tests).
 *
 * @throws {NbdProtocolError} when the magic is wrong.
 */
export function decodeSimpleReplyHeader(bytes: Uint8Array): SimpleReplyHeader {
  const view = viewOf(bytes);
  const magic = view.getUint32(0);
  if (magic !== nbdSimpleReplyMagic) {
    throw new NbdProtocolError(`Cannot read a reply: magic 0x${magic.toString(16)} is not 0x67446698`);
  }
  return { errorValue: view.getUint32(4), cookie: view.getBigUint64(8) };
}

// ---------------------------------------------------------------------------------------
// The byte queue and the decoders that take whole messages out of it

/**
 * Received bytes waiting to be decoded. `push` copies (a connection lends its chunks), and
 * `discard` drops bytes as they arrive without buffering them (an oversize payload). The
 * queue holds only what its owner pushed: the decoders below never ask it to hold more than
 * a header plus a capped payload, so an owner that pushes only while a decoder needs more
 * bytes keeps it bounded by that cap plus one chunk.
 */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Bytes of `#chunks[0]` already consumed. */
  #headBytes = 0;
  #lengthBytes = 0;
  #discardBytes = 0;

  /** Bytes buffered and not yet taken. */
  get lengthBytes(): number {
    return this.#lengthBytes;
  }

  /** Bytes still to be dropped as they arrive. */
  get discardPendingBytes(): number {
    return this.#discardBytes;
  }

  /** Appends a copy of `chunk`, less any bytes still to be discarded. */
  push(chunk: Uint8Array): void {
    let piece = chunk;
    if (this.#discardBytes > 0) {
      const dropBytes = Math.min(this.#discardBytes, piece.length);
      this.#discardBytes -= dropBytes;
      piece = piece.subarray(dropBytes);
    }
    if (piece.length === 0) return;
    this.#chunks.push(piece.slice());
    this.#lengthBytes += piece.length;
  }

  /** The next `lengthBytes` bytes without consuming them, or undefined if not all here. */
  peek(lengthBytes: number): Uint8Array | undefined {
    if (lengthBytes > this.#lengthBytes) return undefined;
    const first = this.#chunks[0];
    if (first !== undefined && first.length - this.#headBytes >= lengthBytes) {
      return first.subarray(this.#headBytes, this.#headBytes + lengthBytes);
    }
    const bytes = new Uint8Array(lengthBytes);
    let filledBytes = 0;
    let headBytes = this.#headBytes;
    for (const chunk of this.#chunks) {
      if (filledBytes === lengthBytes) break;
      const piece = chunk.subarray(headBytes, headBytes + lengthBytes - filledBytes);
      bytes.set(piece, filledBytes);
      filledBytes += piece.length;
      headBytes = 0;
    }
    return bytes;
  }

  /**
   * Takes the next `lengthBytes` bytes, or undefined if not all here. The result is owned by
   * the caller (the queue's own copy, never the connection's buffer).
   */
  take(lengthBytes: number): Uint8Array | undefined {
    const bytes = this.peek(lengthBytes);
    if (bytes !== undefined) this.#consume(lengthBytes);
    return bytes;
  }

  /** Drops the next `lengthBytes` bytes: those buffered now, the rest as they arrive. */
  discard(lengthBytes: number): void {
    const bufferedBytes = Math.min(lengthBytes, this.#lengthBytes);
    this.#consume(bufferedBytes);
    this.#discardBytes += lengthBytes - bufferedBytes;
  }

  #consume(lengthBytes: number): void {
    let leftBytes = lengthBytes;
    this.#lengthBytes -= lengthBytes;
    while (leftBytes > 0) {
      const first = this.#chunks[0];
      const availableBytes = first.length - this.#headBytes;
      if (availableBytes > leftBytes) {
        this.#headBytes += leftBytes;
        return;
      }
      leftBytes -= availableBytes;
      this.#chunks.shift();
      this.#headBytes = 0;
    }
    if (this.#chunks[0]?.length === this.#headBytes) {
      this.#chunks.shift();
      this.#headBytes = 0;
    }
  }
}

/** An option taken from the queue: its data, or the fact that it was too long to keep. */
export type DecodedOption =
  | { readonly option: number; readonly data: Uint8Array; readonly oversize: false }
  | { readonly option: number; readonly dataBytes: number; readonly oversize: true };

/**
 * Takes the next option, or returns undefined until all of it is here. Data longer than
 * `dataBytesMax` is discarded as it arrives (the header is taken at once) and reported as
 * `oversize`, so the server can answer with an error and read on.
 *
 * @throws {NbdProtocolError} when the magic is wrong.
 */
export function decodeOption(queue: ByteQueue, dataBytesMax: number): DecodedOption | undefined {
  const headerBytes = queue.peek(optionHeaderBytes);
  if (headerBytes === undefined) return undefined;
  const header = decodeOptionHeader(headerBytes);
  if (header.dataBytes > dataBytesMax) {
    queue.discard(optionHeaderBytes);
    queue.discard(header.dataBytes);
    return { option: header.option, dataBytes: header.dataBytes, oversize: true };
  }
  if (queue.lengthBytes < optionHeaderBytes + header.dataBytes) return undefined;
  queue.discard(optionHeaderBytes);
  const data = queue.take(header.dataBytes)!;
  return { option: header.option, data, oversize: false };
}

/** A request taken from the queue, with its WRITE payload unless that was too long. */
export interface DecodedRequest {
  readonly header: RequestHeader;
  /** The WRITE payload (owned by the caller); absent for other commands or when discarded. */
  readonly payload?: Uint8Array;
  /** A WRITE payload longer than the maximum, dropped as it streams in. */
  readonly payloadDiscarded: boolean;
}

/**
 * Takes the next request, or returns undefined until all of it is here. A WRITE payload of
 * at most `payloadBytesMax` is buffered whole; a longer one is discarded as it arrives and
 * the request is returned at once with `payloadDiscarded` (the server answers EOVERFLOW).
 *
 * @throws {NbdProtocolError} when the magic is wrong.
 */
export function decodeRequest(queue: ByteQueue, payloadBytesMax: number): DecodedRequest | undefined {
  const headerBytes = queue.peek(requestHeaderBytes);
  if (headerBytes === undefined) return undefined;
  const header = decodeRequestHeader(headerBytes);
  if (header.type !== nbdCommands.write) {
    queue.discard(requestHeaderBytes);
    return { header, payloadDiscarded: false };
  }
  if (header.lengthBytes > payloadBytesMax) {
    queue.discard(requestHeaderBytes);
    queue.discard(header.lengthBytes);
    return { header, payloadDiscarded: true };
  }
  if (queue.lengthBytes < requestHeaderBytes + header.lengthBytes) return undefined;
  queue.discard(requestHeaderBytes);
  const payload = queue.take(header.lengthBytes)!;
  return { header, payload, payloadDiscarded: false };
}

/** Where a {@link RequestDecoder} puts a WRITE payload: a buffer of exactly `lengthBytes`. */
export type PayloadAllocator = (lengthBytes: number) => Uint8Array;

const emptyPayload = new Uint8Array(0);

/**
 * The smallest payload remainder {@link RequestDecoder.readTarget} names. Below it, one read
 * into the connection's own buffer takes the rest with the requests after it, and copying a
 * few KiB costs less than a read of its own (fio 4 KiB writes send whole requests back to
 * back).
 */
export const directReadBytesMin = 64 * 1024;

/**
 * The transmission-phase decoder: each pushed chunk is decoded at once into the requests it
 * completes, and nothing of the chunk is kept (a connection lends its chunks). Header bytes
 * are read in place when a header lies inside one chunk; a WRITE payload is copied once,
 * straight from the chunks into a buffer of the payload's exact length from `allocate` (the
 * server's {@link BufferPool}), never into an intermediate queue. Between pushes the decoder
 * holds at most a partial header (27 bytes) and one partial payload (at most
 * `payloadBytesMax`); a longer WRITE payload is dropped as it arrives and its request
 * decoded with `payloadDiscarded` at once, as {@link decodeRequest} does.
 *
 * The requests one chunk completes wait in order for {@link next}; they are bounded by the
 * chunk (at least 28 bytes each), and the owner pushes the next chunk only once they are
 * taken. A bad magic stops decoding; `next` throws it after the requests before it.
 *
 * **Reading in place.** {@link readTarget} names where the stream's next bytes belong when a
 * read may put them there at once: the rest of a payload of at least
 * {@link directReadBytesMin} bytes, and, after such a WRITE, the next request's header (so
 * that read ends where the next payload begins). A pushed chunk that lies exactly there
 * (the first bytes of the view given) is taken where it is, without a copy. A connection
 * that reads into these views (`Connection.sinkTo`) has the kernel copy a large WRITE's
 * payload straight into its buffer. A payload the decoder never completes is never handed
 * on (the owner must not give it back to a pool either): a read may still land in it.
 *
 * @example
 * ```ts
 * import { encodeRequest, nbdCommands, RequestDecoder } from "./protocol.ts";
 *
 * const decoder = new RequestDecoder({ payloadBytesMax: 4096, allocate: (lengthBytes) => new Uint8Array(lengthBytes) });
 * const bytes = encodeRequest({ type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: 512, payload: new Uint8Array(512) });
 * decoder.push(bytes.subarray(0, 100));
 * decoder.next(); // undefined: the payload is not all here
 * decoder.push(bytes.subarray(100));
 * decoder.next(); // { header: { type: 1, ... }, payload: Uint8Array(512), payloadDiscarded: false }
 * ```
 */
export class RequestDecoder {
  readonly #payloadBytesMax: number;
  readonly #allocate: PayloadAllocator;
  /** A header that spans chunks, as far as it has arrived. */
  readonly #headerBytes = new Uint8Array(requestHeaderBytes);
  #headerFilledBytes = 0;
  /** The WRITE whose payload is arriving, the payload's buffer and how much of it is here. */
  #payloadHeader: RequestHeader | null = null;
  #payload: Uint8Array = emptyPayload;
  #payloadFilledBytes = 0;
  #discardBytes = 0;
  readonly #decoded: DecodedRequest[] = [];
  #decodedHead = 0;
  /** Payload bytes of the requests decoded and not yet taken. */
  #pendingPayloadBytes = 0;
  #failure: NbdProtocolError | null = null;
  /** The last request was a WRITE whose payload was read in place: its successor's header is too. */
  #headerInPlace = false;

  constructor(options: { readonly payloadBytesMax: number; readonly allocate: PayloadAllocator }) {
    this.#payloadBytesMax = options.payloadBytesMax;
    this.#allocate = options.allocate;
  }

  /** Requests decoded and not yet taken. */
  get pendingCount(): number {
    return this.#decoded.length - this.#decodedHead;
  }

  /** Payload bytes the requests decoded and not yet taken hold. */
  get pendingPayloadBytes(): number {
    return this.#pendingPayloadBytes;
  }

  /** A bad magic stopped decoding (`next` throws it once the requests before it are taken). */
  get failed(): boolean {
    return this.#failure !== null;
  }

  /**
   * Where the stream's next bytes belong, for a read that may put them there (the module doc:
   * reading in place), or null. The view stays valid until the next {@link push}.
   */
  readTarget(): Uint8Array | null {
    if (this.#failure !== null || this.#discardBytes > 0) return null;
    if (this.#payloadHeader !== null) {
      const remainingBytes = this.#payload.length - this.#payloadFilledBytes;
      return remainingBytes >= directReadBytesMin ? this.#payload.subarray(this.#payloadFilledBytes) : null;
    }
    return this.#headerInPlace ? this.#headerBytes.subarray(this.#headerFilledBytes) : null;
  }

  /** Decodes what `chunk` completes; keeps no reference to it. */
  push(chunk: Uint8Array): void {
    let atBytes = 0;
    while (atBytes < chunk.length && this.#failure === null) {
      const availableBytes = chunk.length - atBytes;
      if (this.#discardBytes > 0) {
        const dropBytes = Math.min(this.#discardBytes, availableBytes);
        this.#discardBytes -= dropBytes;
        atBytes += dropBytes;
      } else if (this.#payloadHeader !== null) {
        const pieceBytes = Math.min(this.#payload.length - this.#payloadFilledBytes, availableBytes);
        const inPlace = atBytes === 0 && isAt(chunk, this.#payload, this.#payloadFilledBytes);
        if (inPlace) {
          this.#headerInPlace = true;
        } else {
          this.#payload.set(chunk.subarray(atBytes, atBytes + pieceBytes), this.#payloadFilledBytes);
        }
        this.#payloadFilledBytes += pieceBytes;
        atBytes += pieceBytes;
        if (this.#payloadFilledBytes === this.#payload.length) {
          this.#decoded.push({ header: this.#payloadHeader, payload: this.#payload, payloadDiscarded: false });
          this.#pendingPayloadBytes += this.#payload.length;
          this.#payloadHeader = null;
          this.#payload = emptyPayload;
          this.#payloadFilledBytes = 0;
        }
      } else if (this.#headerFilledBytes === 0 && availableBytes >= requestHeaderBytes) {
        // The usual case: the header lies inside the chunk and is read where it is.
        this.#start(chunk.subarray(atBytes, atBytes + requestHeaderBytes));
        atBytes += requestHeaderBytes;
      } else {
        const pieceBytes = Math.min(requestHeaderBytes - this.#headerFilledBytes, availableBytes);
        if (!(atBytes === 0 && isAt(chunk, this.#headerBytes, this.#headerFilledBytes))) {
          this.#headerBytes.set(chunk.subarray(atBytes, atBytes + pieceBytes), this.#headerFilledBytes);
        }
        this.#headerFilledBytes += pieceBytes;
        atBytes += pieceBytes;
        if (this.#headerFilledBytes === requestHeaderBytes) {
          this.#headerFilledBytes = 0;
          this.#start(this.#headerBytes);
        }
      }
    }
  }

  /**
   * The next decoded request, or undefined until a push completes one.
   *
   * @throws {NbdProtocolError} once the requests before a bad magic are taken.
   */
  next(): DecodedRequest | undefined {
    if (this.#decodedHead < this.#decoded.length) {
      const request = this.#decoded[this.#decodedHead++];
      if (request.payload !== undefined) this.#pendingPayloadBytes -= request.payload.length;
      if (this.#decodedHead === this.#decoded.length) {
        this.#decoded.length = 0;
        this.#decodedHead = 0;
      }
      return request;
    }
    if (this.#failure !== null) throw this.#failure;
    return undefined;
  }

  /** Starts the request whose header is `headerBytes` (read before the next push). */
  #start(headerBytes: Uint8Array): void {
    this.#headerInPlace = false;
    let header: RequestHeader;
    try {
      header = decodeRequestHeader(headerBytes);
    } catch (error) {
      if (!(error instanceof NbdProtocolError)) throw error;
      this.#failure = error;
      return;
    }
    if (header.type !== nbdCommands.write) {
      this.#decoded.push({ header, payloadDiscarded: false });
    } else if (header.lengthBytes > this.#payloadBytesMax) {
      this.#discardBytes = header.lengthBytes;
      this.#decoded.push({ header, payloadDiscarded: true });
    } else if (header.lengthBytes === 0) {
      this.#decoded.push({ header, payload: emptyPayload, payloadDiscarded: false });
    } else {
      this.#payloadHeader = header;
      this.#payload = this.#allocate(header.lengthBytes);
      assert(this.#payload.length === header.lengthBytes, "A payload buffer has the payload's length");
      this.#payloadFilledBytes = 0;
    }
  }
}

/** Whether `chunk` begins exactly at `buffer[atBytes]` (it was read there in place). */
function isAt(chunk: Uint8Array, buffer: Uint8Array, atBytes: number): boolean {
  return chunk.buffer === buffer.buffer && chunk.byteOffset === buffer.byteOffset + atBytes;
}
