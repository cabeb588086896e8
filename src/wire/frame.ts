/**
 * Wire frames: a fixed 20-byte little-endian header, one CBOR body, then raw payload bytes.
 *
 * | offset | size | field            | meaning                                                    |
 * | -----: | ---: | ---------------- | ---------------------------------------------------------- |
 * |      0 |    2 | magic u16        | `0x5741` (bytes 0x41 0x57, "AW": Anytime Wire)             |
 * |      2 |    1 | version u8       | frame format version, 1                                    |
 * |      3 |    1 | kind u8          | message kind ({@link messageKinds})                         |
 * |      4 |    4 | bodyBytes u32    | length of the CBOR body that follows the header            |
 * |      8 |    4 | payloadBytes u32 | length of the raw payload that follows the body            |
 * |     12 |    4 | bodyCheck u32    | XXH32 (seed 0) of the CBOR body                            |
 * |     16 |    4 | headerCheck u32  | XXH32 (seed 0) of header bytes 0..15                       |
 *
 * The body check closes a hole the payload checksums leave: a WRITE entry's data carries the
 * XXH64 the switch computed, but its offset, length and seq live in the body, and a flipped
 * bit there would land good data in the wrong place. The body is checked when it is complete
 * (its length is capped first), so a frame with a damaged body is refused whole.
 *
 * The payload travels by reference: {@link encodeFrame} returns it as its own chunk, never
 * copied into the CBOR buffer (DESIGN.md, "Wire protocol": copying a 64 KiB payload into a
 * CBOR buffer costs ~30x the header work).
 *
 * {@link FrameDecoder} is a byte parser with no I/O (pg-protocol's parser, with the cap it
 * lacks): every length is checked against its kind's limit as soon as the 20 header bytes are
 * known, before a byte of the rest is buffered.
 *
 * Both checks are XXH32 in plain JavaScript (`core/xxh32.ts`), not through the WebAssembly
 * checksum: for a header the call into WebAssembly costs more than the hash, bodies are small
 * (a 4096-entry WRITE is ~300 KiB), and it keeps encoding and decoding synchronous with no
 * set-up.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./frame.ts";
 * import { messageKinds } from "./message_kinds.ts";
 *
 * const chunks = encodeFrame(messageKinds.readReply, { requestId: 1 }, new Uint8Array(4096));
 * const decoder = new FrameDecoder();
 * for (const chunk of chunks) {
 *   decoder.push(chunk);
 *   for (const frame of decoder) console.log(frame.kind, frame.body.length, frame.payload.length);
 * }
 * ```
 */
import { assert } from "../core/assert.ts";
import { encodeCbor } from "./cbor.ts";
import { ProtocolError } from "./errors.ts";
import { type MessageKind, messageKindLimits, messageKindName } from "./message_kinds.ts";
import { wireLimits } from "../core/limits.ts";
import { xxh32 } from "../core/xxh32.ts";

export const frameMagic = 0x5741;
export const frameVersion = 1;
export const frameHeaderBytes = 20;
/** Where the body check sits. */
const bodyCheckAtBytes = 12;
/** Header bytes covered by the header check (which follows them). */
const headerCheckedBytes = 16;

/**
 * One decoded frame. `body` (CBOR, not yet decoded) and `payload` are views into the bytes
 * given to {@link FrameDecoder.push} when the frame arrived inside one chunk, or into a buffer
 * of the frame's own when it spanned chunks. See {@link FrameDecoder} for how long they live.
 */
export interface Frame {
  readonly kind: MessageKind;
  readonly body: Uint8Array;
  readonly payload: Uint8Array;
}

const emptyBytes = new Uint8Array(0);
const emptyView = new DataView(emptyBytes.buffer);

/**
 * Encodes a frame: returns the header and CBOR body in one new buffer, followed by `payload`
 * itself (not copied) when there is one. Pass the array to `Connection.send` as is.
 *
 * Lengths over the kind's limits are a programmer error (assert): senders split batches
 * before they get here. Validating the body's shape is `messages.ts`'s job.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frame.ts";
 * import { messageKinds } from "./message_kinds.ts";
 * const [headerAndBody] = encodeFrame(messageKinds.bye, { reason: "shutting down" });
 * ```
 */
export function encodeFrame(kind: MessageKind, body: unknown, payload: Uint8Array = emptyBytes): Uint8Array[] {
  const kindLimits = messageKindLimits(kind);
  if (kindLimits === undefined) assert(false, `Cannot encode a frame of unknown kind ${kind}`);
  const bodyBytes = encodeCbor(body);
  const name = messageKindName(kind);
  assert(
    bodyBytes.length <= kindLimits.bodyBytesMax,
    `Cannot encode a ${name} frame: its body of ${bodyBytes.length} bytes is over the ${kindLimits.bodyBytesMax}-byte limit`,
  );
  assert(
    payload.length <= kindLimits.payloadBytesMax && bodyBytes.length + payload.length <= wireLimits.frameBytesMax,
    `Cannot encode a ${name} frame: ${bodyBytes.length} body and ${payload.length} payload bytes are over its limits`,
  );
  const frame = new Uint8Array(frameHeaderBytes + bodyBytes.length);
  frame.set(bodyBytes, frameHeaderBytes);
  writeFrameHeader(frame, { kind, bodyBytes: bodyBytes.length, payloadBytes: payload.length });
  return payload.length === 0 ? [frame] : [frame, payload];
}

/**
 * Writes the 20-byte header at the start of `frame`, whose body (`bodyBytes` of it) already
 * follows the header: for senders that build frames in buffers of their own (the switch's
 * WRITE batches, `write_batch.ts`) rather than through {@link encodeFrame}. The body check is
 * computed over `frame`'s body bytes. Limits are the caller's (asserted by `encodeFrame`).
 */
export function writeFrameHeader(
  frame: Uint8Array,
  fields: { kind: MessageKind; bodyBytes: number; payloadBytes: number },
): void {
  assert(frame.length >= frameHeaderBytes + fields.bodyBytes, "A frame buffer holds its header and body");
  const view = new DataView(frame.buffer, frame.byteOffset, frameHeaderBytes);
  view.setUint16(0, frameMagic, true);
  view.setUint8(2, frameVersion);
  view.setUint8(3, fields.kind);
  view.setUint32(4, fields.bodyBytes, true);
  view.setUint32(8, fields.payloadBytes, true);
  view.setUint32(bodyCheckAtBytes, xxh32(frame, frameHeaderBytes, fields.bodyBytes), true);
  view.setUint32(headerCheckedBytes, xxh32(frame, 0, headerCheckedBytes), true);
}

/**
 * Splits a byte stream into frames. Feed it the chunks as they arrive with {@link push}, then
 * take the frames that completed ({@link nextFrame}, or iterate); push the next chunk only
 * after taking them all.
 *
 * - Every header is checked (magic, version, header check, kind, lengths against the kind's
 *   limits and {@link wireLimits.frameBytesMax}) as soon as its 16 bytes are known, before
 *   anything after it is buffered: a header announcing 1 GiB fails at once, holding 16 bytes.
 * - Frames may be split at any byte, and a chunk may hold many frames.
 * - Lifetime rule: a frame that arrives inside one chunk is returned as views into that chunk
 *   (no copy, however large its payload); only a frame that spans chunks is copied, into a
 *   buffer of its own sized from its header (so bounded by the limits). The views are valid
 *   as long as the pushed chunk's bytes are: the decoder never writes into pushed chunks and
 *   never reuses a buffer it handed out, so the only risk is the chunk's owner (the transport)
 *   reusing it. Consumers that keep a frame's bytes beyond that must copy them, or construct
 *   the decoder with `copyFrames` (see the constructor).
 * - Errors are {@link ProtocolError}s. The first one kills the decoder: `push` throws it, and
 *   every later `push` throws the same error. Frames that completed before the fault in the
 *   same chunk can still be taken (they are valid frames, and delivering them makes the
 *   outcome the same however the stream was chunked).
 *
 * It checks frames, not messages: the CBOR body is decoded and validated by
 * `decodeMessage` (`messages.ts`).
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./frame.ts";
 * const decoder = new FrameDecoder();
 * decoder.push(new Uint8Array([0x41, 0x57])); // half a header: nothing to take yet
 * decoder.nextFrame(); // undefined
 * ```
 */
export class FrameDecoder implements Iterable<Frame> {
  readonly #copyFrames: boolean;
  /** Makes the lend-mode buffers ({@link lendFrames}). */
  #allocate: (lengthBytes: number) => Uint8Array = (lengthBytes) => new Uint8Array(lengthBytes);
  #fault: ProtocolError | null = null;
  /** Lend mode ({@link lendFrames}): frames live in the decoder's reused buffers until the next push. */
  #lend = false;
  /** Lend mode: the two buffers frames that span chunks are assembled in, used in turn. */
  readonly #spanBuffers: Uint8Array[] = [emptyBytes, emptyBytes];
  #spanBufferIndex = 0;
  /** Lend mode: where a pushed chunk's complete frames are copied (with `copyFrames`). */
  #chunkCopy: Uint8Array = emptyBytes;

  // Complete frames waiting to be taken: first a frame that spanned chunks (if one completed
  // in the last push), then the frames in #chunk from #chunkAtBytes to #chunkEndBytes.
  #spanned: Frame | null = null;
  #chunk: Uint8Array = emptyBytes;
  #chunkView: DataView = emptyView;
  #chunkAtBytes = 0;
  #chunkEndBytes = 0;

  // The frame in progress across chunks: its header bytes so far, then (once the header is
  // checked) a buffer for its body and payload.
  readonly #header = new Uint8Array(frameHeaderBytes);
  readonly #headerView = new DataView(this.#header.buffer);
  #headerFilledBytes = 0;
  #partial: Uint8Array | null = null;
  #partialFilledBytes = 0;
  #partialKind: MessageKind = 0 as MessageKind;
  #partialBodyBytes = 0;
  #partialBodyCheck = 0;

  // Fields of the last header checked (set by #checkHeader, to avoid an object per frame).
  #kind: MessageKind = 0 as MessageKind;
  #bodyBytes = 0;
  #payloadBytes = 0;
  #bodyCheck = 0;

  /**
   * With `copyFrames`, the complete frames found in a pushed chunk are copied out of it (one
   * copy of their bytes per push), so no frame views a caller's chunk: for a source whose
   * chunks are only lent (the `Connection` seam's rule: a receiver must not keep a view into
   * a chunk past its next `await`). Without it (the default), frames view the chunk.
   */
  constructor(options: { copyFrames?: boolean } = {}) {
    this.#copyFrames = options.copyFrames ?? false;
  }

  /**
   * Switches to lend mode: from now on a frame's `body` and `payload` are valid only until the
   * next {@link push} (so, in `FramedConnection`, until the next receive), because the decoder
   * reuses its buffers instead of allocating one per frame: two buffers for frames that span
   * chunks, used in turn (the frame completed in a push and the one started at its end never
   * share one), and one for the complete frames copied out of a chunk (`copyFrames`). Each
   * grows to the largest frame seen (at most the frame limits) and is kept: a consumer that
   * is done with every frame before it pushes again, as the appliance's WRITE loop is, then
   * makes no garbage per frame. Frames already taken keep the old rule.
   *
   * `allocate` makes those buffers (default `new Uint8Array`): the appliance passes
   * `Checksum.allocate`, so the payloads it checks are hashed where they were copied to.
   */
  lendFrames(allocate?: (lengthBytes: number) => Uint8Array): void {
    this.#lend = true;
    if (allocate !== undefined) this.#allocate = allocate;
  }

  /** The first error, once the decoder is dead; `null` while it is alive. */
  get fault(): ProtocolError | null {
    return this.#fault;
  }

  /**
   * Bytes held for a frame that has not completed: at most a header, or the part of a frame
   * received so far. Tests use it to prove oversize frames are refused before buffering.
   */
  get bufferedBytes(): number {
    return this.#partial === null ? this.#headerFilledBytes : frameHeaderBytes + this.#partialFilledBytes;
  }

  /** Bytes allocated for the frame in progress (its buffer is sized from the header). */
  get allocatedBytes(): number {
    return this.#partial === null ? 0 : this.#partial.length;
  }

  /**
   * Parses `chunk`: checks every header in it, notes the complete frames (views, no copy) and
   * buffers the incomplete frame at its end.
   *
   * `lentUntilNextPush`: the chunk's bytes stay unchanged until the next push (a chunk sent
   * held, `Connection.chunkHeld`). In lend mode nothing of it is then copied: its complete
   * frames are views into it even with `copyFrames`, and so is the payload of a frame whose
   * header and body came before when the whole payload is in this chunk (the switch's WRITE
   * batches arrive so in-process: the header and body, then the payload from its copy buffer).
   *
   * @throws {ProtocolError} on the first bad header (and on every call after it).
   */
  push(chunk: Uint8Array, lentUntilNextPush = false): void {
    if (this.#fault !== null) throw this.#fault;
    assert(
      this.#spanned === null && this.#chunkAtBytes === this.#chunkEndBytes,
      "Cannot push a chunk before the frames of the previous one are taken",
    );
    const inPlace = lentUntilNextPush && this.#lend;
    let atBytes = this.#continuePartial(chunk, inPlace);
    if (this.#fault !== null) throw this.#fault;
    if (chunk.length - atBytes < frameHeaderBytes) {
      this.#startPartial(chunk, atBytes);
      return;
    }
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const firstBytes = atBytes;
    while (chunk.length - atBytes >= frameHeaderBytes) {
      if (!this.#checkHeader(chunk, view, atBytes)) break;
      const frameBytes = frameHeaderBytes + this.#bodyBytes + this.#payloadBytes;
      if (chunk.length - atBytes < frameBytes) break;
      if (!this.#checkBody(chunk, atBytes + frameHeaderBytes, this.#bodyBytes, this.#bodyCheck)) break;
      atBytes += frameBytes;
    }
    if (atBytes > firstBytes && this.#copyFrames && this.#lend && !inPlace) {
      const lengthBytes = atBytes - firstBytes;
      if (this.#chunkCopy.length < lengthBytes) this.#chunkCopy = this.#allocate(grownBytes(lengthBytes));
      this.#chunkCopy.set(chunk.subarray(firstBytes, atBytes), 0);
      this.#chunk = this.#chunkCopy.subarray(0, lengthBytes);
      this.#chunkView = new DataView(this.#chunk.buffer, this.#chunk.byteOffset, lengthBytes);
      this.#chunkAtBytes = 0;
      this.#chunkEndBytes = lengthBytes;
    } else if (atBytes > firstBytes && this.#copyFrames && !inPlace) {
      this.#chunk = chunk.slice(firstBytes, atBytes);
      this.#chunkView = new DataView(this.#chunk.buffer);
      this.#chunkAtBytes = 0;
      this.#chunkEndBytes = atBytes - firstBytes;
    } else if (atBytes > firstBytes) {
      this.#chunk = chunk;
      this.#chunkView = view;
      this.#chunkAtBytes = firstBytes;
      this.#chunkEndBytes = atBytes;
    }
    if (this.#fault !== null) throw this.#fault;
    this.#startPartial(chunk, atBytes);
  }

  /** Takes the next complete frame, or returns `undefined` when none is waiting. */
  nextFrame(): Frame | undefined {
    if (this.#spanned !== null) {
      const frame = this.#spanned;
      this.#spanned = null;
      return frame;
    }
    if (this.#chunkAtBytes === this.#chunkEndBytes) {
      this.#releaseChunk();
      return undefined;
    }
    const view = this.#chunkView;
    const atBytes = this.#chunkAtBytes;
    const kind = view.getUint8(atBytes + 3) as MessageKind;
    const bodyBytes = view.getUint32(atBytes + 4, true);
    const payloadBytes = view.getUint32(atBytes + 8, true);
    const bodyAtBytes = atBytes + frameHeaderBytes;
    const payloadAtBytes = bodyAtBytes + bodyBytes;
    this.#chunkAtBytes = payloadAtBytes + payloadBytes;
    assert(this.#chunkAtBytes <= this.#chunkEndBytes, "A noted frame overruns its chunk");
    const frame: Frame = {
      kind,
      body: this.#chunk.subarray(bodyAtBytes, payloadAtBytes),
      payload: payloadBytes === 0 ? emptyBytes : this.#chunk.subarray(payloadAtBytes, this.#chunkAtBytes),
    };
    if (this.#chunkAtBytes === this.#chunkEndBytes) this.#releaseChunk();
    return frame;
  }

  *[Symbol.iterator](): Iterator<Frame> {
    for (;;) {
      const frame = this.nextFrame();
      if (frame === undefined) return;
      yield frame;
    }
  }

  /**
   * Feeds the start of `chunk` to the frame in progress; returns where whole frames start.
   * `inPlace`: a payload wholly in `chunk` after a complete body is taken as a view of it.
   */
  #continuePartial(chunk: Uint8Array, inPlace: boolean): number {
    let atBytes = 0;
    if (this.#partial === null && this.#headerFilledBytes > 0) {
      const takeBytes = Math.min(frameHeaderBytes - this.#headerFilledBytes, chunk.length);
      this.#header.set(chunk.subarray(0, takeBytes), this.#headerFilledBytes);
      this.#headerFilledBytes += takeBytes;
      atBytes = takeBytes;
      if (this.#headerFilledBytes < frameHeaderBytes) return atBytes;
      if (!this.#checkHeader(this.#header, this.#headerView, 0)) return atBytes;
      this.#allocatePartial();
    }
    if (inPlace && this.#partial !== null && this.#partialFilledBytes === this.#partialBodyBytes) {
      const payloadBytes = this.#partial.length - this.#partialBodyBytes;
      if (payloadBytes > 0 && chunk.length - atBytes >= payloadBytes) {
        this.#completePartial(chunk.subarray(atBytes, atBytes + payloadBytes));
        return atBytes + payloadBytes;
      }
    }
    if (this.#partial !== null) {
      const takeBytes = Math.min(this.#partial.length - this.#partialFilledBytes, chunk.length - atBytes);
      this.#partial.set(chunk.subarray(atBytes, atBytes + takeBytes), this.#partialFilledBytes);
      this.#partialFilledBytes += takeBytes;
      atBytes += takeBytes;
      if (this.#partialFilledBytes === this.#partial.length) this.#completePartial();
    }
    return atBytes;
  }

  /** Buffers the incomplete frame at the end of `chunk` (from `atBytes`). */
  #startPartial(chunk: Uint8Array, atBytes: number): void {
    const restBytes = chunk.length - atBytes;
    if (restBytes === 0) return;
    if (restBytes < frameHeaderBytes) {
      this.#header.set(chunk.subarray(atBytes), 0);
      this.#headerFilledBytes = restBytes;
      return;
    }
    // The loop in push stopped here after checking this header: the frame is incomplete.
    this.#header.set(chunk.subarray(atBytes, atBytes + frameHeaderBytes), 0);
    this.#headerFilledBytes = frameHeaderBytes;
    this.#allocatePartial();
    const partial = this.#partial;
    assert(partial !== null && restBytes - frameHeaderBytes < partial.length, "A complete frame was left partial");
    partial.set(chunk.subarray(atBytes + frameHeaderBytes), 0);
    this.#partialFilledBytes = restBytes - frameHeaderBytes;
  }

  /** Allocates the buffer of the frame whose header was just checked (its fields are set). */
  #allocatePartial(): void {
    this.#partialKind = this.#kind;
    this.#partialBodyBytes = this.#bodyBytes;
    this.#partialBodyCheck = this.#bodyCheck;
    const frameBytes = this.#bodyBytes + this.#payloadBytes;
    if (this.#lend) {
      const index = this.#spanBufferIndex;
      this.#spanBufferIndex = 1 - index;
      if (this.#spanBuffers[index].length < frameBytes) this.#spanBuffers[index] = this.#allocate(grownBytes(frameBytes));
      this.#partial = this.#spanBuffers[index].subarray(0, frameBytes);
    } else {
      this.#partial = new Uint8Array(frameBytes);
    }
    this.#partialFilledBytes = 0;
    if (this.#partial.length === 0) this.#completePartial();
  }

  /** Completes the frame in progress; its payload is `payload` when given, else in its buffer. */
  #completePartial(payload?: Uint8Array): void {
    const buffer = this.#partial;
    assert(buffer !== null && this.#spanned === null, "No frame to complete, or one not taken");
    if (!this.#checkBody(buffer, 0, this.#partialBodyBytes, this.#partialBodyCheck)) return;
    this.#spanned = {
      kind: this.#partialKind,
      body: buffer.subarray(0, this.#partialBodyBytes),
      payload: payload ?? (buffer.length === this.#partialBodyBytes ? emptyBytes : buffer.subarray(this.#partialBodyBytes)),
    };
    this.#partial = null;
    this.#partialFilledBytes = 0;
    this.#headerFilledBytes = 0;
  }

  #releaseChunk(): void {
    this.#chunk = emptyBytes;
    this.#chunkView = emptyView;
    this.#chunkAtBytes = 0;
    this.#chunkEndBytes = 0;
  }

  /**
   * Checks the header at `atBytes` and sets #kind, #bodyBytes, #payloadBytes. Returns false
   * (with #fault set) when it is bad.
   */
  #checkHeader(bytes: Uint8Array, view: DataView, atBytes: number): boolean {
    const magic = view.getUint16(atBytes, true);
    if (magic !== frameMagic) {
      return this.#fail(
        "bad-magic",
        `Frame magic 0x${hex(magic, 4)} is not 0x${
          hex(frameMagic, 4)
        }: the peer does not speak the Anytime wire protocol`,
      );
    }
    const version = view.getUint8(atBytes + 2);
    if (version !== frameVersion) {
      return this.#fail(
        "bad-version",
        `Frame version ${version} is not ${frameVersion}, the only one this side speaks`,
      );
    }
    const storedCheck = view.getUint32(atBytes + headerCheckedBytes, true);
    const computedCheck = xxh32(bytes, atBytes, headerCheckedBytes);
    if (storedCheck !== computedCheck) {
      return this.#fail(
        "bad-header",
        `Frame header check 0x${hex(storedCheck, 8)} does not match its bytes (0x${hex(computedCheck, 8)})`,
      );
    }
    const kind = view.getUint8(atBytes + 3);
    const kindLimits = messageKindLimits(kind);
    if (kindLimits === undefined) return this.#fail("unknown-kind", `Frame kind ${kind} is not a message kind`);
    const bodyBytes = view.getUint32(atBytes + 4, true);
    const payloadBytes = view.getUint32(atBytes + 8, true);
    const name = messageKindName(kind);
    if (bodyBytes > kindLimits.bodyBytesMax) {
      return this.#fail(
        "too-large",
        `A ${name} frame announces a ${bodyBytes}-byte body, over its ${kindLimits.bodyBytesMax}-byte limit`,
      );
    }
    if (payloadBytes > kindLimits.payloadBytesMax || bodyBytes + payloadBytes > wireLimits.frameBytesMax) {
      const limitBytes = Math.min(kindLimits.payloadBytesMax, wireLimits.frameBytesMax - bodyBytes);
      return this.#fail(
        "too-large",
        kindLimits.payloadBytesMax === 0
          ? `A ${name} frame announces a ${payloadBytes}-byte payload; ${name} frames carry none`
          : `A ${name} frame announces a ${payloadBytes}-byte payload, over its ${limitBytes}-byte limit`,
      );
    }
    this.#kind = kind as MessageKind;
    this.#bodyBytes = bodyBytes;
    this.#payloadBytes = payloadBytes;
    this.#bodyCheck = view.getUint32(atBytes + bodyCheckAtBytes, true);
    return true;
  }

  /** Checks a complete body against its header's body check; false (with #fault) when bad. */
  #checkBody(bytes: Uint8Array, atBytes: number, lengthBytes: number, storedCheck: number): boolean {
    const computedCheck = xxh32(bytes, atBytes, lengthBytes);
    if (computedCheck === storedCheck) return true;
    return this.#fail(
      "bad-body",
      `Frame body check 0x${hex(storedCheck, 8)} does not match its ${lengthBytes} bytes (0x${hex(computedCheck, 8)})`,
    );
  }

  #fail(code: ProtocolError["code"], message: string): false {
    this.#fault = new ProtocolError(code, message);
    this.#partial = null;
    return false;
  }
}

/** A reused buffer's size for `lengthBytes`: rounded up to 64 KiB, so a few sizes cover most frames. */
function grownBytes(lengthBytes: number): number {
  const granuleBytes = 64 * 1024;
  return Math.ceil(lengthBytes / granuleBytes) * granuleBytes;
}

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, "0");
}
