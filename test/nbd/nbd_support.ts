/**
 * Shared by the NBD tests: a server over two memory exports ("disk" writable, "image"
 * read-only), builders of client byte streams, and a parser of what the server sent back.
 */
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { type Random, randomInt } from "../../src/io/random.ts";
import { type Connection, ConnectionClosedError, type ReceiveSink } from "../../src/io/transport.ts";
import { NbdServer, type NbdServerOptions } from "../../src/nbd/nbd_server.ts";
import {
  decodeSimpleReplyHeader,
  encodeInfoRequest,
  encodeOption,
  encodeRequest,
  greetingBytes,
  nbdClientFlags,
  nbdCommands,
  nbdOptionReplies,
  nbdOptions,
  optionReplyHeaderBytes,
  type RequestFields,
  simpleReplyHeaderBytes,
} from "../../src/nbd/protocol.ts";
import { concatBytes } from "../wire/wire_support.ts";

export { concatBytes, duplexPair } from "../wire/wire_support.ts";

/**
 * A connection with `sinkTo`, over any other: its bytes go to the sink as reads of random
 * size (1 byte to 64 KiB, seeded), each into the view the sink names if it names one, as
 * the TCP transports read. Counts the reads that landed in a named view, and the most
 * bytes delivered while the sink was asked to pause (there must be none).
 */
export class SinkingConnection implements Connection {
  readonly remoteAddress: string;
  /** Reads that went into a view the sink named. */
  readsInPlace = 0;
  /** Reads that went into this connection's own buffer. */
  readsOwn = 0;
  /** Times the sink paused receiving. */
  pauses = 0;
  readonly #inner: Connection;
  readonly #random: Random;
  #sink: ReceiveSink | null = null;
  #paused = false;
  #wake: (() => void) | null = null;

  constructor(inner: Connection, random: Random) {
    this.#inner = inner;
    this.#random = random;
    this.remoteAddress = inner.remoteAddress;
  }

  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    return this.#inner.send(chunks);
  }

  close(): Promise<void> {
    this.#sink = null;
    this.#notify();
    return this.#inner.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#inner[Symbol.asyncIterator]();
  }

  sinkTo(sink: ReceiveSink): () => void {
    this.#sink = sink;
    void this.#pump(sink);
    return () => {
      this.#paused = false;
      this.#notify();
    };
  }

  async #pump(sink: ReceiveSink): Promise<void> {
    let error: ConnectionClosedError | undefined;
    try {
      for await (const chunk of this.#inner) {
        let atBytes = 0;
        while (atBytes < chunk.length) {
          while (this.#paused && this.#sink !== null) await new Promise<void>((resolve) => (this.#wake = resolve));
          if (this.#sink === null) return;
          const target = sink.readTarget();
          const lengthBytes = Math.min(chunk.length - atBytes, randomInt(this.#random, 1, 64 * 1024), target?.length ?? Infinity);
          let bytes: Uint8Array;
          if (target !== null) {
            target.set(chunk.subarray(atBytes, atBytes + lengthBytes));
            bytes = target.subarray(0, lengthBytes);
            this.readsInPlace++;
          } else {
            bytes = chunk.slice(atBytes, atBytes + lengthBytes);
            this.readsOwn++;
          }
          atBytes += lengthBytes;
          if (!sink.receive(bytes)) {
            this.#paused = true;
            this.pauses++;
          }
        }
      }
    } catch (caught) {
      if (!(caught instanceof ConnectionClosedError)) throw caught;
      error = caught;
    }
    if (this.#sink !== null) sink.end(error);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** Data that is not all zeros, derived from a seed. */
export function patternBytes(lengthBytes: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) bytes[i] = (i * 131 + seed * 17 + (i >>> 9) + 1) & 0xff;
  return bytes;
}

/** The first index where two byte arrays differ, or -1 (deep equality on megabytes is slow). */
export function firstDifference(actual: Uint8Array, expected: Uint8Array): number {
  const lengthBytes = Math.min(actual.length, expected.length);
  for (let index = 0; index < lengthBytes; index++) if (actual[index] !== expected[index]) return index;
  return actual.length === expected.length ? -1 : lengthBytes;
}

/** A server with a writable "disk" and a read-only "image" (patterned) over memory devices. */
export function memoryServer(options: NbdServerOptions & { sizeBytes?: number } = {}) {
  const sizeBytes = options.sizeBytes ?? 1024 * 1024;
  const disk = new MemoryBlockDevice(sizeBytes);
  const imageContents = patternBytes(sizeBytes, 3);
  const image = new MemoryBlockDevice(sizeBytes, { readOnly: true, contents: imageContents });
  const closed: string[] = [];
  const logs: string[] = [];
  const server = new NbdServer({
    resolveExport: async (name) => {
      if (name === "disk") return { device: disk, readOnly: false, close: async () => void closed.push(name) };
      if (name === "image") {
        return { device: image, readOnly: true, description: "a read-only image", close: async () => void closed.push(name) };
      }
      return undefined;
    },
    listExports: () => [{ name: "disk", description: "a writable disk" }, { name: "image" }],
    log: (event) => logs.push(`${event.message}${event.error instanceof Error ? `: ${event.error.message}` : ""}`),
  }, options);
  return { server, disk, image, imageContents, closed, logs, sizeBytes };
}

/** Client flags (fixed newstyle, no zeroes) then NBD_OPT_GO for `name`. */
export function goBytes(name: string, flags = nbdClientFlags.fixedNewstyle | nbdClientFlags.noZeroes): Uint8Array {
  const flagBytes = new Uint8Array(4);
  new DataView(flagBytes.buffer).setUint32(0, flags);
  return concatBytes([flagBytes, encodeOption(nbdOptions.go, encodeInfoRequest(name, [3]))]);
}

/** Client flags then raw option bytes. */
export function flagsThen(flags: number, ...rest: Uint8Array[]): Uint8Array {
  const flagBytes = new Uint8Array(4);
  new DataView(flagBytes.buffer).setUint32(0, flags);
  return concatBytes([flagBytes, ...rest]);
}

/** Requests as bytes. */
export function requestBytes(requests: readonly RequestFields[]): Uint8Array {
  return concatBytes(requests.map((request) => encodeRequest(request)));
}

/** One option reply as the server sent it. */
export interface ParsedOptionReply {
  option: number;
  replyType: number;
  data: Uint8Array;
}

/** One simple reply; `data` for successful reads. */
export interface ParsedReply {
  errorValue: number;
  data?: Uint8Array;
}

/**
 * Parses a server transcript of greeting, option replies up to the final reply of a GO (or
 * the end), then simple replies. `readLengths` says how many data bytes follow a successful
 * reply to each READ cookie.
 */
export function parseTranscript(
  bytes: Uint8Array,
  readLengths: ReadonlyMap<bigint, number> = new Map(),
): { optionReplies: ParsedOptionReply[]; replies: Map<bigint, ParsedReply>; restBytes: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let atBytes = greetingBytes;
  const optionReplies: ParsedOptionReply[] = [];
  while (atBytes + optionReplyHeaderBytes <= bytes.length) {
    const option = view.getUint32(atBytes + 8);
    const replyType = view.getUint32(atBytes + 12);
    const dataBytes = view.getUint32(atBytes + 16);
    const data = bytes.slice(atBytes + optionReplyHeaderBytes, atBytes + optionReplyHeaderBytes + dataBytes);
    optionReplies.push({ option, replyType, data });
    atBytes += optionReplyHeaderBytes + dataBytes;
    if (option === nbdOptions.go && replyType === nbdOptionReplies.ack) break;
  }
  const replies = new Map<bigint, ParsedReply>();
  while (atBytes + simpleReplyHeaderBytes <= bytes.length) {
    const header = decodeSimpleReplyHeader(bytes.subarray(atBytes, atBytes + simpleReplyHeaderBytes));
    atBytes += simpleReplyHeaderBytes;
    const readBytes = readLengths.get(header.cookie);
    if (header.errorValue === 0 && readBytes !== undefined) {
      replies.set(header.cookie, { errorValue: 0, data: bytes.slice(atBytes, atBytes + readBytes) });
      atBytes += readBytes;
    } else {
      replies.set(header.cookie, { errorValue: header.errorValue });
    }
  }
  return { optionReplies, replies, restBytes: bytes.length - atBytes };
}

/** The cookie → length map of the READs among `requests`. */
export function readLengthsOf(requests: readonly RequestFields[]): Map<bigint, number> {
  return new Map(
    requests.filter((request) => request.type === nbdCommands.read).map((request) => [request.cookie, request.lengthBytes]),
  );
}

/** Rejects if `promise` takes longer than `ms` (a hang is a failure, not a stuck suite). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
