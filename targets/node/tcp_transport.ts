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
 * - Receiving: Node reads (up to 256 KiB at a time) into consecutive pieces of a 512 KiB slab
 *   (`onread` with a buffer function), and each piece it filled is queued for the iteration.
 *   Chunks are lent, as the seam says: once the iteration asks for the next chunk, the
 *   previous one's bytes may be read into again (a slab is reused when the iteration has
 *   moved past all its chunks; a connection keeps at most `slabsPooledMax`). Past
 *   `receiveQueueBytesMax` the socket is paused, so the kernel's window closes and the
 *   sender waits; it resumes when the iteration has taken half.
 * - Receiving into a sink (`sinkTo`): each read is handed to the sink inside Node's read
 *   callback, and the read after it goes into the view the sink names (Node asks the buffer
 *   function right after each callback), else into a slab piece that is free again once the
 *   sink returns. A sink that returns false pauses the socket (Node stops reading) until
 *   `resume`. So an NBD server has the kernel copy a large WRITE payload straight into its
 *   pooled buffer (`RequestDecoder.readTarget`).
 *
 * Why reused slabs: Node's default reads allocate a fresh 64 KiB buffer each, and their
 * allocation and collection were the receiving side's largest cost. Measured here (Node 20,
 * 2 cores, 2 GiB over loopback in 1 MiB writes, CPU of both ends in one process): `'data'`
 * chunks ~1.1 GiB/s at ~890 µs per MiB, reads into a reused buffer ~1.9 GiB/s at ~500 µs per
 * MiB; allocating a 1 MiB buffer per MiB received (slabs not reused) cost ~130-470 µs per
 * MiB more than filling a reused one. Node offers `onread` only to sockets it creates for
 * `connect`; an accepted socket arrives paused (`pauseOnConnect`) and its handle is taken
 * over by a socket made with `onread` (the accepted one is dropped without closing it, so
 * the server's own connection count never falls: nothing here reads it).
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
  type ReceiveSink,
  type Transport,
} from "../../src/io/transport.ts";

/** Default bound on received bytes queued before the socket is paused. */
export const TCP_RECEIVE_QUEUE_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** Default bound on connections a listener holds before they are accepted (also the backlog). */
export const TCP_ACCEPT_QUEUE_MAX_DEFAULT = 128;
/** Default time `close()` waits for the peer to close its side before resetting. */
export const TCP_CLOSE_LINGER_MS_DEFAULT = 2_000;

/** Reads carve their buffers out of slabs this large, reused once their chunks are released. */
const slabBytes = 512 * 1024;
/** Largest single read. */
const readBytesMax = 256 * 1024;
/** A slab with less room than this left is replaced. */
const readBytesMin = 16 * 1024;
/** Slabs a connection keeps for reuse (4 MiB: the default receive queue's bound). */
const slabsPooledMax = 8;

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
      const reader = new SlabReader();
      const socket = net.connect({ host: hostname, port, allowHalfOpen: false, noDelay: true, onread: reader.onread });
      const onError = (error: Error) => {
        reject(new ConnectFailedError(`Cannot connect to "${address}": ${describe(error)}`, { cause: error }));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        resolve(new TcpConnection(socket, reader, this.#settings));
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
    // Paused, so that no byte is read before the socket that reads into slabs takes over.
    const server = net.createServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: true });
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

  #onConnection(accepted: net.Socket): void {
    if (this.#closed || this.#accepted.length >= this.#settings.acceptQueueMax) {
      accepted.destroy();
      return;
    }
    // The module doc: the handle moves to a socket that reads into slabs. `_handle` is Node's
    // (undocumented but long-standing) field; the accepted socket, left without one, never
    // touches the connection again.
    const holder = accepted as unknown as { _handle: unknown };
    const handle = holder._handle;
    assert(handle !== null && typeof handle === "object", "An accepted socket holds its handle");
    holder._handle = null;
    const reader = new SlabReader();
    const socket = new net.Socket({ handle, allowHalfOpen: false, onread: reader.onread } as net.SocketConstructorOpts);
    this.#accepted.push(new TcpConnection(socket, reader, this.#settings));
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
  readonly #reader: SlabReader;
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
  /** The chunk the iteration yielded last, until it asks for the next one. */
  #lastYielded: Uint8Array | null = null;
  /** Where received bytes go after `sinkTo` (the iteration is over then). */
  #sink: ReceiveSink | null = null;
  /** The sink's `receive` returned false and `resume` was not called since. */
  #sinkPaused = false;
  /** The sink heard `end`. */
  #sinkEnded = false;

  /** Made by {@link TcpTransport}, on a connected socket that reads through `reader`. */
  constructor(socket: net.Socket, reader: SlabReader, settings: Settings) {
    this.#socket = socket;
    this.#settings = settings;
    this.#reader = reader;
    this.remoteAddress = formatTcpAddress(socket.remoteAddress ?? "unknown", socket.remotePort ?? 0);
    socket.setNoDelay(true);
    reader.deliverTo((chunk) => this.#onData(chunk));
    socket.on("end", () => {
      this.#endedByPeer = true;
      this.#wake();
      this.#maybeEndSink();
    });
    socket.on("error", (error) => this.#onError(error));
    socket.on("close", () => this.#onClose());
    socket.on("drain", () => this.#writeBlocked());
    // An accepted socket arrives paused (`pauseOnConnect`): reading starts here.
    socket.resume();
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
      if (this.#closedLocally || this.#sink !== null) return;
      const chunk = this.#received.shift();
      if (chunk !== undefined) {
        this.#receivedBytes -= chunk.length;
        if (socket.isPaused() && this.#receivedBytes <= this.#settings.receiveQueueBytesMax / 2) {
          socket.resume();
        }
        this.#lastYielded = chunk;
        yield chunk;
        // The iteration asked for the next chunk: this one's bytes may be read into again.
        if (this.#lastYielded === chunk) {
          this.#lastYielded = null;
          this.#reader.release(chunk);
        }
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

  /**
   * Sends the received bytes to `sink` from now on (the seam's `sinkTo`): first what the
   * iteration had queued, then each read as it completes, into the views the sink names.
   */
  sinkTo(sink: ReceiveSink): () => void {
    assert(this.#sink === null, "A connection delivers to one sink");
    this.#sink = sink;
    if (this.#lastYielded !== null) {
      this.#reader.release(this.#lastYielded);
      this.#lastYielded = null;
    }
    if (this.#closedLocally) return () => {};
    this.#reader.readInto(() => this.#sinkTarget());
    this.#drainToSink();
    return () => this.#resumeSink();
  }

  #onData(chunk: Uint8Array): boolean {
    // After close() the bytes are read only so the peer's FIN can arrive; nobody wants them.
    if (this.#closedLocally) {
      this.#reader.release(chunk);
      return true;
    }
    if (this.#sink !== null) {
      assert(this.#received.length === 0 && !this.#sinkPaused, "A sink gets reads only once its backlog is taken");
      const more = this.#sinkReceive(chunk);
      this.#reader.release(chunk);
      if (!more) this.#sinkPaused = true;
      return more;
    }
    this.#received.push(chunk);
    this.#receivedBytes += chunk.byteLength;
    if (this.#receivedBytes >= this.#settings.receiveQueueBytesMax) this.#socket.pause();
    this.#wake();
    return true;
  }

  #sinkTarget(): Uint8Array | null {
    const sink = this.#sink;
    if (sink === null || this.#closedLocally || this.#sinkEnded || this.#failure !== null) return null;
    try {
      return sink.readTarget();
    } catch (error) {
      this.#breakForSink(error);
      return null;
    }
  }

  #sinkReceive(chunk: Uint8Array): boolean {
    const sink = this.#sink;
    assert(sink !== null, "Bytes go to a sink only once there is one");
    if (this.#sinkEnded || this.#failure !== null) return false;
    try {
      return sink.receive(chunk) !== false;
    } catch (error) {
      this.#breakForSink(error);
      return false;
    }
  }

  /** Hands the sink what the iteration had queued, while it takes more; then reads on. */
  #drainToSink(): void {
    while (!this.#sinkPaused && this.#received.length > 0) {
      const chunk = this.#received.shift()!;
      this.#receivedBytes -= chunk.length;
      const more = this.#sinkReceive(chunk);
      this.#reader.release(chunk);
      if (!more) this.#sinkPaused = true;
    }
    if (this.#sinkPaused) {
      this.#socket.pause();
      return;
    }
    this.#maybeEndSink();
    if (!this.#sinkEnded && !this.#closedLocally) this.#socket.resume();
  }

  #resumeSink(): void {
    if (!this.#sinkPaused || this.#closedLocally) return;
    this.#sinkPaused = false;
    this.#drainToSink();
  }

  /** The sink threw: the connection breaks (the seam: a sink must not throw). */
  #breakForSink(error: unknown): void {
    if (this.#failure === null) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#failure = new ConnectionClosedError(`Connection to ${this.remoteAddress} broke: its receiver failed: ${reason}`, {
        cause: error,
      });
    }
    this.#socket.destroy();
  }

  /** Tells the sink of the end once every byte before it was delivered (once). */
  #maybeEndSink(): void {
    const sink = this.#sink;
    if (sink === null || this.#sinkEnded || this.#closedLocally || this.#received.length > 0) return;
    if (this.#failure === null && !this.#endedByPeer && !this.#socketClosed) return;
    this.#sinkEnded = true;
    sink.end(this.#failure ?? undefined);
  }

  #onError(error: Error): void {
    if (this.#failure === null && !this.#closedLocally) {
      this.#failure = new ConnectionClosedError(`Connection to ${this.remoteAddress} broke: ${describe(error)}`, {
        cause: error,
      });
    }
    this.#wake();
    this.#maybeEndSink();
  }

  #onClose(): void {
    this.#socketClosed = true;
    const error = this.#failure ??
      new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the connection is closed`);
    for (const send of this.#blocked.splice(0)) send.reject(error);
    this.#wake();
    this.#maybeEndSink();
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
    this.#reader.readInto(null);
    for (const chunk of this.#received.splice(0)) this.#reader.release(chunk);
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

/** A slab of a {@link SlabReader}: its pieces' chunks the iteration has not moved past. */
interface Slab {
  readonly bytes: Uint8Array;
  outstandingChunks: number;
}

/**
 * Node's `onread` for one socket: each read lands in the next piece of the current slab, and
 * the piece it filled goes to the consumer. A slab with less than `readBytesMin` left is
 * replaced by one whose chunks have all been released (the iteration moved past them), or a
 * new one; at most `slabsPooledMax` slabs are kept for reuse, so a connection's receive
 * memory is bounded and, once warm, allocates nothing.
 *
 * With a target source (`sinkTo`), each next read lands in the view it names instead, if it
 * names one. Node takes the buffer for a read from the buffer function it calls right after
 * delivering the read before, so the source is asked then, when the consumer has taken that
 * read's bytes.
 */
class SlabReader {
  readonly onread: { buffer: () => Uint8Array; callback: (lengthBytes: number, piece: Uint8Array) => boolean };
  /** Slabs kept for reuse (the current one among them unless the pool was full). */
  readonly #slabs: Slab[] = [];
  #current: Slab;
  #atBytes = 0;
  /** Takes each read's bytes; false pauses the socket (Node stops reading). */
  #consumer: ((chunk: Uint8Array) => boolean) | null = null;
  /** Pieces filled before {@link deliverTo} (a socket made by `connect` may read first). */
  readonly #early: Uint8Array[] = [];
  /** Names where the next read goes (null: a slab piece). */
  #targets: (() => Uint8Array | null) | null = null;
  /** The view the next read goes to, when the target source named one. */
  #target: Uint8Array | null = null;

  constructor() {
    this.#current = this.#newSlab();
    this.onread = {
      buffer: () => this.#nextBuffer(),
      callback: (lengthBytes, piece) => {
        if (piece === this.#target) {
          assert(lengthBytes <= piece.length, "Node read into the target it was given");
          this.#target = null;
          return this.#deliver(piece.subarray(0, lengthBytes));
        }
        const slab = this.#current;
        assert(
          piece.buffer === slab.bytes.buffer && piece.byteOffset === this.#atBytes && lengthBytes <= piece.length,
          "Node read into the piece it was given",
        );
        this.#atBytes += lengthBytes;
        slab.outstandingChunks++;
        return this.#deliver(piece.subarray(0, lengthBytes));
      },
    };
  }

  /** From now on each filled piece goes to `consumer` (those filled before it first, in order). */
  deliverTo(consumer: (chunk: Uint8Array) => boolean): void {
    assert(this.#consumer === null, "A reader delivers to one consumer");
    this.#consumer = consumer;
    for (const chunk of this.#early.splice(0)) consumer(chunk);
  }

  /**
   * From the read after next on, reads go where `targets` says (null: stop asking). The next
   * read's buffer was chosen already: a slab piece, or the target named last.
   */
  readInto(targets: (() => Uint8Array | null) | null): void {
    this.#targets = targets;
  }

  /** `chunk` (one this reader delivered) is no longer used: its bytes may be read into again. */
  release(chunk: Uint8Array): void {
    for (const slab of this.#slabs) {
      if (slab.bytes.buffer !== chunk.buffer) continue;
      assert(slab.outstandingChunks > 0, "A chunk is released once");
      slab.outstandingChunks--;
      return;
    }
    // A chunk of a slab the pool had no room for, or of a target: nothing to account.
  }

  #deliver(chunk: Uint8Array): boolean {
    if (this.#consumer === null) {
      this.#early.push(chunk);
      return true;
    }
    return this.#consumer(chunk);
  }

  #nextBuffer(): Uint8Array {
    const target = this.#targets?.() ?? null;
    if (target !== null) {
      assert(target instanceof Uint8Array && target.length > 0, "A read target holds at least one byte");
      this.#target = target;
      return target;
    }
    return this.#nextPiece();
  }

  #nextPiece(): Uint8Array {
    if (slabBytes - this.#atBytes < readBytesMin) {
      this.#current = this.#slabs.find((slab) => slab !== this.#current && slab.outstandingChunks === 0) ?? this.#newSlab();
      this.#atBytes = 0;
    }
    return this.#current.bytes.subarray(this.#atBytes, Math.min(slabBytes, this.#atBytes + readBytesMax));
  }

  #newSlab(): Slab {
    const slab: Slab = { bytes: new Uint8Array(slabBytes), outstandingChunks: 0 };
    if (this.#slabs.length < slabsPooledMax) this.#slabs.push(slab);
    return slab;
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
