/**
 * An in-process {@link Transport}: listeners by name, connections that pass buffers by
 * reference, and faults a test can inject into each connection (seeded simulation drives
 * them; DESIGN.md, "Seams").
 *
 * Zero-copy: the receiver gets the very `Uint8Array` objects the sender passed. The sender
 * must not touch a buffer until its `send` settles, and a `send` resolves only when the
 * receiver has taken every chunk of it from its queue (one microtask later, so a receiver's
 * synchronous handling of a chunk comes first). That is also what bounds memory: each
 * direction of a connection queues at most `bufferBytesMax` bytes the receiver has not taken
 * (a larger single chunk only when the queue is empty); further sends wait to be queued.
 * Unlike TCP, where a small send completes into the kernel's buffer, a send here waits for
 * the peer to read (see {@link Connection.send}).
 *
 * Held sends (`sendHeld`, {@link Connection.sendHeld}): the receiver may read their chunks
 * where they lie until it asks for the next chunk or calls `release` (`chunkHeld` tells it
 * which chunks came so), and the send settles only then. A chunk is released by the
 * receiver alone, never by a close or a break, because its consumer may still be reading it;
 * a send cut off by a break with one of its chunks out settles (rejected) at that release.
 * The switch sends its WRITE batches so, from its copy buffer, and the appliance journals
 * them without copying them first (`FramedConnection`).
 *
 * Faults, per connection (either end's object controls the whole connection):
 * - `drop()`: the connection breaks. Both ends' iterations throw {@link ConnectionClosedError};
 *   pending and later sends reject with it.
 * - `stall()` / `resume()`: deliveries pause in both directions; senders keep queueing up to
 *   the bound, then wait.
 * - `dropAfterBytes(n)`: the connection drops once `n` more bytes have been delivered (both
 *   directions counted). A chunk that crosses the mark is delivered cut at it (a view of the
 *   sender's buffer), so a reader sees a frame torn where a real network would tear it.
 *
 * @example
 * ```ts
 * import { MemoryTransport } from "./memory_transport.ts";
 *
 * const transport = new MemoryTransport();
 * const listener = await transport.listen("appliance");
 * const client = await transport.connect("appliance");
 * const accepted = listener[Symbol.asyncIterator]();
 * const server = (await accepted.next()).value!;
 * const sent = client.send(new Uint8Array([1, 2, 3]));
 * for await (const chunk of server) {
 *   chunk; // the very Uint8Array passed to send
 *   break;
 * }
 * await sent;
 * client.drop(); // both ends see the connection break
 * ```
 */
import { assert } from "../core/assert.ts";
import {
  ConnectFailedError,
  type Connection,
  ConnectionClosedError,
  type Listener,
  type Transport,
} from "./transport.ts";

/** Default bound on the bytes queued in each direction of a connection. */
export const MEMORY_BUFFER_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** Default bound on connections made but not yet accepted, per listener (a TCP backlog). */
export const MEMORY_ACCEPT_QUEUE_MAX_DEFAULT = 128;

/** Options of {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  /** Bytes each direction of a connection queues before sends wait (default 4 MiB). */
  bufferBytesMax?: number;
  /** Connections a listener holds before it accepts them; more are refused (default 128). */
  acceptQueueMax?: number;
}

/** The in-process transport; see the module doc. */
export class MemoryTransport implements Transport {
  readonly #bufferBytesMax: number;
  readonly #acceptQueueMax: number;
  readonly #endpoints = new Map<string, Endpoint>();
  #connectionCount = 0;

  constructor(options: MemoryTransportOptions = {}) {
    this.#bufferBytesMax = options.bufferBytesMax ?? MEMORY_BUFFER_BYTES_MAX_DEFAULT;
    this.#acceptQueueMax = options.acceptQueueMax ?? MEMORY_ACCEPT_QUEUE_MAX_DEFAULT;
    if (!Number.isSafeInteger(this.#bufferBytesMax) || this.#bufferBytesMax < 1) {
      throw new RangeError(`Cannot use bufferBytesMax ${this.#bufferBytesMax}: not a positive integer`);
    }
    if (!Number.isSafeInteger(this.#acceptQueueMax) || this.#acceptQueueMax < 1) {
      throw new RangeError(`Cannot use acceptQueueMax ${this.#acceptQueueMax}: not a positive integer`);
    }
  }

  /**
   * Connects to the listener named `address`; resolves at once (the listener accepts later).
   *
   * @throws {ConnectFailedError} when no listener has that name, or its queue is full.
   */
  connect(address: string): Promise<MemoryConnection> {
    try {
      checkName(address);
    } catch (error) {
      return Promise.reject(error);
    }
    const endpoint = this.#endpoints.get(address);
    if (endpoint === undefined) {
      return Promise.reject(new ConnectFailedError(`Cannot connect to "${address}": nothing listens there`));
    }
    if (endpoint.accepting.length >= this.#acceptQueueMax) {
      return Promise.reject(
        new ConnectFailedError(
          `Cannot connect to "${address}": ${endpoint.accepting.length} connections wait to be accepted already`,
        ),
      );
    }
    this.#connectionCount++;
    const link = new Link(`inproc:${address}/client-${this.#connectionCount}`, this.#bufferBytesMax);
    const [toServer, toClient] = link.pipes;
    const client = new MemoryConnection(link, { outgoing: toServer, incoming: toClient }, `inproc:${address}`);
    const server = new MemoryConnection(
      link,
      { outgoing: toClient, incoming: toServer },
      `inproc:${address}/client-${this.#connectionCount}`,
    );
    endpoint.accepting.push(server);
    endpoint.wake();
    return Promise.resolve(client);
  }

  /**
   * Listens on the name `address` until the listener is closed.
   *
   * @throws {Error} when a listener has that name already.
   */
  listen(address: string): Promise<MemoryListener> {
    try {
      checkName(address);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#endpoints.has(address)) {
      return Promise.reject(new Error(`Cannot listen on "${address}": the name is in use`));
    }
    const endpoint = new Endpoint(address, () => this.#endpoints.delete(address));
    this.#endpoints.set(address, endpoint);
    return Promise.resolve(new MemoryListener(endpoint));
  }
}

/** A listener of the {@link MemoryTransport}; iterate it to accept connections. */
export class MemoryListener implements Listener {
  readonly #endpoint: Endpoint;

  /** Made by {@link MemoryTransport.listen}. */
  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  /** The name listened on. */
  get address(): string {
    return this.#endpoint.name;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<MemoryConnection, void, undefined> {
    const endpoint = this.#endpoint;
    for (;;) {
      const connection = endpoint.accepting.shift();
      if (connection !== undefined) {
        yield connection;
      } else if (endpoint.closed) {
        return;
      } else {
        await new Promise<void>((resolve) => endpoint.waitForChange(resolve));
      }
    }
  }

  /** Frees the name; connections made but not yet accepted are closed. */
  close(): Promise<void> {
    const endpoint = this.#endpoint;
    if (!endpoint.closed) {
      endpoint.closed = true;
      endpoint.unregister();
      const unaccepted = endpoint.accepting.splice(0);
      for (const connection of unaccepted) void connection.close();
      endpoint.wake();
    }
    return Promise.resolve();
  }
}

/** One end of an in-process connection; see the module doc for its faults. */
export class MemoryConnection implements Connection {
  readonly remoteAddress: string;
  readonly #link: Link;
  readonly #outgoing: Pipe;
  readonly #incoming: Pipe;
  #closed = false;

  /** Made by {@link MemoryTransport.connect}, one for each end. */
  constructor(link: Link, pipes: { outgoing: Pipe; incoming: Pipe }, remoteAddress: string) {
    this.#link = link;
    this.#outgoing = pipes.outgoing;
    this.#incoming = pipes.incoming;
    this.remoteAddress = remoteAddress;
  }

  /** Bytes this end sent that the peer has not taken yet, queued (at most the bound). */
  get bufferedBytes(): number {
    return this.#outgoing.queuedBytes;
  }

  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    return this.#send(chunks, false);
  }

  /** See {@link Connection.sendHeld} and the module doc. */
  sendHeld(chunks: readonly Uint8Array[]): Promise<void> {
    return this.#send(chunks, true);
  }

  /** Whether the chunk the iteration yielded last is held (see {@link Connection.chunkHeld}). */
  get chunkHeld(): boolean {
    return this.#incoming.lent !== null;
  }

  /** Done with the chunk the iteration yielded last (see {@link Connection.release}). */
  release(): void {
    this.#incoming.release();
  }

  #send(chunks: Uint8Array | readonly Uint8Array[], held: boolean): Promise<void> {
    let list: Uint8Array[];
    try {
      list = chunkList(chunks);
    } catch (error) {
      return Promise.reject(error);
    }
    const failure = this.#sendFailure();
    if (failure !== null) return Promise.reject(failure);
    if (list.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const outgoing = this.#outgoing;
      outgoing.waiting.push({
        chunks: list,
        held,
        queuedCount: 0,
        takenCount: 0,
        lentCount: 0,
        deferredError: null,
        settled: false,
        resolve,
        reject,
      });
      outgoing.admit();
      outgoing.wakeReader();
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const incoming = this.#incoming;
    incoming.readerClosed = true;
    incoming.cutOff(new ConnectionClosedError(`Connection to ${this.remoteAddress} was closed by the peer`));
    incoming.wakeReader();
    this.#outgoing.writerClosed = true;
    this.#outgoing.wakeReader();
    return Promise.resolve();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return {
      next: () => this.#next(),
      // Leaving the loop early stops this iteration only; the connection stays open.
      return: () => {
        this.#incoming.release();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  /** Breaks the connection now (a fault): both ends see {@link ConnectionClosedError}. */
  drop(): void {
    this.#link.drop(`Connection ${this.#link.name} dropped (injected fault)`);
  }

  /** Pauses deliveries in both directions until {@link resume}. */
  stall(): void {
    this.#link.stalled = true;
  }

  /** Resumes deliveries after {@link stall}. */
  resume(): void {
    this.#link.stalled = false;
    for (const pipe of this.#link.pipes) pipe.wakeReader();
  }

  /**
   * Drops the connection once `lengthBytes` more bytes have been delivered, in either
   * direction; 0 drops it now.
   *
   * @throws {RangeError} when `lengthBytes` is not a non-negative integer.
   */
  dropAfterBytes(lengthBytes: number): void {
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) {
      throw new RangeError(`Cannot drop after ${lengthBytes} bytes: not a non-negative integer`);
    }
    if (lengthBytes === 0) {
      this.drop();
    } else {
      this.#link.bytesUntilDrop = lengthBytes;
    }
  }

  async #next(): Promise<IteratorResult<Uint8Array, undefined>> {
    this.#incoming.release(); // asking for the next chunk: done with the last
    for (;;) {
      const result = this.#poll();
      if (result !== null) return result;
      await new Promise<void>((resolve) => this.#incoming.waitForChange(resolve));
    }
  }

  /** The next result if there is one now, `null` to wait; throws when the link broke. */
  #poll(): IteratorResult<Uint8Array, undefined> | null {
    if (this.#closed) return done;
    const link = this.#link;
    if (link.failure !== null) throw link.failure;
    if (link.stalled) return null;
    const incoming = this.#incoming;
    const head = incoming.peek();
    if (head === undefined) return incoming.writerClosed ? done : null;
    const untilDrop = link.bytesUntilDrop;
    if (untilDrop !== null && head.length >= untilDrop) {
      // The fault fires inside this chunk: deliver the bytes before the mark, then break.
      if (head.length === untilDrop) incoming.take();
      link.drop(`Connection ${link.name} dropped after the bytes it was told to pass (injected fault)`);
      return { done: false, value: head.subarray(0, untilDrop) };
    }
    incoming.take();
    if (untilDrop !== null) link.bytesUntilDrop = untilDrop - head.length;
    return { done: false, value: head };
  }

  #sendFailure(): ConnectionClosedError | null {
    if (this.#link.failure !== null) return this.#link.failure;
    if (this.#closed) return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: this end is closed`);
    if (this.#outgoing.readerClosed) {
      return new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the peer closed the connection`);
    }
    return null;
  }
}

const done: IteratorResult<Uint8Array, undefined> = { done: true, value: undefined };

/** A send whose chunks the receiver has not all taken (or, held, released) yet. */
interface PendingSend {
  readonly chunks: readonly Uint8Array[];
  /** Sent by `sendHeld`: settles when its chunks are released, not when they are taken. */
  readonly held: boolean;
  /** Chunks moved into the pipe's queue so far. */
  queuedCount: number;
  /** Chunks the receiver took so far. */
  takenCount: number;
  /** Held chunks the receiver took and has not released (0 or 1). */
  lentCount: number;
  /** Why the send failed while a chunk of it was out; it settles so at the release. */
  deferredError: ConnectionClosedError | null;
  settled: boolean;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface QueuedChunk {
  readonly bytes: Uint8Array;
  readonly send: PendingSend;
}

/** One direction of a connection: what the writer sent that the reader has not taken. */
class Pipe {
  readonly bufferBytesMax: number;
  /** Chunks the reader may take, in order; their bytes add up to `queuedBytes`. */
  readonly queue: QueuedChunk[] = [];
  queuedBytes = 0;
  /** Sends, in order, with chunks not queued yet because the queue was full. */
  readonly waiting: PendingSend[] = [];
  /** The writer closed: the reader takes what is queued, then sees the end. */
  writerClosed = false;
  /** The reader closed: nothing more is accepted. */
  readerClosed = false;
  /** The held chunk the reader took last and has not released, or `null`. */
  lent: QueuedChunk | null = null;
  #waiter: (() => void) | null = null;

  constructor(bufferBytesMax: number) {
    this.bufferBytesMax = bufferBytesMax;
  }

  /** Moves waiting chunks into the queue, in order, while they fit. */
  admit(): void {
    while (this.waiting.length > 0) {
      const send = this.waiting[0];
      while (send.queuedCount < send.chunks.length) {
        const bytes = send.chunks[send.queuedCount];
        // A chunk larger than the bound still goes through, alone.
        if (this.queuedBytes > 0 && this.queuedBytes + bytes.length > this.bufferBytesMax) return;
        this.queue.push({ bytes, send });
        this.queuedBytes += bytes.length;
        send.queuedCount++;
      }
      this.waiting.shift();
    }
  }

  peek(): Uint8Array | undefined {
    return this.queue[0]?.bytes;
  }

  /**
   * Removes the head chunk; its send resolves once all its chunks are taken (held: once the
   * last is released).
   */
  take(): void {
    const head = this.queue.shift();
    assert(head !== undefined, "take() needs a queued chunk");
    assert(this.lent === null, "A held chunk is released before the next is taken");
    this.queuedBytes -= head.bytes.length;
    assert(this.queuedBytes >= 0, "queued bytes went negative");
    const send = head.send;
    send.takenCount++;
    if (send.held) {
      send.lentCount++;
      this.lent = head;
    } else if (send.takenCount === send.chunks.length) {
      settle(send, null);
    }
    this.admit();
  }

  /** The reader is done with the held chunk it took last, if any. */
  release(): void {
    const lent = this.lent;
    if (lent === null) return;
    this.lent = null;
    const send = lent.send;
    send.lentCount--;
    assert(send.lentCount === 0, "At most one chunk of a send is out at a time");
    if (send.deferredError !== null) settle(send, send.deferredError);
    else if (send.takenCount === send.chunks.length) settle(send, null);
  }

  /** Rejects every send not wholly taken (a held one with a chunk out, at its release), and empties the pipe. */
  cutOff(error: ConnectionClosedError): void {
    const fail = (send: PendingSend): void => {
      if (send.lentCount > 0) send.deferredError ??= error;
      else settle(send, error);
    };
    for (const queued of this.queue) fail(queued.send);
    for (const send of this.waiting) fail(send);
    this.queue.length = 0;
    this.waiting.length = 0;
    this.queuedBytes = 0;
  }

  /** Calls `wake` at the next change a reader may care about (one waiter at a time). */
  waitForChange(wake: () => void): void {
    assert(this.#waiter === null, "Only one iteration may wait on a connection at a time");
    this.#waiter = wake;
  }

  wakeReader(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

/**
 * Settles a send one microtask late: the receiver's code that was handed the last chunk
 * runs before the sender's continuation can reuse the buffer.
 */
function settle(send: PendingSend, error: ConnectionClosedError | null): void {
  if (send.settled) return;
  send.settled = true;
  queueMicrotask(error === null ? send.resolve : () => send.reject(error));
}

/** What both ends of a connection share: its two pipes and its faults. */
class Link {
  /** For messages: `inproc:NAME/client-N`. */
  readonly name: string;
  /** `[client to server, server to client]`. */
  readonly pipes: readonly [Pipe, Pipe];
  stalled = false;
  /** Set when the connection broke; every later operation sees it. */
  failure: ConnectionClosedError | null = null;
  /** Bytes left to deliver before an armed `dropAfterBytes` fires, or `null`. */
  bytesUntilDrop: number | null = null;

  constructor(name: string, bufferBytesMax: number) {
    this.name = name;
    this.pipes = [new Pipe(bufferBytesMax), new Pipe(bufferBytesMax)];
  }

  drop(message: string): void {
    if (this.failure !== null) return;
    this.failure = new ConnectionClosedError(message);
    this.bytesUntilDrop = null;
    for (const pipe of this.pipes) {
      pipe.cutOff(this.failure);
      pipe.wakeReader();
    }
  }
}

/** A name listened on, and the connections made to it that were not accepted yet. */
class Endpoint {
  readonly name: string;
  readonly accepting: MemoryConnection[] = [];
  closed = false;
  readonly unregister: () => void;
  #waiter: (() => void) | null = null;

  constructor(name: string, unregister: () => void) {
    this.name = name;
    this.unregister = unregister;
  }

  waitForChange(wake: () => void): void {
    assert(this.#waiter === null, "Only one iteration may wait on a listener at a time");
    this.#waiter = wake;
  }

  wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

function checkName(address: string): void {
  if (typeof address !== "string" || address.length === 0) {
    throw new SyntaxError(`Cannot parse address "${address}": expected a non-empty name`);
  }
}

/** The chunks of a `send` as a list, without empty ones (a byte stream has no empty chunk). */
function chunkList(chunks: Uint8Array | readonly Uint8Array[]): Uint8Array[] {
  const list = chunks instanceof Uint8Array ? [chunks] : chunks;
  const nonEmpty: Uint8Array[] = [];
  for (const chunk of list) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError(`Cannot send ${typeof chunk}: not a Uint8Array`);
    if (chunk.length > 0) nonEmpty.push(chunk);
  }
  return nonEmpty;
}
