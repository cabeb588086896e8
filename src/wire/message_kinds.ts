/**
 * Message kind codes (the frame header's kind byte) and, for each kind, the largest body and
 * payload its frames may announce. The frame decoder checks a header against its kind's
 * limits before buffering anything, so a peer cannot make this side hold 1 MiB for a PING.
 *
 * Codes are grouped: 1-15 handshake, 16-31 replication, 32-47 requests (resync, restore),
 * 48-63 connection control. A code never changes meaning; new kinds take new codes.
 *
 * @example
 * ```ts
 * import { messageKindLimits, messageKindName, messageKinds } from "./message_kinds.ts";
 * messageKindName(messageKinds.write); // "WRITE"
 * messageKindLimits(messageKinds.ping)?.payloadBytesMax; // 0
 * ```
 */
import { wireLimits } from "../core/limits.ts";

export const messageKinds = {
  /** switch → appliance: protocol version, role, switch id, switch nonce. */
  hello: 1,
  /** appliance → switch: appliance nonce and the appliance's proof of the secret. */
  challenge: 2,
  /** switch → appliance: the switch's proof of the secret, then its volumes. */
  proof: 3,
  /** appliance → switch: the last durable seq of every volume (resume point). */
  welcome: 4,
  /** switch → appliance: a batch of writes; the payload is their data, concatenated. */
  write: 16,
  /** switch → appliance: a marker (snapshot, gap, in-sync...) sharing the write sequence. */
  mark: 17,
  /** appliance → switch: every seq up to `durableSeq` is durable (cumulative). */
  ack: 18,
  /** Hashes of chunks of a volume range (resync compares before moving data). */
  hashRequest: 32,
  hashReply: 33,
  /** Data of a volume range (resync fix-ups, restore). */
  readRequest: 34,
  readReply: 35,
  /** Instant restore: the switch asks for a range it must serve before it is restored. */
  fetch: 36,
  /**
   * appliance → switch: put a snapshot marker (or, with `remove`, a snapshot-removed marker)
   * into the volume's write stream; the switch assigns its seq.
   */
  snapshotRequest: 37,
  /** switch → appliance: the marker's seq, or why the switch refused it. */
  snapshotReply: 38,
  /**
   * appliance → switch: put the volume's primary back to `toSeq` (the appliance resolved and
   * checked the point). The switch pauses host writes, drains, asks for the plan, starts.
   */
  restoreRequest: 39,
  /** switch → appliance: every write through `headSeq` is acknowledged; send the extents to restore. */
  restorePlanRequest: 40,
  /** appliance → switch: extents to restore (16 bytes each), in as many frames as needed; `last` ends it. */
  restorePlan: 41,
  /** switch → appliance: the restore marker's seq and the bytes the session moves. */
  restoreStarted: 42,
  /** switch → appliance: why the restore did not start (nothing changed). */
  restoreRefused: 43,
  /** switch → appliance: bytes moved so far and the session's state (periodic, and at the end). */
  restoreProgress: 44,
  /** appliance → switch: stop the restore (the switch records the partial state as a gap). */
  restoreCancel: 45,
  ping: 48,
  pong: 49,
  /** Either side: why the connection is being closed after a failure. */
  error: 62,
  /** Either side: an orderly close. */
  bye: 63,
} as const;

export type MessageKind = typeof messageKinds[keyof typeof messageKinds];

/** What a frame of one kind may announce in its header. */
export interface MessageKindLimits {
  readonly bodyBytesMax: number;
  readonly payloadBytesMax: number;
}

const control: MessageKindLimits = { bodyBytesMax: wireLimits.controlBodyBytesMax, payloadBytesMax: 0 };

const limitsByKind: Readonly<Record<MessageKind, MessageKindLimits>> = {
  [messageKinds.hello]: control,
  [messageKinds.challenge]: control,
  [messageKinds.proof]: { bodyBytesMax: wireLimits.handshakeBodyBytesMax, payloadBytesMax: 0 },
  [messageKinds.welcome]: { bodyBytesMax: wireLimits.handshakeBodyBytesMax, payloadBytesMax: 0 },
  [messageKinds.write]: { bodyBytesMax: wireLimits.bodyBytesMax, payloadBytesMax: wireLimits.frameBytesMax },
  [messageKinds.mark]: { bodyBytesMax: wireLimits.markBodyBytesMax, payloadBytesMax: 0 },
  [messageKinds.ack]: control,
  [messageKinds.hashRequest]: control,
  [messageKinds.hashReply]: { bodyBytesMax: wireLimits.bodyBytesMax, payloadBytesMax: 0 },
  [messageKinds.readRequest]: control,
  [messageKinds.readReply]: { bodyBytesMax: wireLimits.controlBodyBytesMax, payloadBytesMax: wireLimits.readBytesMax },
  [messageKinds.fetch]: control,
  [messageKinds.snapshotRequest]: control,
  [messageKinds.snapshotReply]: control,
  [messageKinds.restoreRequest]: control,
  [messageKinds.restorePlanRequest]: control,
  [messageKinds.restorePlan]: { bodyBytesMax: wireLimits.bodyBytesMax, payloadBytesMax: 0 },
  [messageKinds.restoreStarted]: control,
  [messageKinds.restoreRefused]: control,
  [messageKinds.restoreProgress]: control,
  [messageKinds.restoreCancel]: control,
  [messageKinds.ping]: control,
  [messageKinds.pong]: control,
  [messageKinds.error]: control,
  [messageKinds.bye]: control,
};

/** Indexed by kind code: the kind's name and limits, or `undefined` for an unknown code. */
const kindTable: readonly ({ name: string; limits: MessageKindLimits } | undefined)[] = (() => {
  const table: ({ name: string; limits: MessageKindLimits } | undefined)[] = new Array(256).fill(undefined);
  for (const [key, kind] of Object.entries(messageKinds)) {
    const name = key.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase();
    table[kind] = { name, limits: limitsByKind[kind] };
  }
  return table;
})();

/** The limits of a kind code, or `undefined` when the code is no kind. */
export function messageKindLimits(kind: number): MessageKindLimits | undefined {
  return kindTable[kind]?.limits;
}

/** True when `kind` is a message kind code. */
export function isMessageKind(kind: number): kind is MessageKind {
  return kindTable[kind] !== undefined;
}

/** The protocol name of a kind (`"WRITE"`, `"HASH_REQUEST"`), or `kind 200` for an unknown code. */
export function messageKindName(kind: number): string {
  return kindTable[kind]?.name ?? `kind ${kind}`;
}
