/**
 * The Node target's TCP {@link Transport}, on `node:net`. Addresses are `HOST:PORT` or
 * `[IPV6]:PORT`; listening on port 0 takes a free port, which the listener's `address` shows.
 *
 * Memory stays bounded in both directions, without copies in this code:
 * - Sending: the chunks go to `socket.write` by reference (several in one `cork`/`uncork`, so
 *   Node hands them to the kernel with one `writev`). A `send` resolves when Node's callback
 *   says the bytes reached the kernel: only then may the caller reuse the buffers (Node keeps
 *   a reference until then), and the wait is the backpressure. Sends made while Node's buffer
 *   is over its high-water mark wait for `'drain'` before they are written, in order.
 * - Receiving: each `'data'` chunk (a fresh buffer per read, owned by the receiver) is queued
 *   for the iteration; past `receiveQueueBytesMax` the socket is paused, so the kernel's
 *   window closes and the sender waits; it resumes when the iteration has taken half.
 *
 * Sockets use `setNoDelay(true)` (the protocols above send whole messages; Nagle would hold
 * the last segment of each for a round trip) and `allowHalfOpen: false` (a connection closes
 * both directions, as the seam says). `close()` is orderly: it writes the sends made before
 * it (also those waiting for `'drain'`), then FIN, discards whatever still arrives, and waits
 * for the peer's FIN, so the kernel never answers unread data with a reset that could destroy
 * bytes in flight; a peer that does not take the bytes and close within `closeLingerMs` is
 * reset (the sends still pending then reject).
 *
 * @example
 * ```ts
 * import { TcpTransport } from "./tcp_transport.ts";
 *
 * const transport = new TcpTransport();
 * const listener = await transport.listen("127.0.0.1:0");
 * const client = await transport.connect(listener.address);
 * await client.send([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * await listener.close(); // the connection, never accepted, is closed too
 * await client.close();
 * ```
 *
 * @module
 */
import net from "node:net";
import { assert } from "../../src/core/assert.ts";
import {
  ConnectFailedError,
  type Connection,
  ConnectionClosedError,
  formatTcpAddress,
  type Listener,
  parseTcpAddress,
  type Transport,
} from "../../src/io/transport.ts";

/** Default bound on received bytes queued before the socket is paused. */
export const TCP_RECEIVE_QUEUE_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** Default bound on connections a listener holds before they are accepted (also the backlog). */
export const TCP_ACCEPT_QUEUE_MAX_DEFAULT = 128;
/** Default time `close()` waits for the peer to close its side before resetting. */
export const TCP_CLOSE_LINGER_MS_DEFAULT = 2_000;

/** Options of {@link TcpTransport}. */
export interface TcpTransportOptions {
  /** Received bytes queued for the iteration before the socket is paused (default 4 MiB). */
  receiveQueueBytesMax?: number;
  /**
   * Connections a listener holds before they are accepted; more are reset (default 128).
   * Node accepts every connection itself, so this is the listener's bound, not the kernel's.
   */
  acceptQueueMax?: number;
  /** How long `close()` waits for the peer's side to close before resetting (default 2 s). */
  closeLingerMs?: number;
}

type Settings = Required<TcpTransportOptions>;

/** TCP over `node:net`; see the module doc. */
export class TcpTransport implements Transport {
  readonly #settings: Settings;

  constructor(options: TcpTransportOptions = {}) {
    this.#settings = {
      receiveQueueBytesMax: options.receiveQueueBytesMax ?? TCP_RECEIVE_QUEUE_BYTES_MAX_DEFAULT,
      acceptQueueMax: options.acceptQueueMax ?? TCP_ACCEPT_QUEUE_MAX_DEFAULT,
      closeLingerMs: options.closeLingerMs ?? TCP_CLOSE_LINGER_MS_DEFAULT,
    };
    for (const [name, value] of Object.entries(this.#settings)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`Cannot use ${name} ${value}: not a positive integer`);
      }
    }
  }

  /**
   * Connects to `HOST:PORT`.
   *
   * @throws {ConnectFailedError} when the connection cannot be made (refused, unreachable,
   * unknown host), with the runtime's error as `cause`.
   * @throws {SyntaxError} when the address cannot be parsed.
   */
  connect(address: string): Promise<TcpConnection> {
    let hostname: string;
    let port: number;
    try {
      ({ hostname, port } = parseTcpAddress(address));
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: hostname, port, allowHalfOpen: false, noDelay: true });
      const onError = (error: Error) => {
        reject(new ConnectFailedError(`Cannot connect to "${address}": ${describe(error)}`, { cause: error }));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        resolve(new TcpConnection(socket, this.#settings));
      });
    });
  }

  /**
   * Listens on `HOST:PORT` (port 0: any free port).
   *
   * @throws {Error} when the address cannot be bound (in use, not local), with the runtime's
   * error as `cause`.
   * @throws {SyntaxError} when the address cannot be parsed.
   */
  listen(address: string): Promise<TcpListener> {
    let hostname: string;
    let port: number;
    try {
      ({ hostname, port } = parseTcpAddress(address));
    } catch (error) {
      return Promise.reject(error);
    }
    const server = net.createServer({ allowHalfOpen: false, noDelay: true });
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        reject(new Error(`Cannot listen on "${address}": ${describe(error)}`, { cause: error }));
      };
      server.once("error", onError);
      server.listen({ host: hostname, port, backlog: this.#settings.acceptQueueMax }, () => {
        server.off("error", onError);
        resolve(new TcpListener(server, this.#settings));
      });
    });
  }
}

/** A listening TCP socket; iterate it to accept connections. */
export class TcpListener implements Listener {
  readonly address: string;
  readonly #server: net.Server;
  readonly #settings: Settings;
  readonly #accepted: TcpConnection[] = [];
  #closed = false;
  #failure: Error | null = null;
  #waiter: (() => void) | null = null;

  /** Made by {@link TcpTransport.listen}, on a listening server. */
  constructor(server: net.Server, settings: Settings) {
    this.#server = server;
    this.#settings = settings;
    const bound = server.address();
    assert(bound !== null && typeof bound === "object", "A listening TCP server has an address");
    this.address = formatTcpAddress(bound.address, bound.port);
    server.on("connection", (socket) => this.#onConnection(socket));
    server.on("error", (error) => {
      this.#failure = new Error(`Listener on ${this.address} failed: ${describe(error)}`, { cause: error });
      this.#wake();
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TcpConnection, void, undefined> {
    for (;;) {
      const connection = this.#accepted.shift();
      if (connection !== undefined) {
        yield connection;
      } else if (this.#closed) {
        return;
      } else if (this.#failure !== null) {
        throw this.#failure;
      } else {
        await new Promise<void>((resolve) => {
          assert(this.#waiter === null, "Only one iteration may wait on a listener at a time");
          this.#waiter = resolve;
        });
      }
    }
  }

  /** Stops accepting; connections accepted but not yet taken from the iteration are closed. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // The listening socket closes now; the callback would wait for every connection.
      this.#server.close();
      for (const connection of this.#accepted.splice(0)) void connection.close();
      this.#wake();
    }
    return Promise.resolve();
  }

  #onConnection(socket: net.Socket): void {
    if (this.#closed || this.#accepted.length >= this.#settings.acceptQueueMax) {
      socket.destroy();
      return;
    }
    this.#accepted.push(new TcpConnection(socket, this.#settings));
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

/** A send waiting for `'drain'`. */
interface BlockedSend {
  readonly chunks: readonly Uint8Array[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** One end of a TCP connection. */
export class TcpConnection implements Connection {
  readonly remoteAddress: string;
  readonly #socket: net.Socket;
  readonly #settings: Settings;
  /** Received chunks the iteration has not taken; their bytes add up to `#receivedBytes`. */
  readonly #received: Uint8Array[] = [];
  #receivedBytes = 0;
  readonly #blocked: BlockedSend[] = [];
  /** The peer's FIN arrived (and every byte before it was queued). */
  #endedByPeer = false;
  /** Why the connection broke, if it did. */
  #failure: ConnectionClosedError | null = null;
  #closedLocally = false;
  #socketClosed = false;
  #closing: Promise<void> | null = null;
  #waiter: (() => void) | null = null;

  /** Made by {@link TcpTransport}, on a connected socket. */
  constructor(socket: net.Socket, settings: Settings) {
    this.#socket = socket;
    this.#settings = settings;
    this.remoteAddress = formatTcpAddress(socket.remoteAddress ?? "unknown", socket.remotePort ?? 0);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => {
      this.#endedByPeer = true;
      this.#wake();
    });
    socket.on("error", (error) => this.#onError(error));
    socket.on("close", () => this.#onClose());
    socket.on("drain", () => this.#writeBlocked());
  }

  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    let list: Uint8Array[];
    try {
      list = chunkList(chunks);
    } catch (error) {
      return Promise.reject(error);
    }
    const failure = this.#sendFailure();
    if (failure !== null) return Promise.reject(failure);
    if (list.length === 0) return Promise.resolve();
    if (this.#blocked.length === 0 && !this.#socket.writableNeedDrain) return this.#write(list);
    return new Promise((resolve, reject) => this.#blocked.push({ chunks: list, resolve, reject }));
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeInOrder();
    return this.#closing;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    const socket = this.#socket;
    for (;;) {
      if (this.#closedLocally) return;
      const chunk = this.#received.shift();
      if (chunk !== undefined) {
        this.#receivedBytes -= chunk.length;
        if (socket.isPaused() && this.#receivedBytes <= this.#settings.receiveQueueBytesMax / 2) {
          socket.resume();
        }
        yield chunk;
      } else if (this.#failure !== null) {
        throw this.#failure;
      } else if (this.#endedByPeer || this.#socketClosed) {
        return;
      } else {
        await new Promise<void>((resolve) => {
          assert(this.#waiter === null, "Only one iteration may wait on a connection at a time");
          this.#waiter = resolve;
        });
      }
    }
  }

  #onData(chunk: Buffer): void {
    // After close() the bytes are read only so the peer's FIN can arrive; nobody wants them.
    if (this.#closedLocally) return;
    // A plain Uint8Array view: Buffer's `slice` would not copy, unlike Uint8Array's.
    this.#received.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#receivedBytes += chunk.byteLength;
    if (this.#receivedBytes >= this.#settings.receiveQueueBytesMax) this.#socket.pause();
    this.#wake();
  }

  #onError(error: Error): void {
    if (this.#failure === null && !this.#closedLocally) {
      this.#failure = new ConnectionClosedError(`Connection to ${this.remoteAddress} broke: ${describe(error)}`, {
        cause: error,
      });
    }
    this.#wake();
  }

  #onClose(): void {
    this.#socketClosed = true;
    const error = this.#failure ??
      new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the connection is closed`);
    for (const send of this.#blocked.splice(0)) send.reject(error);
    this.#wake();
  }

  /** Writes every chunk now; resolves when Node has handed the last one to the kernel. */
  #write(chunks: readonly Uint8Array[]): Promise<void> {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      const onWritten = (error?: Error | null) => {
        // Node reports a write cut off by the socket's destruction as a success.
        if (error || socket.destroyed) {
          reject(
            this.#failure ??
              new ConnectionClosedError(
                `Cannot send to ${this.remoteAddress}: ${error ? describe(error) : "the connection is closed"}`,
                { cause: error },
              ),
          );
        } else {
          resolve();
        }
      };
      const last = chunks.length - 1;
      if (last > 0) socket.cork();
      for (let index = 0; index <= last; index++) {
        socket.write(chunks[index], index === last ? onWritten : undefined);
      }
      if (last > 0) socket.uncork();
    });
  }

  /** On `'drain'`: writes waiting sends, in order, until Node's buffer is full again. */
  #writeBlocked(): void {
    const socket = this.#socket;
    while (this.#blocked.length > 0 && !socket.writableNeedDrain) {
      const send = this.#blocked.shift()!;
      // A send made before close() still goes out; only a broken or ended socket stops it.
      if (this.#failure !== null || socket.writableEnded || socket.destroyed) {
        send.reject(
          this.#failure ?? new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the connection is closed`),
        );
      } else {
        this.#write(send.chunks).then(send.resolve, send.reject);
      }
    }
    this.#endOnceWritten();
  }

  /** After close(): FIN once every send made before it has been written. */
  #endOnceWritten(): void {
    const socket = this.#socket;
    if (this.#closedLocally && this.#blocked.length === 0 && !socket.writableEnded && !socket.destroyed) {
      socket.end();
    }
  }

  #sendFailure(): ConnectionClosedError | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#closedLocally) {
      return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: this end is closed`);
    }
    const socket = this.#socket;
    if (this.#endedByPeer || socket.writableEnded || socket.destroyed) {
      return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the peer closed the connection`);
    }
    return null;
  }

  #closeInOrder(): Promise<void> {
    this.#closedLocally = true;
    this.#received.length = 0;
    this.#receivedBytes = 0;
    this.#wake();
    const socket = this.#socket;
    if (this.#socketClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const linger = setTimeout(() => socket.destroy(), this.#settings.closeLingerMs);
      linger.unref();
      socket.once("close", () => {
        clearTimeout(linger);
        resolve();
      });
      socket.resume();
      this.#endOnceWritten();
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

const reasons: Readonly<Record<string, string>> = {
  EADDRINUSE: "the address is in use",
  EADDRNOTAVAIL: "the address is not available here",
  EACCES: "permission denied",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the peer",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EPIPE: "the peer closed the connection",
  ETIMEDOUT: "timed out",
};

/** A runtime error as a short reason with its code (`connection refused (ECONNREFUSED)`). */
function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === undefined ? undefined : reasons[code];
  return reason === undefined ? error.message : `${reason} (${code})`;
}

/** The chunks of a `send` as a list, without empty ones. */
function chunkList(chunks: Uint8Array | readonly Uint8Array[]): Uint8Array[] {
  const list = chunks instanceof Uint8Array ? [chunks] : chunks;
  const nonEmpty: Uint8Array[] = [];
  for (const chunk of list) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError(`Cannot send ${typeof chunk}: not a Uint8Array`);
    if (chunk.length > 0) nonEmpty.push(chunk);
  }
  return nonEmpty;
}
