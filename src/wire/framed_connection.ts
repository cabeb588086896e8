/**
 * A {@link Connection} (the byte-stream seam) that carries wire messages: `send` encodes and
 * validates, `receive` and async iteration yield decoded, validated messages.
 *
 * A peer that breaks the protocol (bad header, oversize frame, unknown kind, body that does not
 * validate, HELLO of another version) gets an ERROR message with the {@link ProtocolError}'s
 * code and message, then the connection is closed, and `receive` throws that error, here and
 * on every later call. Messages that arrived complete and valid before the fault are delivered
 * first, so the outcome does not depend on how the stream was chunked; a message is delivered
 * whole or not at all (never part of a WRITE batch).
 *
 * Received bytes are copied once per chunk by default (`copyReceived`), because the seam only
 * lends chunks (`transport.ts`: "a receiver that keeps a chunk, or a view into it, past its
 * next `await` must copy it"), and messages are consumed after awaits. With the copy, message
 * bodies' byte strings and payloads stay valid for as long as the consumer keeps them. A
 * transport that hands the receiver ownership of its chunks may pass `copyReceived: false`.
 * Once messages are lent (`lendMessages`), chunks the peer sent held (`Connection.sendHeld`,
 * in-process) are not copied at all: they stay put until the next receive, as long as lent
 * messages live, so frames and payloads that arrive whole in one are views into it.
 *
 * @example
 * ```ts
 * import type { Connection } from "../io/transport.ts";
 * import { FramedConnection } from "./framed_connection.ts";
 * import { messageKinds } from "./messages.ts";
 *
 * async function answerPings(connection: Connection): Promise<void> {
 *   const framed = new FramedConnection(connection);
 *   for await (const message of framed) {
 *     if (message.kind === messageKinds.ping) await framed.send(messageKinds.pong, { timeUs: message.body.timeUs });
 *   }
 * }
 * ```
 */
import { assert } from "../core/assert.ts";
import { type Connection, ConnectionClosedError } from "../io/transport.ts";
import { ProtocolError } from "./errors.ts";
import { FrameDecoder } from "./frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  type MessageBodies,
  type MessageKind,
  messageKinds,
} from "./messages.ts";
import { wireLimits } from "../core/limits.ts";

/** Options of {@link FramedConnection}. */
export interface FramedConnectionOptions {
  /**
   * Copy each received chunk's complete frames before decoding them (default true), so no
   * message views a buffer the transport lent. Pass false only for a transport whose
   * receivers own their chunks.
   */
  copyReceived?: boolean;
}

/** Wire messages over a byte-stream connection; see the module doc. */
export class FramedConnection implements AsyncIterable<Message> {
  /** The byte-stream connection underneath. */
  readonly connection: Connection;
  readonly #decoder: FrameDecoder;
  #chunks: AsyncIterator<Uint8Array> | null = null;
  /** A fault the decoder found; reported once the messages before it are taken. */
  #pendingFault: ProtocolError | null = null;
  /** The fault reported to the peer (ERROR sent, connection closed); thrown by every receive. */
  #fault: ProtocolError | null = null;
  #ended = false;
  #receiving = false;

  constructor(connection: Connection, options: FramedConnectionOptions = {}) {
    this.connection = connection;
    this.#decoder = new FrameDecoder({ copyFrames: options.copyReceived ?? true });
  }

  /** Where the other end is, for logs. */
  get remoteAddress(): string {
    return this.connection.remoteAddress;
  }

  /**
   * Sends one message: the header and CBOR body in one buffer, then the payload by reference
   * (do not change it until the promise settles). An invalid body is a programmer error
   * (assertion). Rejects as `Connection.send` does (`ConnectionClosedError`).
   */
  async send<K extends MessageKind>(kind: K, body: MessageBodies[K], payload?: Uint8Array): Promise<void> {
    await this.connection.send(encodeMessage(kind, body, payload));
  }

  /**
   * Sends one frame its caller encoded (`WriteBatchEncoder`): the header and body, then the
   * payload's pieces by reference (do not change them until the promise settles). Unlike
   * {@link send} it does not validate: the encoder builds valid frames from valid values.
   *
   * `held`: where the connection can (`Connection.sendHeld`, in-process), the receiver reads
   * the chunks in place and the promise settles only when it is done with them; the receiving
   * `FramedConnection` then journals the payload without copying it.
   */
  async sendFrame(headerAndBody: Uint8Array, payload: readonly Uint8Array[], options: { held?: boolean } = {}): Promise<void> {
    const chunks = payload.length === 1 ? [headerAndBody, payload[0]] : [headerAndBody, ...payload];
    const connection = this.connection;
    if (options.held === true && connection.sendHeld !== undefined) await connection.sendHeld(chunks);
    else await connection.send(chunks);
  }

  /**
   * Sends ERROR `{code, message}` then closes the connection: the way to give up on a peer.
   * The message is cut to {@link wireLimits.errorMessageLengthMax} characters. Resolves true
   * when the ERROR was handed on, false when the connection had already ended (the peer is
   * gone, so there is nobody to tell). It waits for the send like any send: a peer that does
   * not read stalls it until the connection is closed (callers bound it with a timeout).
   */
  async sendError(code: string, message: string): Promise<boolean> {
    assert(
      code.length >= 1 && code.length <= wireLimits.errorCodeLengthMax,
      `Cannot send error code "${code}": not 1 to ${wireLimits.errorCodeLengthMax} characters`,
    );
    const text = message.length <= wireLimits.errorMessageLengthMax
      ? message
      : `${message.slice(0, wireLimits.errorMessageLengthMax - 3)}...`;
    try {
      await this.send(messageKinds.error, { code, message: text });
      return true;
    } catch (error) {
      if (!(error instanceof ConnectionClosedError)) throw error;
      return false;
    } finally {
      await this.connection.close();
    }
  }

  /**
   * From now on a received message's byte strings and payload are lent: valid only until the
   * next `receive` (or step of the iteration), because the frame buffers are reused rather
   * than allocated per message (`FrameDecoder.lendFrames`). For a consumer that finishes with
   * each message before it asks for the next, such as the appliance's WRITE loop; call it
   * after the handshake, whose messages are kept across receives. `allocate` makes the reused
   * buffers (`FrameDecoder.lendFrames`).
   */
  lendMessages(allocate?: (lengthBytes: number) => Uint8Array): void {
    this.#decoder.lendFrames(allocate);
  }

  /** Closes the connection (idempotent); a pending or later `receive` sees the end. */
  close(): Promise<void> {
    return this.connection.close();
  }

  /**
   * The next message, or `undefined` when the connection ended between messages (peer's
   * orderly close, or ours). One `receive` at a time.
   *
   * @throws {ProtocolError} when the peer broke the protocol (after an ERROR was sent to it
   * and the connection closed), or closed the connection in the middle of a frame
   * (`"truncated"`); the same error on every later call.
   * @throws {ConnectionClosedError} when the connection broke (from the transport).
   */
  async receive(): Promise<Message | undefined> {
    assert(!this.#receiving, "Cannot receive while another receive is pending");
    this.#receiving = true;
    try {
      return await this.#receive();
    } finally {
      this.#receiving = false;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    try {
      for (;;) {
        const message = await this.receive();
        if (message === undefined) return;
        yield message;
      }
    } finally {
      // The consumer is done with the last message: a chunk lent to it may be reused.
      this.connection.release?.();
    }
  }

  async #receive(): Promise<Message | undefined> {
    for (;;) {
      if (this.#fault !== null) throw this.#fault;
      const frame = this.#decoder.nextFrame();
      if (frame !== undefined) {
        try {
          return decodeMessage(frame);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          return await this.#failWith(error);
        }
      }
      if (this.#pendingFault !== null) return await this.#failWith(this.#pendingFault);
      if (this.#ended) return undefined;
      const chunk = await this.#nextChunk();
      if (chunk === undefined) {
        this.#ended = true;
        const bufferedBytes = this.#decoder.bufferedBytes;
        if (bufferedBytes === 0) return undefined;
        this.#fault = new ProtocolError(
          "truncated",
          `The peer at ${this.remoteAddress} closed the connection inside a frame (${bufferedBytes} bytes of it received)`,
        );
        await this.connection.close();
        throw this.#fault;
      }
      try {
        this.#decoder.push(chunk, this.connection.chunkHeld === true);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#pendingFault = error;
      }
    }
  }

  async #nextChunk(): Promise<Uint8Array | undefined> {
    this.#chunks ??= this.connection[Symbol.asyncIterator]();
    try {
      const next = await this.#chunks.next();
      return next.done ? undefined : next.value;
    } catch (error) {
      // The connection broke: nothing more will arrive; the transport's error says why.
      this.#ended = true;
      throw error;
    }
  }

  /** Reports `fault` to the peer (ERROR, close) and throws it. */
  async #failWith(fault: ProtocolError): Promise<never> {
    this.#fault = fault;
    this.#pendingFault = null;
    await this.sendError(fault.code, fault.message);
    throw fault;
  }
}
