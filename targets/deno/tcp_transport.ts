/**
 * The Deno target's TCP {@link Transport}, on `Deno.connect` / `Deno.listen`; the same
 * contract, addresses and options as the Node target's `tcp_transport.ts`.
 *
 * Memory stays bounded in both directions:
 * - Sending: sends run one at a time, in order; each loops on `conn.write` until every byte
 *   is taken (a write may take part of a buffer), and resolves when the kernel has them all,
 *   so the caller may reuse its buffers then, and a full socket makes it wait (backpressure).
 *   Deno has no `writev`: a send of several chunks that fit in {@link TCP_COALESCE_BYTES_MAX}
 *   is copied into one buffer (allocated with the connection) and written with one call, so a
 *   header and its payload leave in one segment rather than two; larger chunks go by
 *   reference.
 * - Receiving: a read loop reads (up to 256 KiB at a time) into consecutive pieces of a 1 MiB
 *   slab, and queues each piece it filled for the iteration; the receiver owns what it gets
 *   (a piece is never reused; a chunk kept forever pins at most its slab). Past
 *   `receiveQueueBytesMax` the loop stops reading, the kernel's window closes and the sender
 *   waits; it reads again when the iteration has taken half.
 * - Receiving into a sink (`sinkTo`): each read goes into the view the sink names (asked
 *   after the previous read was delivered), else into a slab piece, and is handed to the
 *   sink as it completes; a sink that returns false stops the loop until `resume`.
 *
 * Why slabs: a fresh buffer per read halves Deno's loopback throughput. Measured here (Deno
 * 2.9, 2 cores, 64 KiB sends, bare `read`/`write` loops): one reused read buffer ~3.1 GiB/s,
 * a fresh 64 KiB buffer per read ~1.7 GiB/s, pieces of 1 MiB slabs ~2.0 GiB/s. Through this
 * class: 64 KiB reads into a fresh buffer ~1.35 GiB/s, 256 KiB reads from slabs ~1.8 GiB/s.
 * Reusing buffers would be faster still, but then a receiver could not keep a chunk.
 *
 * Connections use `setNoDelay(true)` (whole messages; Nagle would hold each one's last
 * segment for a round trip). Like Node's `allowHalfOpen: false`, a connection whose peer
 * closed its side closes this side too once the sends in progress are done. `close()` is
 * orderly: it lets the sends made before it finish, sends FIN, discards whatever still
 * arrives and waits for the peer's FIN, so the kernel never answers unread data with a reset
 * that could destroy bytes in flight; a peer that does not take the bytes and close within
 * `closeLingerMs` is reset (the sends still pending then reject).
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
import { assert } from "../../src/core/assert.ts";
import {
  ConnectFailedError,
  type Connection,
  ConnectionClosedError,
  formatTcpAddress,
  type Listener,
  parseTcpAddress,
  type ReceiveSink,
  type Transport,
} from "../../src/io/transport.ts";

/** Default bound on received bytes queued before the read loop stops reading. */
export const TCP_RECEIVE_QUEUE_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** Default time `close()` waits for the peer to close its side before resetting. */
export const TCP_CLOSE_LINGER_MS_DEFAULT = 2_000;
/** A send of several chunks up to this size in all is copied into one write. */
export const TCP_COALESCE_BYTES_MAX = 64 * 1024;

/** Reads carve their buffers out of slabs this large: one allocation per slab, not per read. */
const slabBytes = 1024 * 1024;
/** Largest single read. */
const readBytesMax = 256 * 1024;
/** A slab with less room than this left is replaced. */
const readBytesMin = 16 * 1024;

/** Options of {@link TcpTransport}. */
export interface TcpTransportOptions {
  /** Received bytes queued for the iteration before reading stops (default 4 MiB). */
  receiveQueueBytesMax?: number;
  /** How long `close()` waits for the peer's side to close before resetting (default 2 s). */
  closeLingerMs?: number;
}

type Settings = Required<TcpTransportOptions>;

/** TCP over `Deno.connect` / `Deno.listen`; see the module doc. */
export class TcpTransport implements Transport {
  readonly #settings: Settings;

  constructor(options: TcpTransportOptions = {}) {
    this.#settings = {
      receiveQueueBytesMax: options.receiveQueueBytesMax ?? TCP_RECEIVE_QUEUE_BYTES_MAX_DEFAULT,
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
  async connect(address: string): Promise<TcpConnection> {
    const { hostname, port } = parseTcpAddress(address);
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port, transport: "tcp" });
    } catch (error) {
      throw new ConnectFailedError(`Cannot connect to "${address}": ${describe(error)}`, { cause: error });
    }
    return new TcpConnection(conn, this.#settings);
  }

  /**
   * Listens on `HOST:PORT` (port 0: any free port).
   *
   * @throws {Error} when the address cannot be bound (in use, not local), with the runtime's
   * error as `cause`.
   * @throws {SyntaxError} when the address cannot be parsed.
   */
  listen(address: string): Promise<TcpListener> {
    let listener: Deno.TcpListener;
    try {
      const { hostname, port } = parseTcpAddress(address);
      try {
        listener = Deno.listen({ hostname, port, transport: "tcp" });
      } catch (error) {
        throw new Error(`Cannot listen on "${address}": ${describe(error)}`, { cause: error });
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(new TcpListener(listener, this.#settings));
  }
}

/**
 * A listening TCP socket; iterate it to accept connections. It accepts only when the
 * iteration asks, so connections not yet accepted wait in the kernel's backlog (Deno's
 * `listen` sets its size; the Node target's `acceptQueueMax` has no counterpart here).
 */
export class TcpListener implements Listener {
  readonly address: string;
  readonly #listener: Deno.TcpListener;
  readonly #settings: Settings;
  #closed = false;

  /** Made by {@link TcpTransport.listen}, on a listening socket. */
  constructor(listener: Deno.TcpListener, settings: Settings) {
    this.#listener = listener;
    this.#settings = settings;
    this.address = formatTcpAddress(listener.addr.hostname, listener.addr.port);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TcpConnection, void, undefined> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        // Closing the listener makes the accept in progress fail: that is the end.
        if (this.#closed) return;
        throw new Error(`Listener on ${this.address} failed: ${describe(error)}`, { cause: error });
      }
      yield new TcpConnection(conn, this.#settings);
    }
  }

  /** Stops accepting; connections still in the kernel's queue are reset. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#listener.close();
    }
    return Promise.resolve();
  }
}

/** One end of a TCP connection. */
export class TcpConnection implements Connection {
  readonly remoteAddress: string;
  readonly #conn: Deno.TcpConn;
  readonly #settings: Settings;
  /** Received chunks the iteration has not taken; their bytes add up to `#receivedBytes`. */
  readonly #received: Uint8Array[] = [];
  #receivedBytes = 0;
  /** Where sends copy chunks they coalesce; one send uses it at a time. */
  readonly #coalesceBuffer = new Uint8Array(TCP_COALESCE_BYTES_MAX);
  /** Settles when every send made so far has settled (sends run in this order). */
  #sendTail: Promise<void> = Promise.resolve();
  /** The read loop ended: the peer's FIN, a failure, or the connection was closed. */
  #readDone = false;
  readonly #readLoopDone: Promise<void>;
  /** The peer's FIN arrived. */
  #endedByPeer = false;
  /** Why the connection broke, if it did. */
  #failure: ConnectionClosedError | null = null;
  #closedLocally = false;
  #connClosed = false;
  #closing: Promise<void> | null = null;
  #iterationWaiter: (() => void) | null = null;
  #readLoopWaiter: (() => void) | null = null;
  /** Where received bytes go after `sinkTo` (the iteration is over then). */
  #sink: ReceiveSink | null = null;
  /** The sink's `receive` returned false and `resume` was not called since. */
  #sinkPaused = false;
  /** The sink heard `end`. */
  #sinkEnded = false;

  /** Made by {@link TcpTransport}, on a connected socket. */
  constructor(conn: Deno.TcpConn, settings: Settings) {
    this.#conn = conn;
    this.#settings = settings;
    this.remoteAddress = formatTcpAddress(conn.remoteAddr.hostname, conn.remoteAddr.port);
    conn.setNoDelay(true);
    this.#readLoopDone = this.#readLoop();
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
    const sent = this.#sendTail.then(() => this.#writeAll(list));
    this.#sendTail = sent.then(ignore, ignore);
    return sent;
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeInOrder();
    return this.#closing;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      if (this.#closedLocally || this.#sink !== null) return;
      const chunk = this.#received.shift();
      if (chunk !== undefined) {
        this.#receivedBytes -= chunk.length;
        if (this.#receivedBytes <= this.#settings.receiveQueueBytesMax / 2) this.#wakeReadLoop();
        yield chunk;
      } else if (this.#failure !== null) {
        throw this.#failure;
      } else if (this.#readDone) {
        return;
      } else {
        await new Promise<void>((resolve) => {
          assert(this.#iterationWaiter === null, "Only one iteration may wait on a connection at a time");
          this.#iterationWaiter = resolve;
        });
      }
    }
  }

  /**
   * Sends the received bytes to `sink` from now on (the seam's `sinkTo`): first what the
   * iteration had queued, then each read as it completes, into the views the sink names.
   */
  sinkTo(sink: ReceiveSink): () => void {
    assert(this.#sink === null, "A connection delivers to one sink");
    this.#sink = sink;
    if (this.#closedLocally) return () => {};
    this.#drainToSink();
    return () => {
      if (!this.#sinkPaused || this.#closedLocally) return;
      this.#sinkPaused = false;
      this.#drainToSink();
    };
  }

  /** Hands the sink what the iteration had queued, while it takes more; then reads on. */
  #drainToSink(): void {
    while (!this.#sinkPaused && this.#received.length > 0) {
      const chunk = this.#received.shift()!;
      this.#receivedBytes -= chunk.length;
      this.#deliverToSink(chunk);
    }
    if (this.#sinkPaused) return;
    this.#maybeEndSink();
    this.#wakeReadLoop();
  }

  #deliverToSink(chunk: Uint8Array): void {
    const sink = this.#sink;
    assert(sink !== null, "Bytes go to a sink only once there is one");
    if (this.#sinkEnded || this.#failure !== null) return;
    try {
      if (sink.receive(chunk) === false) this.#sinkPaused = true;
    } catch (error) {
      this.#breakForSink(error);
    }
  }

  #sinkTarget(): Uint8Array | null {
    const sink = this.#sink;
    if (sink === null || this.#closedLocally || this.#sinkEnded || this.#failure !== null) return null;
    try {
      const target = sink.readTarget();
      assert(target === null || (target instanceof Uint8Array && target.length > 0), "A read target holds at least one byte");
      return target;
    } catch (error) {
      this.#breakForSink(error);
      return null;
    }
  }

  /** The sink threw: the connection breaks (the seam: a sink must not throw). */
  #breakForSink(error: unknown): void {
    if (this.#failure === null) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#failure = new ConnectionClosedError(`Connection to ${this.remoteAddress} broke: its receiver failed: ${reason}`, {
        cause: error,
      });
    }
    this.#sinkPaused = true;
    this.#closeConn();
    this.#maybeEndSink();
    this.#wakeReadLoop(); // it leaves its wait and ends on the closed connection
  }

  /** Tells the sink of the end once every byte before it was delivered (once). */
  #maybeEndSink(): void {
    const sink = this.#sink;
    if (sink === null || this.#sinkEnded || this.#closedLocally || this.#received.length > 0) return;
    if (this.#failure === null && !this.#readDone) return;
    this.#sinkEnded = true;
    sink.end(this.#failure ?? undefined);
  }

  #wakeIteration(): void {
    const waiter = this.#iterationWaiter;
    this.#iterationWaiter = null;
    waiter?.();
  }

  #wakeReadLoop(): void {
    const waiter = this.#readLoopWaiter;
    this.#readLoopWaiter = null;
    waiter?.();
  }

  async #readLoop(): Promise<void> {
    let slab = new Uint8Array(slabBytes);
    let slabAtBytes = 0;
    try {
      for (;;) {
        while (
          !this.#closedLocally && !this.#connClosed &&
          (this.#sink !== null ? this.#sinkPaused : this.#receivedBytes >= this.#settings.receiveQueueBytesMax)
        ) {
          await new Promise<void>((resolve) => {
            this.#readLoopWaiter = resolve;
          });
        }
        // A sink may name where the bytes belong (asked now, after the last delivery).
        const target = this.#sink !== null && this.#received.length === 0 ? this.#sinkTarget() : null;
        if (target === null && slabBytes - slabAtBytes < readBytesMin) {
          slab = new Uint8Array(slabBytes);
          slabAtBytes = 0;
        }
        const lengthBytes = await this.#conn.read(
          target ?? slab.subarray(slabAtBytes, Math.min(slabBytes, slabAtBytes + readBytesMax)),
        );
        if (lengthBytes === null) {
          this.#endedByPeer = true;
          break;
        }
        // After close() the bytes are read only so the peer's FIN can arrive; nobody wants them.
        if (this.#closedLocally) continue;
        let chunk: Uint8Array;
        if (target !== null) {
          chunk = target.subarray(0, lengthBytes);
        } else {
          chunk = slab.subarray(slabAtBytes, slabAtBytes + lengthBytes);
          slabAtBytes += lengthBytes;
        }
        if (this.#sink !== null && this.#received.length === 0 && !this.#sinkPaused) {
          this.#deliverToSink(chunk);
        } else {
          // Read before `sinkTo` took over (or while its backlog waits): queued, in order.
          this.#received.push(chunk);
          this.#receivedBytes += lengthBytes;
          this.#wakeIteration();
        }
      }
    } catch (error) {
      // Closing the connection makes the read in progress fail: that is not a breakage.
      if (!this.#connClosed && this.#failure === null) {
        this.#failure = new ConnectionClosedError(`Connection to ${this.remoteAddress} broke: ${describe(error)}`, {
          cause: error,
        });
      }
    }
    this.#readDone = true;
    this.#wakeIteration();
    this.#maybeEndSink();
    if (this.#failure !== null) {
      this.#closeConn();
    } else if (!this.#closedLocally) {
      // The peer closed its side: close ours once the send in progress is done.
      void this.#sendTail.then(() => this.#closeConn());
    }
  }

  /** Writes the chunks, coalescing a small send into one write. */
  async #writeAll(chunks: readonly Uint8Array[]): Promise<void> {
    // A send made before close() still goes out; only a broken or closed socket stops it.
    if (this.#failure !== null) throw this.#failure;
    if (this.#connClosed) {
      throw new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the connection is closed`);
    }
    let totalBytes = 0;
    for (const chunk of chunks) totalBytes += chunk.length;
    try {
      if (chunks.length > 1 && totalBytes <= this.#coalesceBuffer.length) {
        let offsetBytes = 0;
        for (const chunk of chunks) {
          this.#coalesceBuffer.set(chunk, offsetBytes);
          offsetBytes += chunk.length;
        }
        await this.#writeFully(this.#coalesceBuffer.subarray(0, totalBytes));
      } else {
        for (const chunk of chunks) await this.#writeFully(chunk);
      }
    } catch (error) {
      if (error instanceof ConnectionClosedError) throw error;
      throw this.#failure ??
        new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: ${describe(error)}`, { cause: error });
    }
  }

  async #writeFully(bytes: Uint8Array): Promise<void> {
    let offsetBytes = 0;
    while (offsetBytes < bytes.length) {
      offsetBytes += await this.#conn.write(bytes.subarray(offsetBytes));
    }
  }

  #sendFailure(): ConnectionClosedError | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#closedLocally) {
      return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: this end is closed`);
    }
    if (this.#endedByPeer || this.#connClosed) {
      return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the peer closed the connection`);
    }
    return null;
  }

  async #closeInOrder(): Promise<void> {
    this.#closedLocally = true;
    this.#received.length = 0;
    this.#receivedBytes = 0;
    this.#wakeIteration();
    this.#wakeReadLoop();
    if (this.#connClosed) return;
    let lingerTimer: ReturnType<typeof setTimeout> | undefined;
    const linger = new Promise<"linger">((resolve) => {
      lingerTimer = setTimeout(() => resolve("linger"), this.#settings.closeLingerMs);
      Deno.unrefTimer(lingerTimer);
    });
    try {
      // Sends made before close() go out first.
      if ((await Promise.race([this.#sendTail, linger])) === "linger") return;
      if (!this.#readDone && !this.#connClosed) {
        await this.#conn.closeWrite();
        await Promise.race([this.#readLoopDone, linger]);
      }
    } catch (error) {
      // A connection that broke while closing is closed all the same.
      if (!isConnectionGone(error)) throw error;
    } finally {
      clearTimeout(lingerTimer);
      this.#closeConn();
    }
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    this.#conn.close();
  }
}

function ignore(): void {}

/** Errors that mean the socket is already unusable (a reset, or closed under us). */
function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/** A runtime error as text (Deno's messages carry the OS reason: `Connection refused (os error 111)`). */
function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
