/**
 * Builds WRITE frames (protocol 2, `messages.ts`) in one buffer allocated at construction and
 * reused for every batch: the switch link's hot path, with no allocation per batch or entry.
 *
 * The frame's header and CBOR body are written straight into the buffer; the body is the map
 * `{"volume": text, "entries": bytes}` spelled out by hand (a two-key map is simpler to write
 * than to ask cbor-x for, and the entries' byte string is written in place, not copied into
 * an encoder's output). The byte string's length is always written as a 4-byte argument
 * (`0x5a`): valid CBOR that every decoder reads, though not the shortest form, so the records
 * can be stored before their count is known. The payload (the entries' data) is not copied
 * here: the caller sends it by reference after the header and body (`Connection.send`).
 *
 * The buffer returned by {@link WriteBatchEncoder.finish} is reused by the next
 * {@link WriteBatchEncoder.begin}: begin the next batch only after the send settled.
 *
 * @example
 * ```ts
 * import { WriteBatchEncoder } from "./write_batch.ts";
 *
 * const encoder = new WriteBatchEncoder();
 * const data = new Uint8Array(4096);
 * encoder.begin("db");
 * encoder.add({ seq: 1, timeUs: 1_700_000_000_000_000, offsetBytes: 0, lengthBytes: data.length, checksum: 0n });
 * const chunks = [encoder.finish(), data]; // for Connection.send
 * ```
 */
import { assert } from "../core/assert.ts";
import { wireLimits } from "../core/limits.ts";
import { frameHeaderBytes, writeFrameHeader } from "./frame.ts";
import { messageKinds, storeWriteEntry, type WriteEntry, writeEntryBytes } from "./messages.ts";

/** CBOR text "volume" (major type 3, length 6). */
const volumeKey = [0x66, 0x76, 0x6f, 0x6c, 0x75, 0x6d, 0x65];
/** CBOR text "entries" (major type 3, length 7). */
const entriesKey = [0x67, 0x65, 0x6e, 0x74, 0x72, 0x69, 0x65, 0x73];
/** A volume name's UTF-8 bytes, at most (3 per UTF-16 unit). */
const volumeNameUtf8BytesMax = 3 * wireLimits.volumeNameLengthMax;
/** Map head (1), both keys, the name's text head (at most 3), the byte string's head (5). */
const bodyOverheadBytes = 1 + volumeKey.length + 3 + entriesKey.length + 5;

const utf8 = new TextEncoder();

/**
 * Bytes of the frame buffer a {@link WriteBatchEncoder} of `entriesMax` entries allocates (its
 * whole memory): what the switch link holds for batches besides the copy buffer.
 *
 * @example
 * ```ts
 * writeBatchFrameBytes(1); // 20-byte header + 408 bytes of keys, heads and longest name + 40
 * ```
 */
export function writeBatchFrameBytes(entriesMax: number = wireLimits.writeEntriesMax): number {
  return frameHeaderBytes + bodyOverheadBytes + volumeNameUtf8BytesMax + entriesMax * writeEntryBytes;
}

/** See the module doc. */
export class WriteBatchEncoder {
  /** The most entries one batch holds. */
  readonly entriesMax: number;
  readonly #frame: Uint8Array;
  readonly #view: DataView;
  /** Where the entries' byte string head sits; the records follow it. */
  #entriesHeadAtBytes = -1;
  #count = 0;
  #payloadBytes = 0;

  /** @param options.entriesMax default (and at most) `wireLimits.writeEntriesMax`. */
  constructor(options: { entriesMax?: number } = {}) {
    const entriesMax = options.entriesMax ?? wireLimits.writeEntriesMax;
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 1 || entriesMax > wireLimits.writeEntriesMax) {
      throw new RangeError(`Cannot batch ${entriesMax} entries: 1 to ${wireLimits.writeEntriesMax} per WRITE`);
    }
    this.entriesMax = entriesMax;
    const frameBytes = writeBatchFrameBytes(entriesMax);
    assert(frameBytes - frameHeaderBytes <= wireLimits.bodyBytesMax, "A full batch's body fits the body limit");
    this.#frame = new Uint8Array(frameBytes);
    this.#view = new DataView(this.#frame.buffer);
  }

  /** Entries added since {@link begin}. */
  get count(): number {
    return this.#count;
  }

  /** Data bytes of the entries added since {@link begin} (the payload to send). */
  get payloadBytes(): number {
    return this.#payloadBytes;
  }

  /** Whether the batch holds {@link entriesMax} entries. */
  get isFull(): boolean {
    return this.#count === this.entriesMax;
  }

  /** Starts a batch for `volume` (1 to `wireLimits.volumeNameLengthMax` characters). */
  begin(volume: string): void {
    assert(
      volume.length >= 1 && volume.length <= wireLimits.volumeNameLengthMax,
      `Cannot batch writes of volume "${volume}": not 1 to ${wireLimits.volumeNameLengthMax} characters`,
    );
    const frame = this.#frame;
    let atBytes = frameHeaderBytes;
    frame[atBytes++] = 0xa2; // a map of two pairs
    frame.set(volumeKey, atBytes);
    atBytes += volumeKey.length;
    // The name is written after a 3-byte head's room, then moved up if its head is shorter.
    const { written } = utf8.encodeInto(volume, frame.subarray(atBytes + 3, atBytes + 3 + volumeNameUtf8BytesMax));
    const headBytes = written < 24 ? 1 : written < 256 ? 2 : 3;
    if (headBytes !== 3) frame.copyWithin(atBytes + headBytes, atBytes + 3, atBytes + 3 + written);
    if (headBytes === 1) frame[atBytes] = 0x60 + written;
    else if (headBytes === 2) {
      frame[atBytes] = 0x78;
      frame[atBytes + 1] = written;
    } else {
      frame[atBytes] = 0x79;
      frame[atBytes + 1] = written >>> 8;
      frame[atBytes + 2] = written & 0xff;
    }
    atBytes += headBytes + written;
    frame.set(entriesKey, atBytes);
    atBytes += entriesKey.length;
    this.#entriesHeadAtBytes = atBytes;
    this.#count = 0;
    this.#payloadBytes = 0;
  }

  /**
   * Adds an entry (its fields are read now; the object may be reused). Values are the
   * caller's to keep valid (the copy buffer's are); they are asserted cheaply.
   */
  add(entry: WriteEntry): void {
    assert(this.#entriesHeadAtBytes >= 0, "Cannot add an entry before begin");
    if (this.#count === this.entriesMax) assert(false, `Cannot add entry ${this.#count + 1}: the batch is full`);
    if (!(entry.lengthBytes > 0 && entry.lengthBytes <= wireLimits.writeLengthBytesMax)) {
      assert(false, `Cannot batch a write of ${entry.lengthBytes} bytes`);
    }
    storeWriteEntry(this.#view, this.#entriesHeadAtBytes + 5 + this.#count * writeEntryBytes, entry);
    this.#count++;
    this.#payloadBytes += entry.lengthBytes;
  }

  /**
   * Ends the batch: writes the byte string's head and the frame header, and returns the header
   * and body (a view into the reused buffer, valid until the next {@link begin}). Send the
   * entries' data, {@link payloadBytes} of it in order, right after it.
   */
  finish(): Uint8Array {
    assert(this.#entriesHeadAtBytes >= 0 && this.#count > 0, "Cannot finish a batch without entries");
    const entriesAtBytes = this.#entriesHeadAtBytes + 5;
    const entriesBytes = this.#count * writeEntryBytes;
    this.#frame[this.#entriesHeadAtBytes] = 0x5a; // a byte string, 4-byte length
    this.#view.setUint32(this.#entriesHeadAtBytes + 1, entriesBytes, false);
    const frameBytes = entriesAtBytes + entriesBytes;
    assert(
      frameBytes - frameHeaderBytes + this.#payloadBytes <= wireLimits.frameBytesMax,
      `Cannot send a batch of ${this.#payloadBytes} data bytes: over the frame limit`,
    );
    writeFrameHeader(this.#frame, {
      kind: messageKinds.write,
      bodyBytes: frameBytes - frameHeaderBytes,
      payloadBytes: this.#payloadBytes,
    });
    this.#entriesHeadAtBytes = -1;
    return this.#frame.subarray(0, frameBytes);
  }
}
