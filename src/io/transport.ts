/**
 * The `Transport` seam: byte-stream connections, TCP in `targets/`, in-process in `src/io/`.
 * Framing lives above it (the wire protocol, NBD). Shaped after nats.js's transport: the
 * core never sees a socket.
 *
 * The contract every implementation keeps (`test/io/transport.test.ts` runs one suite over
 * all of them):
 * - A connection carries a byte stream in each direction: bytes arrive in order and exactly,
 *   but chunk boundaries need not survive (TCP splits and merges them).
 * - Memory is bounded on both sides. A receiver that stops reading makes the sender's `send`
 *   stay pending; nothing between them buffers without limit.
 * - A receiver iterating the connection sees its end: the iteration finishes normally when
 *   the peer closed in order (after every byte sent before the close), and throws
 *   {@link ConnectionClosedError} when the connection broke (reset, injected drop).
 * - A `send` after the connection ended (closed at either end, or broken) rejects with
 *   {@link ConnectionClosedError}; so does a pending `send` that the end cut off.
 * - A connection with `sinkTo` (the TCP transports) delivers the same byte stream to a sink
 *   instead, into the views the sink names where it names them; a sink that pauses gets
 *   nothing until it resumes, and the sender waits meanwhile.
 *
 * @example
 * ```ts
 * import type { Connection } from "./transport.ts";
 *
 * // Counts the bytes a peer sends until it closes.
 * async function countBytes(connection: Connection): Promise<number> {
 *   let lengthBytes = 0;
 *   for await (const chunk of connection) lengthBytes += chunk.length;
 *   return lengthBytes;
 * }
 * ```
 *
 * @module
 */

/**
 * One end of a connection.
 *
 * Buffers are lent, never copied by the seam: the in-process transport hands the receiver
 * the very `Uint8Array` objects the sender passed. Hence two rules:
 * - The sender may reuse (overwrite) a buffer only after its `send` has settled.
 * - A receiver that keeps a chunk, or a view into it, past its next `await` must copy it:
 *   in-process, the sender gets the buffer back once the receiver took it; over TCP on
 *   Node, the bytes are read into reused slabs, valid until the iteration asks for the next
 *   chunk.
 */
export interface Connection extends AsyncIterable<Uint8Array> {
  /** Where the other end is, for logs (`127.0.0.1:7300`, `[::1]:7300`, `inproc:appliance`). */
  readonly remoteAddress: string;
  /**
   * Sends the chunks in order, as one contiguous piece of the byte stream (concurrent sends
   * do not interleave). Resolves when the bytes are handed on (TCP: to the kernel; in-process:
   * to the receiver), so the caller may reuse the buffers; waits while the path to the peer
   * is full (backpressure). Rejects with {@link ConnectionClosedError} when the connection
   * has ended or ends first.
   *
   * In-process, a send completes only when the peer reads: two ends that each wait for their
   * own send before reading deadlock (on TCP too, once the messages outgrow the socket
   * buffers), so full-duplex protocols read in a loop of their own.
   */
  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /**
   * Optional (the in-process transport has it): sends like {@link send}, but lends the chunks
   * to the receiver, which may read them where they lie until it asks for its next chunk or
   * calls {@link release}; the promise settles only then. For a sender whose bytes stay put
   * until then anyway (the switch's copy buffer), so the receiver need not copy them.
   */
  sendHeld?(chunks: readonly Uint8Array[]): Promise<void>;
  /**
   * Optional, with {@link sendHeld}: true when the chunk the iteration yielded last was
   * lent (sent held), so it stays unchanged until this end asks for the next chunk or
   * calls {@link release}. False or absent: the two rules above apply.
   */
  readonly chunkHeld?: boolean;
  /**
   * Optional, with {@link sendHeld}: this end is done with the chunk its iteration yielded
   * last, before asking for another (a consumer that stops reading). Idempotent.
   */
  release?(): void;
  /**
   * Optional (the TCP transports have it): from now on the received bytes go to `sink` as
   * they arrive, inside the transport's read, and no longer to the iteration, which must not
   * be used again (what it had queued goes to the sink first, in order; the chunk it yielded
   * last is released). The sink may name where each next read lands ({@link ReceiveSink}),
   * so a consumer that knows where the coming bytes belong (an NBD write payload) has the
   * kernel copy them there, with no copy of its own. Returns `resume`, which restarts
   * receiving after `receive` returned false. After `close()` the sink hears nothing more.
   */
  sinkTo?(sink: ReceiveSink): () => void;
  /**
   * Closes both directions in order: the bytes of every send made before `close()` still
   * reach the peer (if it reads them; TCP resets a peer that does not within a linger time),
   * then the peer's iteration finishes. This end's iteration finishes at once (unread bytes
   * are dropped); sends made after it reject. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * A consumer of {@link Connection.sinkTo}: it takes the bytes synchronously, in stream order,
 * as each read completes. Nothing of it may throw; a transport that catches a throw breaks
 * the connection.
 */
export interface ReceiveSink {
  /**
   * Where the next read may put its bytes: a view of at least one byte, or null for the
   * transport's own buffer. Asked after each delivery, for the read after it. A view given
   * out belongs to the transport until `receive` hands back its first bytes, or for good
   * once the connection has ended (a read may still land in it then), so the sink never
   * reuses a view it gave out unless it came back.
   */
  readTarget(): Uint8Array | null;
  /**
   * The stream's next bytes: the first bytes of the last view `readTarget` gave (read there),
   * or a view of the transport's own buffer, lent until this call returns. Returns false to
   * pause receiving until `resume` is called (the sender then waits, as with an iteration
   * that stops asking).
   */
  receive(bytes: Uint8Array): boolean;
  /**
   * The stream ended: in order (no argument) after every byte was received, or broken
   * (the error the iteration would have thrown). Called once, last.
   */
  end(error?: ConnectionClosedError): void;
}

/** A listening endpoint: iterating it accepts connections until it is closed. */
export interface Listener extends AsyncIterable<Connection> {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: string;
  /**
   * Stops accepting: connecting to the address fails from now on, and the iteration
   * finishes. Connections already accepted stay open until they are closed themselves.
   */
  close(): Promise<void>;
}

/**
 * Opens connections to `HOST:PORT` (IPv6 as `[::1]:PORT`; port 0 to listen on any free
 * port) or, in-process, to a name, and listens on them.
 */
export interface Transport {
  /**
   * Opens a connection. Rejects with {@link ConnectFailedError} when nothing accepts at
   * `address`, with `SyntaxError` when the address cannot be parsed.
   */
  connect(address: string): Promise<Connection>;
  listen(address: string): Promise<Listener>;
}

/**
 * The connection has ended: a `send` after the end (or cut off by it), or an iteration that
 * ended because the connection broke. `cause` holds the runtime's error, if any.
 */
export class ConnectionClosedError extends Error {
  override name = "ConnectionClosedError";
}

/** A `connect` that reached nobody (refused, unknown name, unreachable host). */
export class ConnectFailedError extends Error {
  override name = "ConnectFailedError";
}

/** A TCP address taken apart. */
export interface TcpAddress {
  /** Host name or IP address, without brackets (`127.0.0.1`, `::1`, `localhost`). */
  readonly hostname: string;
  /** 0 to 65535; 0 asks the system for a free port when listening. */
  readonly port: number;
}

const portMax = 65_535;

/**
 * Parses `HOST:PORT` or `[IPV6]:PORT`, the address syntax both TCP targets accept.
 *
 * @example
 * ```ts
 * parseTcpAddress("127.0.0.1:7300"); // { hostname: "127.0.0.1", port: 7300 }
 * parseTcpAddress("[::1]:0"); // { hostname: "::1", port: 0 }
 * ```
 *
 * @throws {SyntaxError} when the text is not of that form or the port is not 0 to 65535.
 */
export function parseTcpAddress(text: string): TcpAddress {
  let hostname: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]:");
    if (close < 0) throw new SyntaxError(`Cannot parse address "${text}": expected [IPV6]:PORT`);
    hostname = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new SyntaxError(`Cannot parse address "${text}": expected HOST:PORT`);
    hostname = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostname.includes(":")) {
      throw new SyntaxError(`Cannot parse address "${text}": write an IPv6 host in brackets, [::1]:PORT`);
    }
  }
  if (hostname.length === 0) throw new SyntaxError(`Cannot parse address "${text}": the host is empty`);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port <= portMax)) {
    throw new SyntaxError(`Cannot parse address "${text}": "${portText}" is not a port (0 to ${portMax})`);
  }
  return { hostname, port };
}

/**
 * Formats a host and port as {@link parseTcpAddress} reads them (IPv6 in brackets).
 *
 * @example
 * ```ts
 * formatTcpAddress("::1", 7300); // "[::1]:7300"
 * ```
 */
export function formatTcpAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
