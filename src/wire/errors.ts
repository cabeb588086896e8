/**
 * Operating errors of the wire protocol that callers catch: a peer that breaks the protocol,
 * a peer that fails (or refuses) authentication, a peer that refused with an ERROR message.
 * Bad arguments from our own code use the built-in error types or `assert` instead.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * try {
 *   throw new ProtocolError("too-large", "Frame announces 1073741824 body bytes, over the 1048576-byte limit");
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 *   console.log(error.code); // "too-large"
 * }
 * ```
 */

/**
 * Why a byte stream or a message broke the protocol. Each code is also what the ERROR message
 * sent to the peer carries.
 */
export const protocolErrorCodes = [
  /** The first two header bytes are not the wire magic: not our protocol at all. */
  "bad-magic",
  /** The frame header's format version is not one this side speaks. */
  "bad-version",
  /** The header's XXH32 does not match its first 12 bytes. */
  "bad-header",
  /** The header names a message kind this side does not know. */
  "unknown-kind",
  /** A length in the header is over its limit (checked before anything is buffered). */
  "too-large",
  /** The CBOR body does not decode, or decodes to something that is not a valid message. */
  "bad-body",
  /** The peer speaks another protocol version (HELLO). */
  "version",
  /** A valid message that is not allowed in the current state (a WRITE before the handshake). */
  "unexpected",
  /** The peer closed the connection in the middle of a frame. */
  "truncated",
  /** The peer closed the connection while a reply was awaited (during the handshake). */
  "closed",
] as const;

export type ProtocolErrorCode = typeof protocolErrorCodes[number];

/** The peer broke the protocol; `code` says how. The connection is unusable afterwards. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The handshake's mutual proof of the shared secret failed: the peer's proof did not match
 * (this side detected it), or the peer rejected ours (it sent ERROR `"auth"`).
 */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
}

/** The peer sent an ERROR message (other than `"auth"`, see {@link AuthenticationError}). */
export class PeerError extends Error {
  override name = "PeerError";
  /** The peer's error code, such as `"volume"`, `"version"`, `"bad-body"`. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
