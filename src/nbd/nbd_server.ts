/**
 * An NBD server over the {@link Connection} seam (NetworkBlockDevice/nbd `doc/proto.md`):
 * fixed newstyle handshake (NBD_FLAG_NO_ZEROES honoured); options NBD_OPT_GO, NBD_OPT_INFO,
 * NBD_OPT_LIST, NBD_OPT_EXPORT_NAME and NBD_OPT_ABORT, anything else NBD_REP_ERR_UNSUP;
 * simple replies to READ, WRITE (with FUA), FLUSH, TRIM, WRITE_ZEROES and DISC.
 *
 * How it stays safe with many clients:
 * - Exports are resolved per connection (`resolveExport` on GO / EXPORT_NAME), so an image
 *   opens on connect and closes when its connection ends.
 * - Each request is checked once, before any I/O ({@link checkRequest}); device failures map
 *   to error values in the same module ({@link errorValueOf}). A rejected request writes
 *   nothing.
 * - Requests run concurrently and reply out of order, but a connection holds at most
 *   `requestsInFlightMax` requests and `requestBytesInFlightMax` payload bytes: at the limit
 *   the server stops reading the socket, so a client that does not read its replies stalls
 *   only itself. Each reply's chunks go out in one `send` call, which the seam never
 *   interleaves; small replies that finish while a send is in flight go out together in the
 *   next one (one `writev` on TCP instead of a system call per reply, no delay added), while
 *   a reply of `replyBatchBytesMax` or more is sent on its own, so each large READ frees its
 *   place in the window as soon as the socket took it.
 * - At most `connectionsServedMax` connections are in transmission at once; one more is
 *   refused its NBD_OPT_GO with a message saying so (and may try again on the same
 *   connection), so the payload the server holds stays bounded whatever the number of clients.
 * - No per-request copies or allocations on the data path: a WRITE payload is copied once,
 *   from the received chunks into a pooled buffer ({@link RequestDecoder},
 *   {@link BufferPool}); READ data is read into a pooled buffer and sent by reference behind
 *   its 16-byte header. A buffer goes back to the pool only when the device call that used
 *   it and the send that carried it have settled (the seam's buffer rules).
 * - A stream that cannot be resynchronized (bad magic, unknown client flags) closes that
 *   connection only; nothing a client sends can throw out of {@link NbdServer.handle}.
 *
 * @example
 * ```ts
 * import { MemoryBlockDevice } from "../io/memory_block_device.ts";
 * import { NbdServer } from "./nbd_server.ts";
 *
 * const device = new MemoryBlockDevice(4 * 1024 * 1024);
 * const server = new NbdServer({
 *   resolveExport: async (name) => name === "disk" ? { device, readOnly: false } : undefined,
 *   listExports: () => [{ name: "disk" }],
 * });
 * // await server.serve(await transport.listen("127.0.0.1:10809"));
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import type { BlockDevice } from "../io/block_device.ts";
import { type Connection, ConnectionClosedError, type Listener } from "../io/transport.ts";
import { BufferPool } from "./buffer_pool.ts";
import { checkRequest, errorValueOf } from "./nbd_errors.ts";
import { nbdLimits } from "./nbd_limits.ts";
import {
  ByteQueue,
  type DecodedOption,
  type DecodedRequest,
  decodeClientFlags,
  decodeInfoRequest,
  decodeName,
  decodeOption,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoText,
  encodeOptionErrorReply,
  encodeOptionReply,
  encodeServerListing,
  encodeSimpleReplyHeader,
  nbdClientFlags,
  nbdCommandFlags,
  nbdCommands,
  type NbdError,
  nbdErrors,
  nbdInfoTypes,
  nbdOptionReplies,
  nbdOptions,
  NbdProtocolError,
  nbdTransmissionFlags,
  RequestDecoder,
  simpleReplyHeaderBytes,
} from "./protocol.ts";

/** What a name resolves to, for one connection. */
export interface NbdExport {
  readonly device: BlockDevice;
  /** Served with NBD_FLAG_READ_ONLY; writes get EPERM (also when the device is not writable). */
  readonly readOnly: boolean;
  readonly description?: string;
  /** Called once when the connection (or the NBD_OPT_INFO that resolved it) is done with it. */
  close?(): Promise<void>;
}

/** One entry of NBD_OPT_LIST. */
export interface NbdExportListing {
  readonly name: string;
  readonly description?: string;
}

/** Something worth a log line; `error` when it came from a throw. */
export interface NbdLogEvent {
  readonly remoteAddress: string;
  readonly message: string;
  readonly error?: unknown;
}

/** What the server needs from its owner. */
export interface NbdServerDeps {
  /** The export for `name`, opened for this connection, or undefined if there is none. */
  resolveExport(name: string): Promise<NbdExport | undefined>;
  listExports(): readonly NbdExportListing[] | Promise<readonly NbdExportListing[]>;
  log?: (event: NbdLogEvent) => void;
}

/** Options of {@link NbdServer}; defaults from {@link nbdLimits}. */
export interface NbdServerOptions {
  readonly requestsInFlightMax?: number;
  readonly requestBytesInFlightMax?: number;
  readonly connectionsServedMax?: number;
}

/** The NBD server; see the module doc. */
export class NbdServer {
  readonly #deps: NbdServerDeps;
  readonly #requestsInFlightMax: number;
  readonly #requestBytesInFlightMax: number;
  readonly #connectionsServedMax: number;
  /** Connections that chose an export (or are choosing one), at most `connectionsServedMax`. */
  readonly #served = new Set<Connection>();
  /** Zeros for WRITE_ZEROES, allocated once and never written to. */
  readonly #zeros = new Uint8Array(nbdLimits.zeroChunkBytes);
  readonly #sessions = new Map<Connection, Promise<void>>();
  /** WRITE payloads and READ data, shared by the connections. */
  readonly #buffers = new BufferPool({
    bytesMax: nbdLimits.payloadBytesMax,
    retainedBytesMax: nbdLimits.bufferPoolRetainedBytesMax,
  });

  constructor(deps: NbdServerDeps, options: NbdServerOptions = {}) {
    this.#deps = deps;
    this.#requestsInFlightMax = options.requestsInFlightMax ?? nbdLimits.requestsInFlightMax;
    this.#requestBytesInFlightMax = options.requestBytesInFlightMax ?? nbdLimits.requestBytesInFlightMax;
    this.#connectionsServedMax = options.connectionsServedMax ?? nbdLimits.connectionsServedMax;
    if (!Number.isSafeInteger(this.#connectionsServedMax) || this.#connectionsServedMax < 1) {
      throw new RangeError(`Cannot use connectionsServedMax ${this.#connectionsServedMax}: not a positive integer`);
    }
    if (!Number.isSafeInteger(this.#requestsInFlightMax) || this.#requestsInFlightMax < 1) {
      throw new RangeError(`Cannot use requestsInFlightMax ${this.#requestsInFlightMax}: not a positive integer`);
    }
    if (!Number.isSafeInteger(this.#requestBytesInFlightMax) || this.#requestBytesInFlightMax < 1) {
      throw new RangeError(
        `Cannot use requestBytesInFlightMax ${this.#requestBytesInFlightMax}: not a positive integer`,
      );
    }
  }

  /** Connections being served now. */
  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** Accepts connections until the listener closes; each is served on its own. */
  async serve(listener: Listener): Promise<void> {
    for await (const connection of listener) void this.handle(connection);
  }

  /**
   * Serves one connection to its end: handshake, then requests until NBD_CMD_DISC or the
   * peer goes. Never rejects; closes the connection and the export when done.
   */
  handle(connection: Connection): Promise<void> {
    const session = this.#serveConnection(connection).finally(() => this.#sessions.delete(connection));
    this.#sessions.set(connection, session);
    return session;
  }

  /** Closes every connection being served and waits until each is done. */
  async close(): Promise<void> {
    const sessions = [...this.#sessions];
    await Promise.all(sessions.map(([connection]) => connection.close()));
    await Promise.all(sessions.map(([, session]) => session));
  }

  async #serveConnection(connection: Connection): Promise<void> {
    const reader = new ConnectionReader(connection, this.#buffers);
    let chosen: NbdExport | undefined;
    try {
      await connection.send(encodeGreeting());
      const negotiated = await this.#negotiate(connection, reader);
      if (negotiated !== undefined) {
        chosen = negotiated;
        await this.#transmit(connection, reader, negotiated);
      }
    } catch (error) {
      this.#logError(connection, error);
    } finally {
      this.#served.delete(connection);
      await connection.close();
      if (chosen?.close !== undefined) await this.#closeExport(connection, chosen);
    }
  }

  // -------------------------------------------------------------------------------------
  // Handshake

  /** Option haggling; the chosen export, or undefined when the session ended without one. */
  async #negotiate(connection: Connection, reader: ConnectionReader): Promise<NbdExport | undefined> {
    const flagsBytes = await reader.take(4);
    if (flagsBytes === undefined) return undefined;
    const clientFlags = decodeClientFlags(flagsBytes);
    const noZeroes = (clientFlags & nbdClientFlags.noZeroes) !== 0;
    for (let count = 0; count < nbdLimits.optionsPerConnectionMax; count++) {
      const option = await reader.nextOption();
      if (option === undefined) return undefined;
      const outcome = await this.#answerOption(connection, option, noZeroes);
      if (outcome === "abort") return undefined;
      if (outcome !== "continue") return outcome;
    }
    throw new NbdProtocolError(`Cannot go on: more than ${nbdLimits.optionsPerConnectionMax} options`);
  }

  /** Answers one option: go on haggling, end the session, or the export chosen. */
  async #answerOption(
    connection: Connection,
    decoded: DecodedOption,
    noZeroes: boolean,
  ): Promise<NbdExport | "continue" | "abort"> {
    const { option } = decoded;
    if (decoded.oversize) {
      // NBD_OPT_EXPORT_NAME cannot be answered with an error: hang up, as the document says.
      if (option === nbdOptions.exportName) {
        throw new NbdProtocolError(`Cannot choose an export whose name has ${decoded.dataBytes} bytes`);
      }
      await connection.send(
        encodeOptionErrorReply(
          option,
          nbdOptionReplies.errorTooBig,
          `Option data of ${decoded.dataBytes} bytes is more than ${nbdLimits.optionDataBytesMax}`,
        ),
      );
      return "continue";
    }
    const { data } = decoded;
    switch (option) {
      case nbdOptions.exportName:
        return await this.#exportName(connection, data, noZeroes);
      case nbdOptions.abort:
        await connection.send(encodeOptionReply(option, nbdOptionReplies.ack));
        return "abort";
      case nbdOptions.list:
        await this.#list(connection, data);
        return "continue";
      case nbdOptions.info:
      case nbdOptions.go:
        return await this.#infoOrGo(connection, option, data);
      default:
        await connection.send(
          encodeOptionErrorReply(option, nbdOptionReplies.errorUnsupported, `Option ${option} is not supported`),
        );
        return "continue";
    }
  }

  async #exportName(connection: Connection, data: Uint8Array, noZeroes: boolean): Promise<NbdExport | "abort"> {
    // No error reply exists for NBD_OPT_EXPORT_NAME: an unknown name ends the session.
    let name: string;
    try {
      name = decodeName(data);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      this.#log(connection, `Hanging up: ${error.message}`);
      return "abort";
    }
    const resolved = await this.#resolve(connection, name, true);
    if (typeof resolved === "string") {
      this.#log(connection, `Hanging up after NBD_OPT_EXPORT_NAME: ${resolved}`);
      return "abort";
    }
    try {
      await connection.send(
        encodeExportNameReply(resolved.device.sizeBytes, transmissionFlagsOf(resolved), noZeroes),
      );
    } catch (error) {
      await this.#closeExport(connection, resolved);
      throw error;
    }
    return resolved;
  }

  async #list(connection: Connection, data: Uint8Array): Promise<void> {
    if (data.length !== 0) {
      await connection.send(
        encodeOptionErrorReply(nbdOptions.list, nbdOptionReplies.errorInvalid, "NBD_OPT_LIST takes no data"),
      );
      return;
    }
    const listings = (await this.#deps.listExports()).slice(0, nbdLimits.listedExportsMax);
    const replies = listings.map((listing) =>
      encodeOptionReply(nbdOptions.list, nbdOptionReplies.server, encodeServerListing(listing.name, listing.description))
    );
    replies.push(encodeOptionReply(nbdOptions.list, nbdOptionReplies.ack));
    await connection.send(replies);
  }

  async #infoOrGo(connection: Connection, option: number, data: Uint8Array): Promise<NbdExport | "continue"> {
    let name: string;
    let infoTypes: readonly number[];
    try {
      ({ name, infoTypes } = decodeInfoRequest(data, nbdLimits.exportNameBytesMax));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      await connection.send(encodeOptionErrorReply(option, nbdOptionReplies.errorInvalid, error.message));
      return "continue";
    }
    const resolved = await this.#resolve(connection, name, option === nbdOptions.go);
    if (typeof resolved === "string") {
      await connection.send(encodeOptionErrorReply(option, nbdOptionReplies.errorUnknown, resolved));
      return "continue";
    }
    const { device } = resolved;
    const replies = [
      encodeOptionReply(option, nbdOptionReplies.info, encodeInfoExport(device.sizeBytes, transmissionFlagsOf(resolved))),
      // Sent whether asked for or not: the server cannot serve requests below 512 bytes.
      encodeOptionReply(
        option,
        nbdOptionReplies.info,
        encodeInfoBlockSize(nbdLimits.blockBytesMin, nbdLimits.blockBytesPreferred, nbdLimits.payloadBytesMax),
      ),
    ];
    if (infoTypes.includes(nbdInfoTypes.name)) {
      replies.push(encodeOptionReply(option, nbdOptionReplies.info, encodeInfoText(nbdInfoTypes.name, name)));
    }
    if (infoTypes.includes(nbdInfoTypes.description) && resolved.description !== undefined) {
      replies.push(
        encodeOptionReply(
          option,
          nbdOptionReplies.info,
          encodeInfoText(nbdInfoTypes.description, resolved.description),
        ),
      );
    }
    replies.push(encodeOptionReply(option, nbdOptionReplies.ack));
    try {
      await connection.send(replies);
    } catch (error) {
      await this.#closeExport(connection, resolved);
      throw error;
    }
    if (option === nbdOptions.go) return resolved;
    await this.#closeExport(connection, resolved);
    return "continue";
  }

  /**
   * The export for `name`, or why there is none (a message for the client). `toServe`: the
   * connection is choosing it for transmission (GO, EXPORT_NAME), which takes one of the
   * `connectionsServedMax` places until the connection ends (or the export cannot be had).
   */
  async #resolve(connection: Connection, name: string, toServe = false): Promise<NbdExport | string> {
    if (toServe) {
      if (this.#served.size >= this.#connectionsServedMax) {
        const refusal = `Cannot serve export "${name}": ${this.#served.size} connections are being served, ` +
          "the limit; try again when one ends";
        this.#log(connection, refusal);
        return refusal;
      }
      this.#served.add(connection);
    }
    try {
      const resolved = await this.#deps.resolveExport(name);
      if (resolved === undefined) this.#served.delete(connection);
      return resolved ?? `Unknown export "${name}"`;
    } catch (error) {
      this.#served.delete(connection);
      this.#log(connection, `Cannot open export "${name}"`, error);
      return `Cannot open export "${name}": ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  async #closeExport(connection: Connection, chosen: NbdExport): Promise<void> {
    try {
      await chosen.close?.();
    } catch (error) {
      this.#log(connection, "Cannot close the export", error);
    }
  }

  // -------------------------------------------------------------------------------------
  // Transmission

  async #transmit(connection: Connection, reader: ConnectionReader, chosen: NbdExport): Promise<void> {
    const shape = { sizeBytes: chosen.device.sizeBytes, readOnly: isReadOnly(chosen) };
    const window = new InFlightWindow(this.#requestsInFlightMax, this.#requestBytesInFlightMax);
    const replies = new ReplyWriter(connection);
    try {
      for (;;) {
        // Awaited only when no decoded request waits: a chunk often holds several.
        const request = reader.takeDecoded() ?? await reader.nextRequest();
        if (request === undefined) return;
        // Soft disconnect: no reply; the outstanding requests finish in `finally`.
        if (request.header.type === nbdCommands.disconnect) return;
        const costBytes = costBytesOf(request);
        if (!window.fits(costBytes)) await window.admit(costBytes);
        window.track(this.#serveRequest(connection, replies, chosen, shape, request), costBytes);
      }
    } finally {
      await window.drain();
    }
  }

  /** Runs one request and sends its reply; never rejects. */
  async #serveRequest(
    connection: Connection,
    replies: ReplyWriter,
    chosen: NbdExport,
    shape: { sizeBytes: number; readOnly: boolean },
    request: DecodedRequest,
  ): Promise<void> {
    const { header } = request;
    let errorValue: NbdError = checkRequest(request, shape);
    let readData: Uint8Array | undefined;
    if (errorValue === nbdErrors.none && header.type === nbdCommands.read && header.lengthBytes > 0) {
      readData = this.#buffers.take(header.lengthBytes);
    }
    try {
      if (errorValue === nbdErrors.none) {
        try {
          await this.#execute(chosen.device, request, readData);
        } catch (error) {
          errorValue = errorValueOf(error);
          this.#log(connection, `Request of type ${header.type} failed with error ${errorValue}`, error);
        }
      }
      // The WRITE payload is no longer used once the device call settled.
      if (request.payload !== undefined && request.payload.length > 0) this.#buffers.give(request.payload);
      const replyHeader = new Uint8Array(simpleReplyHeaderBytes);
      encodeSimpleReplyHeader(replyHeader, errorValue, header.cookie);
      try {
        if (readData !== undefined && errorValue === nbdErrors.none) {
          await replies.send([replyHeader, readData], simpleReplyHeaderBytes + readData.length);
        } else {
          await replies.send([replyHeader], simpleReplyHeaderBytes);
        }
      } catch (error) {
        // The peer went away with requests in flight; the session ends on its own.
        if (!(error instanceof ConnectionClosedError)) this.#logError(connection, error);
      }
    } finally {
      // After the send settled (or never began): the transport holds no reference any more.
      if (readData !== undefined) this.#buffers.give(readData);
    }
  }

  /**
   * Does what a checked request asks; `readTarget` is where READ data goes (absent for 0
   * bytes). Returns the device's promise itself (no extra async step per request); the
   * caller awaits it inside its `try`, so a device that throws instead of rejecting is
   * caught too.
   */
  #execute(device: BlockDevice, request: DecodedRequest, readTarget: Uint8Array | undefined): Promise<void> {
    const { type, flags, offsetBytes, lengthBytes } = request.header;
    const fua = (flags & nbdCommandFlags.fua) !== 0;
    switch (type) {
      case nbdCommands.read:
        return readTarget === undefined ? settled : device.read(offsetBytes, readTarget);
      case nbdCommands.write:
        assert(request.payload !== undefined && request.payload.length === lengthBytes, "A WRITE has its payload");
        return lengthBytes === 0 ? settled : writeDurably(device, offsetBytes, request.payload, fua);
      case nbdCommands.flush:
        return device.flush();
      case nbdCommands.trim:
        // A hint the document lets the server ignore ("MAY discard"); FUA then has nothing to persist.
        return settled;
      case nbdCommands.writeZeroes:
        return this.#writeZeroes(device, offsetBytes, lengthBytes, fua);
    }
    assert(false, `checkRequest let through request type ${type}`);
  }

  async #writeZeroes(device: BlockDevice, offsetBytes: number, lengthBytes: number, fua: boolean): Promise<void> {
    for (let doneBytes = 0; doneBytes < lengthBytes; doneBytes += this.#zeros.length) {
      const pieceBytes = Math.min(this.#zeros.length, lengthBytes - doneBytes);
      await writeDurably(device, offsetBytes + doneBytes, this.#zeros.subarray(0, pieceBytes), fua);
    }
  }

  // -------------------------------------------------------------------------------------
  // Logging

  #log(connection: Connection, message: string, error?: unknown): void {
    this.#deps.log?.({ remoteAddress: connection.remoteAddress, message, error });
  }

  #logError(connection: Connection, error: unknown): void {
    if (error instanceof NbdProtocolError) {
      this.#log(connection, `Hanging up: ${error.message}`);
    } else if (error instanceof ConnectionClosedError) {
      this.#log(connection, "The connection ended", error);
    } else {
      this.#log(connection, "Unexpected failure serving the connection", error);
    }
  }
}

/** NBD_FLAG_READ_ONLY when the export or its device says so. */
function isReadOnly(chosen: NbdExport): boolean {
  return chosen.readOnly || !chosen.device.capabilities.writable;
}

/** The transmission flags of an export. */
function transmissionFlagsOf(chosen: NbdExport): number {
  const base = nbdTransmissionFlags.hasFlags | nbdTransmissionFlags.sendFlush;
  if (isReadOnly(chosen)) return base | nbdTransmissionFlags.readOnly;
  return base | nbdTransmissionFlags.sendFua | nbdTransmissionFlags.sendTrim | nbdTransmissionFlags.sendWriteZeroes;
}

/** Payload bytes a request holds while in flight (READ data, WRITE payload). */
function costBytesOf(request: DecodedRequest): number {
  if (request.header.type === nbdCommands.read) return Math.min(request.header.lengthBytes, nbdLimits.payloadBytesMax);
  return request.payload?.length ?? 0;
}

/** A promise that has resolved, for requests with nothing to do. */
const settled: Promise<void> = Promise.resolve();

/** A write that is durable when it resolves if `fua` (by FUA or, failing that, a flush). */
function writeDurably(device: BlockDevice, offsetBytes: number, source: Uint8Array, fua: boolean): Promise<void> {
  if (!fua) return device.write(offsetBytes, source);
  if (device.capabilities.fua) return device.write(offsetBytes, source, { fua: true });
  return writeThenFlush(device, offsetBytes, source);
}

async function writeThenFlush(device: BlockDevice, offsetBytes: number, source: Uint8Array): Promise<void> {
  await device.write(offsetBytes, source);
  if (device.capabilities.flush) await device.flush();
}

/**
 * Reads a connection, one chunk at a time and only while a decoder needs more bytes: during
 * the handshake into a {@link ByteQueue} (options are small and rare), then into a
 * {@link RequestDecoder}, which copies WRITE payloads straight into pooled buffers. So the
 * reader never holds more than one message plus one chunk's worth of decoded requests.
 *
 * On a connection that can hand its bytes to a sink (`Connection.sinkTo`: the TCP
 * transports), the requests are decoded as the reads complete instead, and each read goes
 * where the decoder says the bytes belong (`RequestDecoder.readTarget`): the kernel copies a
 * large WRITE's payload straight into its pooled buffer. Receiving pauses while the decoded
 * requests not yet taken reach {@link sinkPendingRequestsMax} or their payloads
 * {@link sinkPendingPayloadBytesMax}, so the bound stays that of one read's worth.
 */
class ConnectionReader {
  readonly #connection: Connection;
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #queue = new ByteQueue();
  readonly #buffers: BufferPool;
  #decoder: RequestDecoder | null = null;
  /** Restarts the sink after it paused; null until the connection's bytes go to a sink. */
  #resumeSink: (() => void) | null = null;
  #sinkPaused = false;
  /** The sink heard the end of the stream. */
  #sinkEnded = false;
  #sinkWaiter: (() => void) | null = null;

  constructor(connection: Connection, buffers: BufferPool) {
    this.#connection = connection;
    this.#iterator = connection[Symbol.asyncIterator]();
    this.#buffers = buffers;
  }

  /** Exactly `lengthBytes` bytes, or undefined if the stream ended first. */
  async take(lengthBytes: number): Promise<Uint8Array | undefined> {
    for (;;) {
      const bytes = this.#queue.take(lengthBytes);
      if (bytes !== undefined) return bytes;
      const chunk = await this.#pull();
      if (chunk === undefined) return undefined;
      this.#queue.push(chunk);
    }
  }

  /** The next option, or undefined if the stream ended first. */
  async nextOption(): Promise<DecodedOption | undefined> {
    for (;;) {
      const option = decodeOption(this.#queue, nbdLimits.optionDataBytesMax);
      if (option !== undefined) return option;
      const chunk = await this.#pull();
      if (chunk === undefined) return undefined;
      this.#queue.push(chunk);
    }
  }

  /**
   * A request already decoded from the chunks read so far, or undefined (then call
   * {@link nextRequest}); no await needed.
   *
   * @throws {NbdProtocolError} as {@link nextRequest} does.
   */
  takeDecoded(): DecodedRequest | undefined {
    const decoder = this.#decoder;
    if (decoder === null) return undefined;
    const request = decoder.next();
    if (request !== undefined && this.#sinkPaused) this.#maybeResume(decoder);
    return request;
  }

  /** The next request, or undefined if the stream ended first. */
  async nextRequest(): Promise<DecodedRequest | undefined> {
    const decoder = this.#decoder ?? this.#startTransmission();
    for (;;) {
      const request = decoder.next();
      if (request !== undefined) {
        if (this.#sinkPaused) this.#maybeResume(decoder);
        return request;
      }
      if (this.#resumeSink !== null) {
        // Decoded as the reads complete (the class doc): wait for one that completes a request.
        if (this.#sinkEnded) return undefined;
        if (this.#sinkPaused) this.#maybeResume(decoder);
        await new Promise<void>((resolve) => {
          this.#sinkWaiter = resolve;
        });
        continue;
      }
      const chunk = await this.#pull();
      if (chunk === undefined) return undefined;
      decoder.push(chunk);
    }
  }

  /** After the handshake: requests from here on, starting with what the queue still holds. */
  #startTransmission(): RequestDecoder {
    assert(this.#queue.discardPendingBytes === 0, "No option data is being dropped once an export is chosen");
    const decoder = new RequestDecoder({
      payloadBytesMax: nbdLimits.payloadBytesMax,
      allocate: (lengthBytes) => this.#buffers.take(lengthBytes),
    });
    const leftover = this.#queue.take(this.#queue.lengthBytes);
    if (leftover !== undefined && leftover.length > 0) decoder.push(leftover);
    this.#decoder = decoder;
    if (this.#connection.sinkTo !== undefined) {
      this.#resumeSink = this.#connection.sinkTo({
        readTarget: () => decoder.readTarget(),
        receive: (bytes) => {
          decoder.push(bytes);
          this.#wakeSink();
          if (decoder.failed || sinkFull(decoder)) this.#sinkPaused = true;
          return !this.#sinkPaused;
        },
        end: () => {
          // Broken or in order: the transmission ends either way, as with an iteration.
          this.#sinkEnded = true;
          this.#wakeSink();
        },
      });
    }
    return decoder;
  }

  #maybeResume(decoder: RequestDecoder): void {
    if (decoder.failed || sinkFull(decoder)) return;
    this.#sinkPaused = false;
    this.#resumeSink?.();
  }

  #wakeSink(): void {
    const waiter = this.#sinkWaiter;
    this.#sinkWaiter = null;
    waiter?.();
  }

  /** The next chunk; undefined when the stream ended (in order or broken). */
  async #pull(): Promise<Uint8Array | undefined> {
    let result: IteratorResult<Uint8Array>;
    try {
      result = await this.#iterator.next();
    } catch (error) {
      if (error instanceof ConnectionClosedError) return undefined;
      throw error;
    }
    return result.done ? undefined : result.value;
  }
}

/** Decoded requests not yet taken at which a connection's sink pauses receiving. */
export const sinkPendingRequestsMax = nbdLimits.requestsInFlightMax;
/** Their payload bytes at which it pauses (one transport read's worth, as when iterating). */
export const sinkPendingPayloadBytesMax = 256 * 1024;

function sinkFull(decoder: RequestDecoder): boolean {
  return decoder.pendingCount >= sinkPendingRequestsMax || decoder.pendingPayloadBytes >= sinkPendingPayloadBytesMax;
}

/**
 * Sends a connection's replies: at once when no send is in flight, else together with every
 * reply that finished meanwhile, in the next send. Replies go out in the order they finished;
 * each settles when the send that carried it settles.
 */
class ReplyWriter {
  readonly #connection: Connection;
  #chunks: Uint8Array[] = [];
  #settlers: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  #sending = false;

  constructor(connection: Connection) {
    this.#connection = connection;
  }

  send(chunks: readonly Uint8Array[], lengthBytes: number): Promise<void> {
    // A large reply goes out on its own and settles as soon as it is written, so the window
    // frees request by request while the socket drains (a batch would free all at once).
    if (lengthBytes >= nbdLimits.replyBatchBytesMax) return this.#connection.send(chunks);
    for (const chunk of chunks) this.#chunks.push(chunk);
    const sent = new Promise<void>((resolve, reject) => this.#settlers.push({ resolve, reject }));
    if (!this.#sending) void this.#sendAll();
    return sent;
  }

  async #sendAll(): Promise<void> {
    this.#sending = true;
    while (this.#chunks.length > 0) {
      const chunks = this.#chunks;
      const settlers = this.#settlers;
      this.#chunks = [];
      this.#settlers = [];
      try {
        await this.#connection.send(chunks);
        for (const settler of settlers) settler.resolve();
      } catch (error) {
        for (const settler of settlers) settler.reject(error);
      }
    }
    this.#sending = false;
  }
}

/** Bounds the requests (and their payload bytes) one connection has in flight. */
class InFlightWindow {
  readonly #requestsMax: number;
  readonly #bytesMax: number;
  readonly #pending = new Set<Promise<void>>();
  #bytes = 0;
  #waiter: (() => void) | null = null;

  constructor(requestsMax: number, bytesMax: number) {
    this.#requestsMax = requestsMax;
    this.#bytesMax = bytesMax;
  }

  /** Whether a request of `costBytes` fits now; one always fits when nothing is in flight. */
  fits(costBytes: number): boolean {
    return this.#pending.size === 0 ||
      (this.#pending.size < this.#requestsMax && this.#bytes + costBytes <= this.#bytesMax);
  }

  /** Waits until a request of `costBytes` {@link fits}. */
  async admit(costBytes: number): Promise<void> {
    while (!this.fits(costBytes)) {
      await new Promise<void>((resolve) => {
        assert(this.#waiter === null, "One reader waits on the window");
        this.#waiter = resolve;
      });
    }
  }

  /** Counts a started request until it settles (it never rejects). */
  track(request: Promise<void>, costBytes: number): void {
    this.#bytes += costBytes;
    const tracked = request.finally(() => {
      this.#pending.delete(tracked);
      this.#bytes -= costBytes;
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter?.();
    });
    this.#pending.add(tracked);
  }

  /** Waits for every request in flight. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }
}
