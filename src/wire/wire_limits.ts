/**
 * The wire protocol's limits (TigerBeetle: "put a limit on everything"). Every length a peer
 * announces is checked against one of these before anything is buffered or allocated for it.
 * Qualifiers and units come last in the name. Relations between limits are asserted at load,
 * so a bad edit fails at start, not under load.
 *
 * Kept apart from `src/core/limits.ts` for now; to be folded into it.
 *
 * @example
 * ```ts
 * import { wireLimits } from "./wire_limits.ts";
 * const fits = 4096 * 16 <= wireLimits.frameBytesMax; // true
 * ```
 */
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";

export const wireLimits = {
  /** Bytes after a frame's header: CBOR body plus raw payload (the header's u32 fields allow more). */
  frameBytesMax: 16 * 1024 * 1024,
  /** Largest CBOR body of any kind; most kinds have a much smaller one (`message_kinds.ts`). */
  bodyBytesMax: 1024 * 1024,
  /** Body of a handshake message that lists volumes (PROOF, WELCOME): every volume, plus 1 KiB. */
  handshakeBodyBytesMax: 513 * 1024,
  /** Body of small control messages (HELLO, CHALLENGE, ACK, PING, ERROR, requests...). */
  controlBodyBytesMax: 4 * 1024,
  /** Body of a MARK: its `detail` is journaled as the marker's payload, so it must fit one. */
  markBodyBytesMax: limits.markerPayloadBytesMax,
  /** Entries in one WRITE batch. */
  writeEntriesMax: 4096,
  /**
   * Upper bound of one WRITE entry's CBOR encoding as cbor-x writes it: a 5-entry map (1 byte),
   * its keys (44 bytes), seq / timeUs / offsetBytes as float64 or uint64 (9 bytes each),
   * lengthBytes as uint32 (5 bytes), the 8-byte checksum as a byte string (9 bytes): 86.
   */
  writeEntryEncodedBytesMax: 96,
  /** Data of one WRITE entry: the engine's largest single write. */
  writeLengthBytesMax: limits.writeBytesMax,
  /** Data one READ_REQUEST / FETCH may ask for (and so one READ_REPLY payload). */
  readBytesMax: limits.writeBytesMax,
  /** Chunks one HASH_REQUEST may ask for (8 bytes each in the HASH_REPLY). */
  hashChunksMax: 65_536,
  /** Bytes one HASH_REQUEST may cover. */
  hashRequestBytesMax: 2 ** 40,
  /** Volumes one switch may protect over one connection. */
  volumesPerConnectionMax: 1024,
  /** Upper bound of one volume's CBOR encoding in PROOF or WELCOME (name at 3 bytes a unit). */
  volumeEncodedBytesMax: 512,
  /** Volume name length in UTF-16 code units (the appliance applies its own, stricter pattern). */
  volumeNameLengthMax: 128,
  /** Switch id length in UTF-16 code units. */
  switchIdLengthMax: 128,
  /** Dirty-region size a switch may announce: a power of two in this range. */
  regionBytesMin: 512,
  regionBytesMax: 2 ** 30,
  /** MARK `detail`: nesting depth, values in all, and length of each string in it. */
  markDetailDepthMax: 8,
  markDetailValuesMax: 1024,
  markDetailStringLengthMax: 1024,
  /** ERROR `code` and `message`, BYE `reason`, in UTF-16 code units. */
  errorCodeLengthMax: 64,
  errorMessageLengthMax: 1024,
  byeReasonLengthMax: 1024,
  /** Handshake nonces and HMAC-SHA256 proofs. */
  nonceBytes: 32,
  proofBytes: 32,
  /** Shortest shared secret accepted: shorter ones are a configuration mistake. */
  secretBytesMin: 16,
} as const;

const entriesBytes = wireLimits.writeEntriesMax * wireLimits.writeEntryEncodedBytesMax;
const volumeNameEncodedBytesMax = 3 + 3 * wireLimits.volumeNameLengthMax;

assert(wireLimits.frameBytesMax <= 0xffff_ffff, "Frame lengths must fit the header's u32 fields");
assert(wireLimits.bodyBytesMax <= wireLimits.frameBytesMax, "A body must fit a frame");
assert(
  wireLimits.handshakeBodyBytesMax <= wireLimits.bodyBytesMax &&
    wireLimits.controlBodyBytesMax <= wireLimits.bodyBytesMax &&
    wireLimits.markBodyBytesMax <= wireLimits.bodyBytesMax,
  "Per-kind body limits must not exceed the body limit",
);
assert(
  entriesBytes + volumeNameEncodedBytesMax + 64 <= wireLimits.bodyBytesMax,
  "A full WRITE batch must fit a body",
);
assert(
  wireLimits.bodyBytesMax + wireLimits.writeLengthBytesMax <= wireLimits.frameBytesMax,
  "The largest single write must fit one frame with any body",
);
assert(
  wireLimits.controlBodyBytesMax + wireLimits.readBytesMax <= wireLimits.frameBytesMax,
  "The largest READ_REPLY must fit a frame",
);
assert(wireLimits.hashChunksMax * 8 + 64 <= wireLimits.bodyBytesMax, "A full HASH_REPLY must fit a body");
assert(
  volumeNameEncodedBytesMax + 64 <= wireLimits.volumeEncodedBytesMax &&
    wireLimits.volumesPerConnectionMax * wireLimits.volumeEncodedBytesMax + 1024 <= wireLimits.handshakeBodyBytesMax,
  "Every volume of a connection must fit a handshake body",
);
assert(
  3 + 3 * wireLimits.errorCodeLengthMax + 3 + 3 * wireLimits.errorMessageLengthMax + 32 <=
    wireLimits.controlBodyBytesMax,
  "An ERROR message must fit a control body",
);
assert(
  wireLimits.writeLengthBytesMax % 512 === 0 && wireLimits.readBytesMax % 512 === 0,
  "Data limits are whole sectors",
);
assert(
  wireLimits.nonceBytes >= 16 && wireLimits.proofBytes === 32,
  "Nonces must be unguessable; proofs are SHA-256 sized",
);
