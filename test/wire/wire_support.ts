/**
 * Shared by the wire tests: an in-test duplex pair implementing the `Connection` seam (no
 * sockets, no dependency on the in-memory transport), fast-check arbitraries of valid
 * messages of every kind, and builders of raw frames whose headers a test chooses byte by byte.
 */
import fc from "fast-check";
import type { Checksum } from "../../src/core/checksum.ts";
import { type Random, randomInt } from "../../src/io/random.ts";
import { type Connection, ConnectionClosedError } from "../../src/io/transport.ts";
import { encodeCbor } from "../../src/wire/cbor.ts";
import { frameHeaderBytes, frameMagic, frameVersion } from "../../src/wire/frame.ts";
import {
  packWriteEntries,
  encodeRestoreExtents,
  markKinds,
  type MessageBodies,
  type MessageKind,
  messageKinds,
  wireProtocolVersion,
} from "../../src/wire/messages.ts";

// ---------------------------------------------------------------------------------------
// Duplex pair

/** Options of {@link duplexPair}. */
export interface DuplexOptions {
  /** When set, every sent chunk is delivered cut into random pieces drawn from it. */
  random?: Random;
}

/** One end of an in-test duplex pair. */
export class TestConnection implements Connection {
  readonly remoteAddress: string;
  /** Copies of every chunk this end sent, in order (a transcript for assertions). */
  readonly sentChunks: Uint8Array[] = [];
  peer!: TestConnection;
  readonly #random: Random | undefined;
  readonly #inbox: Uint8Array[] = [];
  #peerClosed = false;
  #closed = false;
  #broken = false;
  #wake: (() => void) | null = null;

  constructor(remoteAddress: string, options: DuplexOptions) {
    this.remoteAddress = remoteAddress;
    this.#random = options.random;
  }

  /** Whether this end was closed (by its owner or by a FramedConnection giving up). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Every byte this end sent, in one buffer. */
  get sentBytes(): Uint8Array {
    return concatBytes(this.sentChunks);
  }

  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.#closed || this.#broken || this.peer.#closed) {
      return Promise.reject(new ConnectionClosedError(`Cannot send to ${this.remoteAddress}: the connection ended`));
    }
    // Delivered as copies, as a kernel takes a TCP send: once `send` resolved, the sender may
    // reuse its buffers (the seam's rule; the switch link reuses its frame buffer and lends
    // copy-buffer bytes only until the send settles).
    for (const chunk of chunks instanceof Uint8Array ? [chunks] : chunks) {
      const copy = chunk.slice();
      this.sentChunks.push(copy);
      this.peer.#deliver(copy, this.#random);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#notify();
      this.peer.#peerClosed = true;
      this.peer.#notify();
    }
    return Promise.resolve();
  }

  /** Breaks the connection: both ends' iterations throw ConnectionClosedError. */
  drop(): void {
    this.#broken = true;
    this.peer.#broken = true;
    this.#notify();
    this.peer.#notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.#broken) throw new ConnectionClosedError(`The connection to ${this.remoteAddress} broke`);
      if (this.#closed) return;
      const chunk = this.#inbox.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (this.#peerClosed) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #deliver(chunk: Uint8Array, random: Random | undefined): void {
    if (random === undefined || chunk.length <= 1) {
      this.#inbox.push(chunk);
    } else {
      let atBytes = 0;
      while (atBytes < chunk.length) {
        const pieceBytes = randomInt(random, 1, Math.max(1, Math.min(chunk.length - atBytes, 64)));
        this.#inbox.push(chunk.subarray(atBytes, atBytes + pieceBytes));
        atBytes += pieceBytes;
      }
    }
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** Two connected ends: what one sends, the other iterates. */
export function duplexPair(options: DuplexOptions = {}): [TestConnection, TestConnection] {
  const a = new TestConnection("test:b", options);
  const b = new TestConnection("test:a", options);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

// ---------------------------------------------------------------------------------------
// Bytes

export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const bytes = new Uint8Array(total);
  let atBytes = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, atBytes);
    atBytes += chunk.length;
  }
  return bytes;
}

/** A header with the fields a test chooses; the header check is XXH32 from xxhash-wasm. */
export function rawHeader(
  checksum: Checksum,
  fields: {
    kind: number;
    bodyBytes: number;
    payloadBytes?: number;
    magic?: number;
    version?: number;
    headerCheck?: number;
    /** XXH32 of the body; 0 unless given (headers-only tests fail before the body). */
    bodyCheck?: number;
  },
): Uint8Array {
  const header = new Uint8Array(frameHeaderBytes);
  const view = new DataView(header.buffer);
  view.setUint16(0, fields.magic ?? frameMagic, true);
  view.setUint8(2, fields.version ?? frameVersion);
  view.setUint8(3, fields.kind);
  view.setUint32(4, fields.bodyBytes, true);
  view.setUint32(8, fields.payloadBytes ?? 0, true);
  view.setUint32(12, fields.bodyCheck ?? 0, true);
  view.setUint32(16, fields.headerCheck ?? checksum.hash32(header.subarray(0, 16)), true);
  return header;
}

/** A whole frame around any CBOR value (valid or not as a message), bypassing validation. */
export function rawFrame(
  checksum: Checksum,
  kind: number,
  body: unknown,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return rawFrameOfBodyBytes(checksum, kind, encodeCbor(body), payload);
}

/** A whole frame around body bytes that need not be CBOR at all. */
export function rawFrameOfBodyBytes(
  checksum: Checksum,
  kind: number,
  bodyBytes: Uint8Array,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const header = rawHeader(checksum, {
    kind,
    bodyBytes: bodyBytes.length,
    payloadBytes: payload.length,
    bodyCheck: checksum.hash32(bodyBytes),
  });
  return concatBytes([header, bodyBytes, payload]);
}

// ---------------------------------------------------------------------------------------
// Arbitraries of valid messages

/** A message as a test sends it. */
export interface SampleMessage {
  kind: MessageKind;
  body: MessageBodies[MessageKind];
  payload: Uint8Array;
}

const nameArbitrary = fc.string({ minLength: 1, maxLength: 128 });
const seqArbitrary = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const timeArbitrary = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const requestIdArbitrary = fc.integer({ min: 0, max: 2 ** 32 });
const bytesArbitrary = (lengthBytes: number) => fc.uint8Array({ minLength: lengthBytes, maxLength: lengthBytes });
const sectorsArbitrary = (minSectors: number, maxSectors: number) =>
  fc.integer({ min: minSectors, max: maxSectors }).map((sectors) => sectors * 512);

/** Data that is not all zeros, derived from a seed (fast for large payloads). */
export function sampleData(lengthBytes: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) bytes[i] = (i * 131 + seed * 17 + (i >>> 9)) & 0xff;
  return bytes;
}

/** A valid WRITE: entries with matching payload and real XXH64 checksums. */
export function writeArbitrary(checksum: Checksum, entriesMax = 6): fc.Arbitrary<SampleMessage> {
  return fc.record({
    volume: nameArbitrary,
    entries: fc.array(
      fc.record({
        seq: seqArbitrary,
        timeUs: timeArbitrary,
        offsetBytes: sectorsArbitrary(0, 2 ** 30),
        lengthBytes: sectorsArbitrary(1, 8),
        seed: fc.integer({ min: 0, max: 1000 }),
      }),
      { minLength: 1, maxLength: entriesMax },
    ),
  }).map(({ volume, entries }) => {
    const datas = entries.map((entry) => sampleData(entry.lengthBytes, entry.seed));
    return {
      kind: messageKinds.write,
      body: {
        volume,
        entries: packWriteEntries(entries.map((entry, index) => ({
          seq: entry.seq,
          timeUs: entry.timeUs,
          offsetBytes: entry.offsetBytes,
          lengthBytes: entry.lengthBytes,
          checksum: checksum.hash64(datas[index]),
        }))),
      },
      payload: concatBytes(datas),
    };
  });
}

const detailArbitrary = fc.dictionary(
  fc.string({ maxLength: 12 }).filter((key) => key !== "__proto__"),
  fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer(), { maxLength: 4 }),
  ),
  { maxKeys: 5, noNullPrototype: true },
);

const snapshotNameFirst = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";
/** Names `SNAPSHOT_NAME_PATTERN` accepts, up to the 200-character limit. */
const snapshotNameArbitrary = fc.tuple(
  fc.constantFrom(...snapshotNameFirst),
  fc.array(fc.constantFrom(...`${snapshotNameFirst}:-`), { maxLength: 199 }),
).map(([first, rest]) => first + rest.join(""));

const volumeOfferArbitrary = fc.record({
  name: nameArbitrary,
  sizeBytes: sectorsArbitrary(1, 2 ** 41),
  regionBytes: fc.integer({ min: 9, max: 30 }).map((shift) => 2 ** shift),
});

function sample<K extends MessageKind>(kind: K, body: fc.Arbitrary<MessageBodies[K]>): fc.Arbitrary<SampleMessage> {
  return body.map((value) => ({ kind, body: value, payload: new Uint8Array(0) } as SampleMessage));
}

/** One valid message of any kind (WRITE and READ_REPLY with payloads). */
export function messageArbitrary(checksum: Checksum): fc.Arbitrary<SampleMessage> {
  const requestRange = fc.record({
    requestId: requestIdArbitrary,
    volume: nameArbitrary,
    offsetBytes: sectorsArbitrary(0, 2 ** 30),
    lengthBytes: sectorsArbitrary(1, 8192),
  });
  return fc.oneof(
    sample(
      messageKinds.hello,
      fc.record({
        protocol: fc.constant(wireProtocolVersion),
        role: fc.constant("switch" as const),
        switchId: nameArbitrary,
        nonce: bytesArbitrary(32),
      }),
    ),
    sample(messageKinds.challenge, fc.record({ nonce: bytesArbitrary(32), proof: bytesArbitrary(32) })),
    sample(
      messageKinds.proof,
      fc.record({
        proof: bytesArbitrary(32),
        volumes: fc.uniqueArray(volumeOfferArbitrary, { maxLength: 5, selector: (volume) => volume.name }),
      }),
    ),
    sample(
      messageKinds.welcome,
      fc.record({
        volumes: fc.uniqueArray(
          fc.record({ name: nameArbitrary, durableSeq: fc.integer({ min: -1, max: 2 ** 53 - 1 }) }),
          {
            maxLength: 5,
            selector: (volume) => volume.name,
          },
        ),
      }),
    ),
    writeArbitrary(checksum),
    sample(
      messageKinds.mark,
      fc.record(
        {
          volume: nameArbitrary,
          seq: seqArbitrary,
          timeUs: timeArbitrary,
          kind: fc.constantFrom(...markKinds),
          detail: detailArbitrary,
        },
        { requiredKeys: ["volume", "seq", "timeUs", "kind"] },
      ),
    ),
    sample(messageKinds.ack, fc.record({ volume: nameArbitrary, durableSeq: seqArbitrary })),
    sample(
      messageKinds.hashRequest,
      fc.record({
        requestId: requestIdArbitrary,
        volume: nameArbitrary,
        offsetBytes: sectorsArbitrary(0, 2 ** 30),
        lengthBytes: sectorsArbitrary(1, 2 ** 20),
        chunkBytes: sectorsArbitrary(128, 2048),
      }),
    ),
    sample(
      messageKinds.hashReply,
      fc.record({
        requestId: requestIdArbitrary,
        hashes: fc.integer({ min: 0, max: 16 }).chain((n) => bytesArbitrary(n * 8)),
      }),
    ),
    sample(messageKinds.readRequest, requestRange),
    sample(messageKinds.readRequest, fc.record({
      requestId: requestIdArbitrary,
      volume: nameArbitrary,
      offsetBytes: sectorsArbitrary(0, 2 ** 30),
      lengthBytes: sectorsArbitrary(1, 8192),
      atSeq: seqArbitrary,
    })),
    fc.record({ requestId: requestIdArbitrary, sectors: fc.integer({ min: 0, max: 8 }), seed: fc.nat(1000) }).map(
      ({ requestId, sectors, seed }) => ({
        kind: messageKinds.readReply,
        body: { requestId },
        payload: sampleData(sectors * 512, seed),
      } as SampleMessage),
    ),
    sample(messageKinds.fetch, requestRange),
    sample(
      messageKinds.snapshotRequest,
      fc.record(
        { requestId: requestIdArbitrary, volume: nameArbitrary, name: snapshotNameArbitrary, remove: fc.boolean() },
        { requiredKeys: ["requestId", "volume", "name"] },
      ),
    ),
    sample(
      messageKinds.snapshotReply,
      fc.oneof(
        fc.record({ requestId: requestIdArbitrary, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }),
        fc.record({ requestId: requestIdArbitrary, refused: fc.string({ minLength: 1, maxLength: 1024 }) }),
      ),
    ),
    sample(
      messageKinds.restoreRequest,
      fc.record({
        requestId: requestIdArbitrary,
        volume: nameArbitrary,
        toSeq: seqArbitrary,
        toTimeUs: timeArbitrary,
        instant: fc.boolean(),
        full: fc.boolean(),
      }),
    ),
    sample(messageKinds.restorePlanRequest, fc.record({ requestId: requestIdArbitrary, headSeq: seqArbitrary })),
    fc.record({
      requestId: requestIdArbitrary,
      steps: fc.array(fc.tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1, max: 64 })), { maxLength: 8 }),
      last: fc.boolean(),
    }).map(({ requestId, steps, last }) => {
      let atBytes = 0;
      const extents = steps.map(([gap, length]) => {
        const extent = { offsetBytes: atBytes + gap * 512, lengthBytes: length * 512 };
        atBytes = extent.offsetBytes + extent.lengthBytes;
        return extent;
      });
      return { kind: messageKinds.restorePlan, body: { requestId, extents: encodeRestoreExtents(extents), last }, payload: new Uint8Array(0) } as SampleMessage;
    }),
    sample(
      messageKinds.restoreStarted,
      fc.record({ requestId: requestIdArbitrary, markerSeq: fc.integer({ min: 1, max: 2 ** 53 - 1 }), bytesTotal: fc.integer({ min: 0, max: 2 ** 50 }) }),
    ),
    sample(messageKinds.restoreRefused, fc.record({ requestId: requestIdArbitrary, refused: fc.string({ minLength: 1, maxLength: 1024 }) })),
    sample(
      messageKinds.restoreProgress,
      fc.oneof(
        fc.record({
          requestId: requestIdArbitrary,
          bytesMoved: fc.integer({ min: 0, max: 2 ** 50 }),
          state: fc.constantFrom("running" as const, "done" as const, "cancelled" as const),
        }),
        fc.record({
          requestId: requestIdArbitrary,
          bytesMoved: fc.integer({ min: 0, max: 2 ** 50 }),
          state: fc.constant("failed" as const),
          message: fc.string({ minLength: 1, maxLength: 1024 }),
        }, { requiredKeys: ["requestId", "bytesMoved", "state"] }),
      ),
    ),
    sample(messageKinds.restoreCancel, fc.record({ requestId: requestIdArbitrary })),
    sample(messageKinds.ping, fc.record({ timeUs: timeArbitrary })),
    sample(messageKinds.pong, fc.record({ timeUs: timeArbitrary })),
    sample(
      messageKinds.error,
      fc.record({ code: fc.string({ minLength: 1, maxLength: 64 }), message: fc.string({ maxLength: 200 }) }),
    ),
    sample(messageKinds.bye, fc.record({ reason: fc.string({ maxLength: 200 }) })),
  );
}

/** One hand-written valid message of every kind, for exhaustive byte-level tests. */
export function everyKindSamples(checksum: Checksum): SampleMessage[] {
  const data = sampleData(1024, 7);
  const samples: SampleMessage[] = [
    {
      kind: messageKinds.hello,
      body: { protocol: 2, role: "switch", switchId: "switch-1", nonce: sampleData(32, 1) },
      payload: new Uint8Array(0),
    },
    {
      kind: messageKinds.challenge,
      body: { nonce: sampleData(32, 2), proof: sampleData(32, 3) },
      payload: new Uint8Array(0),
    },
    {
      kind: messageKinds.proof,
      body: { proof: sampleData(32, 4), volumes: [{ name: "db", sizeBytes: 2 ** 30, regionBytes: 2 ** 20 }] },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.welcome, body: { volumes: [{ name: "db", durableSeq: -1 }] }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.write,
      body: {
        volume: "db",
        entries: packWriteEntries([
          {
            seq: 1,
            timeUs: 1_795_000_000_000_000,
            offsetBytes: 4096,
            lengthBytes: 512,
            checksum: checksum.hash64(data.subarray(0, 512)),
          },
          {
            seq: 2,
            timeUs: 1_795_000_000_000_001,
            offsetBytes: 0,
            lengthBytes: 512,
            checksum: checksum.hash64(data.subarray(512)),
          },
        ]),
      },
      payload: data,
    },
    {
      kind: messageKinds.mark,
      body: {
        volume: "db",
        seq: 3,
        timeUs: 1_795_000_000_000_002,
        kind: "snapshot",
        detail: { name: "before-upgrade" },
      },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.ack, body: { volume: "db", durableSeq: 3 }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.hashRequest,
      body: { requestId: 1, volume: "db", offsetBytes: 0, lengthBytes: 2 ** 20, chunkBytes: 2 ** 16 },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.hashReply, body: { requestId: 1, hashes: sampleData(16 * 8, 5) }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.readRequest,
      body: { requestId: 2, volume: "db", offsetBytes: 512, lengthBytes: 1024 },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.readReply, body: { requestId: 2 }, payload: sampleData(1024, 9) },
    {
      kind: messageKinds.fetch,
      body: { requestId: 3, volume: "db", offsetBytes: 0, lengthBytes: 4096 },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.ping, body: { timeUs: 5 }, payload: new Uint8Array(0) },
    { kind: messageKinds.pong, body: { timeUs: 5 }, payload: new Uint8Array(0) },
    { kind: messageKinds.error, body: { code: "volume", message: 'Unknown volume "x"' }, payload: new Uint8Array(0) },
    { kind: messageKinds.bye, body: { reason: "shutting down" }, payload: new Uint8Array(0) },
    // New kinds go last: tests pick samples by index.
    {
      kind: messageKinds.snapshotRequest,
      body: { requestId: 4, volume: "db", name: "before-upgrade" },
      payload: new Uint8Array(0),
    },
    {
      kind: messageKinds.snapshotRequest,
      body: { requestId: 5, volume: "db", name: "nightly.2026-11-22", remove: true },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.snapshotReply, body: { requestId: 4, seq: 42 }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.snapshotReply,
      body: { requestId: 5, refused: 'Cannot take snapshot "x" of volume "db": it is marking' },
      payload: new Uint8Array(0),
    },
    // 20-28: restore through the switch.
    {
      kind: messageKinds.restoreRequest,
      body: { requestId: 6, volume: "db", toSeq: 41, toTimeUs: 1_795_000_000_000_000, instant: true, full: false },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.restorePlanRequest, body: { requestId: 6, headSeq: 57 }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.restorePlan,
      body: {
        requestId: 6,
        extents: encodeRestoreExtents([{ offsetBytes: 0, lengthBytes: 4096 }, { offsetBytes: 2 ** 40, lengthBytes: 2 ** 33 }]),
        last: true,
      },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.restoreStarted, body: { requestId: 6, markerSeq: 58, bytesTotal: 8192 }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.restoreRefused,
      body: { requestId: 7, refused: 'Cannot restore volume "db": it is being restored already' },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.restoreProgress, body: { requestId: 6, bytesMoved: 4096, state: "running" }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.restoreProgress,
      body: { requestId: 6, bytesMoved: 4096, state: "failed", message: "RemoteRestoreError: the link did not come back" },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.restoreCancel, body: { requestId: 6 }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.readRequest,
      body: { requestId: 8, volume: "db", offsetBytes: 4096, lengthBytes: 4096, atSeq: 41 },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.readReply, body: { requestId: 8, error: "Cannot read 4096 bytes at 4096: the point faded" }, payload: new Uint8Array(0) },
    {
      kind: messageKinds.hashRequest,
      body: { requestId: 9, volume: "db", offsetBytes: 1048576, lengthBytes: 1048576, chunkBytes: 1048576, atSeq: 77 },
      payload: new Uint8Array(0),
    },
    { kind: messageKinds.hashReply, body: { requestId: 9, hashes: new Uint8Array(0) }, payload: new Uint8Array(0) },
  ];
  return samples;
}
