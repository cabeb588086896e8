/**
 * The one module that uses cbor-x. Every option is passed explicitly, so the bytes on the
 * wire and the values decoded from them do not depend on the runtime or on cbor-x defaults:
 *
 * - `useRecords: false`, `mapsAsObjects: true`: plain CBOR maps decoded to plain objects, no
 *   cbor-x record extension (DESIGN.md, "Wire protocol"); any CBOR decoder can read the bodies.
 * - `tagUint8Array: false`: a `Uint8Array` is an untagged byte string. cbor-x's default tags it
 *   (tag 64) only where Node's own byte-buffer class exists, which would make Node and Deno send different
 *   bytes.
 * - `copyBuffers: false`: a decoded byte string (nonce, proof, checksum, hashes) is a view into
 *   the body it came from, not a copy: a WRITE of 4096 entries carries 4096 checksums, and
 *   copying each would cost an allocation for nothing. So decoded byte strings follow the same
 *   lifetime rule as frame payloads (`frame.ts`): valid as long as the received chunk is.
 * - `int64AsNumber: true`: 64-bit integers decode as numbers, not bigints. Above 2^53 they lose
 *   precision, and validation rejects every integer that is not a safe integer, so nothing
 *   inexact gets through; with bigints a peer's (valid) 64-bit encoding of a small number
 *   would be rejected as "not a number".
 * - `useFloat32: 0` (never): numbers that are not small integers are float64, exact up to 2^53
 *   (times, seqs and offsets above 2^32 go out as float64).
 * - `useTag259ForMaps: false`, `structuredClone: false`, `pack: false`, `bundleStrings: false`,
 *   `largeBigIntToFloat: false`: none of these extensions are part of the protocol.
 *
 * Decoding untrusted bytes: cbor-x still understands some tags on input (records, shared
 * references, typed arrays, dates, RegExp...). Whatever they decode to must pass the message
 * validators, which accept only plain objects, arrays, strings, safe-integer numbers, booleans
 * and `Uint8Array` byte strings of the exact expected shapes: a tag can at most spell valid
 * plain data another way (a legacy record is a plain object). Container sizes are
 * capped with cbor-x's `setSizeLimits` (process-wide in cbor-x, which is why this is the only
 * module that may import it), and cbor-x checks every declared length against the bytes left.
 *
 * @example
 * ```ts
 * import { decodeCbor, encodeCbor } from "./cbor.ts";
 * const bytes = encodeCbor({ volume: "db", durableSeq: 12 });
 * const value = decodeCbor(bytes); // { volume: "db", durableSeq: 12 }
 * ```
 */
import { Decoder, Encoder, setSizeLimits } from "cbor-x";
import { wireLimits } from "../core/limits.ts";

const cborOptions = {
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  copyBuffers: false,
  int64AsNumber: true,
  useFloat32: 0,
  useTag259ForMaps: false,
  structuredClone: false,
  pack: false,
  bundleStrings: false,
  largeBigIntToFloat: false,
  variableMapSize: false,
} as const;

// cbor-x's Options type does not declare every option it reads (int64AsNumber,
// useTag259ForMaps), so the object is passed as the constructor's parameter type.
type CborOptions = ConstructorParameters<typeof Encoder>[0];

const encoder = new Encoder(cborOptions as CborOptions);
const decoder = new Decoder(cborOptions as CborOptions);

// The largest containers any valid body holds: WRITE entries (arrays), MARK details (maps).
setSizeLimits({
  maxArraySize: Math.max(wireLimits.writeEntriesMax, wireLimits.volumesPerConnectionMax),
  maxMapSize: wireLimits.markDetailValuesMax,
  maxObjectSize: wireLimits.markDetailValuesMax,
});

/**
 * Encodes `value` as CBOR. The result may be a view into cbor-x's output buffer that a later
 * call does not overwrite; callers copy it into their frame anyway.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return encoder.encode(value) as Uint8Array;
}

/**
 * Decodes exactly one CBOR item filling all of `bytes` (trailing bytes are an error). Byte
 * strings in the result are views into `bytes`.
 *
 * @throws {SyntaxError} saying why, when the bytes are not one well-formed CBOR item (whatever
 * cbor-x threw, including a stack overflow on absurdly nested input, is the `cause`).
 */
export function decodeCbor(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new SyntaxError("Cannot decode CBOR: no bytes");
  try {
    return decoder.decode(bytes);
  } catch (error) {
    // Any failure inside the decoder means the input is not acceptable CBOR: cbor-x throws
    // Error, RangeError or TypeError depending on where the input went wrong.
    const reason = error instanceof Error ? error.message : String(error);
    throw new SyntaxError(`Cannot decode CBOR: ${reason}`, { cause: error });
  }
}
