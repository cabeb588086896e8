/**
 * Proves the NBD codec (`src/nbd/protocol.ts`) and the request checks (`nbd_errors.ts`):
 * option and request streams decode to the same messages however TCP cuts them (every
 * split point, and one byte at a time); oversize option data and WRITE payloads are dropped
 * as they stream in, never buffered, and the stream stays in sync after them; bad magic is
 * a protocol error; every rejection maps to the error value the NBD document names. The
 * transmission decoder (`RequestDecoder`) decodes the same requests as the queue decoders
 * under the same splits, keeps nothing of a chunk it was given, and reports a bad magic only
 * after the requests before it, and names where a large payload's rest and the next header
 * belong, taking bytes read there without a copy (and the same requests under random reads
 * that honour it, fast-check); the buffer pool reuses what it is given back, within its cap.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SECTOR_BYTES } from "../../src/io/block_device.ts";
import { checkRequest } from "../../src/nbd/nbd_errors.ts";
import { nbdLimits } from "../../src/nbd/nbd_limits.ts";
import {
  ByteQueue,
  decodeClientFlags,
  decodeInfoRequest,
  decodeOption,
  decodeRequest,
  type DecodedRequest,
  directReadBytesMin,
  encodeInfoRequest,
  encodeOption,
  encodeRequest,
  nbdCommandFlags,
  nbdCommands,
  nbdErrors,
  nbdOptions,
  NbdProtocolError,
  RequestDecoder,
  type RequestFields,
} from "../../src/nbd/protocol.ts";
import { BufferPool } from "../../src/nbd/buffer_pool.ts";
import { concatBytes, patternBytes, requestBytes } from "./nbd_support.ts";

const sampleRequests: RequestFields[] = [
  { type: nbdCommands.read, cookie: 1n, offsetBytes: 4096, lengthBytes: 1024 },
  { type: nbdCommands.write, flags: nbdCommandFlags.fua, cookie: 2n, offsetBytes: 512, lengthBytes: 1024, payload: patternBytes(1024, 1) },
  { type: nbdCommands.flush, cookie: 3n, offsetBytes: 0, lengthBytes: 0 },
  { type: nbdCommands.writeZeroes, cookie: 0xffff_ffff_ffff_ffffn, offsetBytes: 2 ** 40, lengthBytes: 2 ** 32 - 512 },
  { type: nbdCommands.write, cookie: 5n, offsetBytes: 0, lengthBytes: 0, payload: new Uint8Array(0) },
  { type: nbdCommands.trim, cookie: 6n, offsetBytes: 8192, lengthBytes: 512 },
  { type: nbdCommands.disconnect, cookie: 7n, offsetBytes: 0, lengthBytes: 0 },
];

function summary(request: DecodedRequest) {
  return {
    type: request.header.type,
    flags: request.header.flags,
    cookie: new DataView(request.header.cookie.buffer, request.header.cookie.byteOffset, 8).getBigUint64(0),
    offsetBytes: request.header.offsetBytes,
    lengthBytes: request.header.lengthBytes,
    payload: request.payload === undefined ? undefined : [...request.payload],
    payloadDiscarded: request.payloadDiscarded,
  };
}

const expectedRequests = sampleRequests.map((request) => ({
  type: request.type,
  flags: request.flags ?? 0,
  cookie: request.cookie,
  offsetBytes: request.offsetBytes,
  lengthBytes: request.lengthBytes,
  payload: request.type === nbdCommands.write ? [...request.payload!] : undefined,
  payloadDiscarded: false,
}));

function decodeAllRequests(pieces: readonly Uint8Array[], payloadBytesMax = 4096) {
  const queue = new ByteQueue();
  const decoded: ReturnType<typeof summary>[] = [];
  for (const piece of pieces) {
    queue.push(piece);
    for (let request = decodeRequest(queue, payloadBytesMax); request; request = decodeRequest(queue, payloadBytesMax)) {
      decoded.push(summary(request));
    }
  }
  return { decoded, queue };
}

describe("NBD request decoding", () => {
  const stream = requestBytes(sampleRequests);

  it("decodes the same requests whatever byte the stream is split at", () => {
    for (let splitBytes = 0; splitBytes <= stream.length; splitBytes++) {
      const { decoded, queue } = decodeAllRequests([stream.subarray(0, splitBytes), stream.subarray(splitBytes)]);
      expect(decoded, `split at ${splitBytes}`).toEqual(expectedRequests);
      expect(queue.lengthBytes).toBe(0);
    }
  });

  it("decodes the same requests fed one byte at a time", () => {
    const pieces = Array.from({ length: stream.length }, (_, index) => stream.subarray(index, index + 1));
    expect(decodeAllRequests(pieces).decoded).toEqual(expectedRequests);
  });

  it("copies what it keeps, so the sender may reuse its buffer", () => {
    const bytes = encodeRequest(sampleRequests[1]);
    const queue = new ByteQueue();
    queue.push(bytes.subarray(0, 40));
    bytes.fill(0, 0, 40); // the connection lends its buffer and gets it back
    queue.push(encodeRequest(sampleRequests[1]).subarray(40));
    expect(summary(decodeRequest(queue, 4096)!)).toEqual(expectedRequests[1]);
  });

  it("drops an oversize WRITE payload as it arrives and stays in sync after it", () => {
    const oversizeBytes = nbdLimits.payloadBytesMax + SECTOR_BYTES;
    const header = encodeRequest({ type: nbdCommands.write, cookie: 9n, offsetBytes: 0, lengthBytes: oversizeBytes });
    const after = encodeRequest(sampleRequests[0]);
    const queue = new ByteQueue();
    queue.push(header);
    const first = decodeRequest(queue, nbdLimits.payloadBytesMax)!;
    expect(first.payloadDiscarded).toBe(true);
    expect(first.payload).toBeUndefined();
    const chunk = new Uint8Array(64 * 1024);
    let peakBytes = 0;
    for (let sentBytes = 0; sentBytes < oversizeBytes; sentBytes += chunk.length) {
      queue.push(chunk.subarray(0, Math.min(chunk.length, oversizeBytes - sentBytes)));
      peakBytes = Math.max(peakBytes, queue.lengthBytes);
      expect(decodeRequest(queue, nbdLimits.payloadBytesMax)).toBeUndefined();
    }
    expect(peakBytes).toBe(0);
    queue.push(after);
    expect(summary(decodeRequest(queue, nbdLimits.payloadBytesMax)!)).toEqual(expectedRequests[0]);
  });

  it("buffers a WRITE of the maximum payload whole", () => {
    const payload = patternBytes(nbdLimits.payloadBytesMax, 2);
    const bytes = encodeRequest({ type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: payload.length, payload });
    const { decoded } = decodeAllRequests([bytes.subarray(0, 1000), bytes.subarray(1000)], nbdLimits.payloadBytesMax);
    expect(decoded).toHaveLength(1);
    expect(decoded[0].payload!.length).toBe(payload.length);
  });

  it("throws a protocol error on a bad request magic", () => {
    const bytes = encodeRequest(sampleRequests[0]);
    bytes[0] ^= 0xff;
    const queue = new ByteQueue();
    queue.push(bytes);
    expect(() => decodeRequest(queue, 4096)).toThrow(NbdProtocolError);
  });
});

/** Feeds `pieces` to a {@link RequestDecoder}, taking every request after each push. */
function decodeAllWithDecoder(pieces: readonly Uint8Array[], payloadBytesMax = 4096) {
  const allocated: number[] = [];
  const decoder = new RequestDecoder({
    payloadBytesMax,
    allocate: (lengthBytes) => {
      allocated.push(lengthBytes);
      return new Uint8Array(lengthBytes);
    },
  });
  const decoded: ReturnType<typeof summary>[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    piece.fill(0xee); // the connection lends its chunks: nothing decoded may still point into one
    for (let request = decoder.next(); request; request = decoder.next()) decoded.push(summary(request));
  }
  return { decoded, allocated, decoder };
}

describe("NBD transmission decoder", () => {
  const stream = requestBytes(sampleRequests);

  it("decodes the same requests whatever byte the stream is split at, keeping nothing of a chunk", () => {
    for (let splitBytes = 0; splitBytes <= stream.length; splitBytes++) {
      const copy = stream.slice();
      const { decoded, decoder } = decodeAllWithDecoder([copy.subarray(0, splitBytes), copy.subarray(splitBytes)]);
      expect(decoded, `split at ${splitBytes}`).toEqual(expectedRequests);
      expect(decoder.pendingCount).toBe(0);
    }
  });

  it("decodes the same requests fed one byte at a time, allocating each payload once at its length", () => {
    const copy = stream.slice();
    const pieces = Array.from({ length: copy.length }, (_, index) => copy.subarray(index, index + 1));
    const { decoded, allocated } = decodeAllWithDecoder(pieces);
    expect(decoded).toEqual(expectedRequests);
    expect(allocated).toEqual([1024]); // the empty WRITE needs no buffer
  });

  it("drops an oversize WRITE payload as it arrives and stays in sync after it", () => {
    const oversizeBytes = nbdLimits.payloadBytesMax + SECTOR_BYTES;
    const header = encodeRequest({ type: nbdCommands.write, cookie: 9n, offsetBytes: 0, lengthBytes: oversizeBytes });
    const pieces = [header];
    for (let sentBytes = 0; sentBytes < oversizeBytes; sentBytes += 64 * 1024) {
      pieces.push(new Uint8Array(Math.min(64 * 1024, oversizeBytes - sentBytes)));
    }
    pieces.push(encodeRequest(sampleRequests[0]));
    const { decoded, allocated } = decodeAllWithDecoder(pieces, nbdLimits.payloadBytesMax);
    expect(decoded.map((request) => request.payloadDiscarded)).toEqual([true, false]);
    expect(decoded[1]).toEqual(expectedRequests[0]);
    expect(allocated).toEqual([]);
  });

  it("names where a large payload's rest and the next header belong, and takes bytes read there without a copy", () => {
    const payloadBytes = 4 * directReadBytesMin;
    const payload = patternBytes(payloadBytes, 5);
    const decoder = new RequestDecoder({ payloadBytesMax: payloadBytes, allocate: (lengthBytes) => new Uint8Array(lengthBytes) });
    expect(decoder.readTarget()).toBeNull(); // nothing known yet: the connection's own buffer
    const write = encodeRequest({ type: nbdCommands.write, cookie: 1n, offsetBytes: 0, lengthBytes: payloadBytes, payload });
    decoder.push(write.subarray(0, 28 + 1000)); // header and the payload's first bytes, copied
    const rest = decoder.readTarget()!;
    expect(rest.length).toBe(payloadBytes - 1000);
    rest.set(payload.subarray(1000, 5000)); // a read of 4000 bytes into the view
    decoder.push(rest.subarray(0, 4000));
    const rest2 = decoder.readTarget()!;
    expect(rest2.buffer).toBe(rest.buffer);
    expect(rest2.byteOffset).toBe(rest.byteOffset + 4000);
    rest2.set(payload.subarray(5000));
    decoder.push(rest2);
    const decoded = decoder.next()!;
    expect(decoded.payload!.buffer).toBe(rest.buffer);
    expect([...decoded.payload!].every((byte, index) => byte === payload[index])).toBe(true);
    expect(decoder.pendingPayloadBytes).toBe(0);
    // After a payload read in place, the next header is asked for alone, even in pieces.
    const read = encodeRequest({ type: nbdCommands.read, cookie: 2n, offsetBytes: 0, lengthBytes: 512 });
    const header = decoder.readTarget()!;
    expect(header.length).toBe(28);
    header.set(read.subarray(0, 10));
    decoder.push(header.subarray(0, 10));
    const headerRest = decoder.readTarget()!;
    expect(headerRest.length).toBe(18);
    headerRest.set(read.subarray(10));
    decoder.push(headerRest);
    expect(summary(decoder.next()!).cookie).toBe(2n);
    // A READ is not followed by a large payload: back to the connection's own buffer.
    expect(decoder.readTarget()).toBeNull();
    // A small WRITE's rest is left to the connection's buffer too.
    decoder.push(encodeRequest({ type: nbdCommands.write, cookie: 3n, offsetBytes: 0, lengthBytes: 4096, payload: patternBytes(4096, 1) }).subarray(0, 100));
    expect(decoder.readTarget()).toBeNull();
  });

  it("decodes the same requests when reads of any size go where it names (fast-check)", () => {
    const requestArbitrary = fc.oneof(
      fc.record({ type: fc.constant(nbdCommands.read), lengthBytes: fc.integer({ min: 1, max: 1 << 20 }) }),
      fc.record({ type: fc.constant(nbdCommands.write), lengthBytes: fc.integer({ min: 0, max: 300 * 1024 }) }),
      fc.record({ type: fc.constant(nbdCommands.write), lengthBytes: fc.integer({ min: 0, max: 4096 }) }),
    );
    fc.assert(
      fc.property(fc.array(requestArbitrary, { minLength: 1, maxLength: 12 }), fc.integer(), (shapes, seed) => {
        const requests: RequestFields[] = shapes.map((shape, index) => ({
          type: shape.type,
          cookie: BigInt(index + 1),
          offsetBytes: index * 512,
          lengthBytes: shape.lengthBytes,
          payload: shape.type === nbdCommands.write ? patternBytes(shape.lengthBytes, index) : undefined,
        }));
        const stream = requestBytes(requests);
        const decoder = new RequestDecoder({ payloadBytesMax: 300 * 1024, allocate: (lengthBytes) => new Uint8Array(lengthBytes) });
        const decoded: ReturnType<typeof summary>[] = [];
        let state = seed >>> 0;
        let atBytes = 0;
        let inPlace = 0;
        while (atBytes < stream.length) {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0;
          const target = decoder.readTarget();
          const lengthBytes = Math.min(stream.length - atBytes, 1 + (state % 80_000), target?.length ?? Infinity);
          let bytes: Uint8Array;
          if (target === null) {
            bytes = stream.slice(atBytes, atBytes + lengthBytes);
          } else {
            target.set(stream.subarray(atBytes, atBytes + lengthBytes));
            bytes = target.subarray(0, lengthBytes);
            inPlace++;
          }
          atBytes += lengthBytes;
          decoder.push(bytes);
          if (target === null) bytes.fill(0xee); // a lent chunk: nothing decoded may point into it
          for (let request = decoder.next(); request; request = decoder.next()) decoded.push(summary(request));
        }
        expect(decoded).toEqual(requests.map((request) => ({
          type: request.type,
          flags: 0,
          cookie: request.cookie,
          offsetBytes: request.offsetBytes,
          lengthBytes: request.lengthBytes,
          payload: request.payload === undefined ? undefined : [...request.payload],
          payloadDiscarded: false,
        })));
        const large = requests.filter((request) => request.type === nbdCommands.write && request.lengthBytes > directReadBytesMin + 80_000);
        if (large.length > 0) expect(inPlace).toBeGreaterThan(0);
      }),
      { numRuns: 150 },
    );
  });

  it("hands out the requests before a bad magic, then throws a protocol error", () => {
    const bad = encodeRequest(sampleRequests[0]);
    bad[0] ^= 0xff;
    const decoder = new RequestDecoder({ payloadBytesMax: 4096, allocate: (lengthBytes) => new Uint8Array(lengthBytes) });
    decoder.push(concatBytes([requestBytes(sampleRequests.slice(0, 2)), bad, requestBytes(sampleRequests.slice(2))]));
    expect(summary(decoder.next()!)).toEqual(expectedRequests[0]);
    expect(summary(decoder.next()!)).toEqual(expectedRequests[1]);
    expect(() => decoder.next()).toThrow(NbdProtocolError);
  });
});

describe("NBD buffer pool", () => {
  it("reuses a buffer given back for any length of its class, and keeps no more than its cap", () => {
    const pool = new BufferPool({ bytesMax: 1024 * 1024, retainedBytesMax: 8192 });
    const first = pool.take(3000);
    expect(first.length).toBe(3000);
    pool.give(first);
    expect(pool.retainedBytes).toBe(4096);
    const second = pool.take(4096);
    expect(second.buffer).toBe(first.buffer);
    expect(pool.retainedBytes).toBe(0);
    const large = pool.take(1024 * 1024);
    pool.give(large); // over the cap: left to the collector
    expect(pool.retainedBytes).toBe(0);
    pool.give(second);
    expect(() => pool.give(second)).toThrow(); // two owners at once is a bug
  });
});

describe("NBD option decoding", () => {
  const options = [
    encodeOption(nbdOptions.list),
    encodeOption(nbdOptions.info, encodeInfoRequest("disk", [0, 3])),
    encodeOption(nbdOptions.go, encodeInfoRequest("vol@snap:before-upgrade", [])),
  ];
  const stream = concatBytes(options);

  it("decodes the same options whatever byte the stream is split at", () => {
    for (let splitBytes = 0; splitBytes <= stream.length; splitBytes++) {
      const queue = new ByteQueue();
      const decoded = [];
      for (const piece of [stream.subarray(0, splitBytes), stream.subarray(splitBytes)]) {
        queue.push(piece);
        for (let option = decodeOption(queue, 1024); option; option = decodeOption(queue, 1024)) decoded.push(option);
      }
      expect(decoded.map((option) => option.option), `split at ${splitBytes}`).toEqual([
        nbdOptions.list,
        nbdOptions.info,
        nbdOptions.go,
      ]);
      const go = decoded[2];
      expect(go.oversize).toBe(false);
      if (!go.oversize) expect(decodeInfoRequest(go.data, 4096)).toEqual({ name: "vol@snap:before-upgrade", infoTypes: [] });
    }
  });

  it("drops oversize option data as it arrives and reads the next option", () => {
    const queue = new ByteQueue();
    const big = encodeOption(nbdOptions.go, new Uint8Array(nbdLimits.optionDataBytesMax + 1));
    queue.push(big.subarray(0, 100));
    const first = decodeOption(queue, nbdLimits.optionDataBytesMax)!;
    expect(first).toEqual({ option: nbdOptions.go, dataBytes: nbdLimits.optionDataBytesMax + 1, oversize: true });
    queue.push(big.subarray(100));
    expect(queue.lengthBytes).toBe(0);
    queue.push(options[0]);
    expect(decodeOption(queue, nbdLimits.optionDataBytesMax)).toMatchObject({ option: nbdOptions.list, oversize: false });
  });

  it("rejects info requests whose lengths do not add up, and names that are not UTF-8", () => {
    const good = encodeInfoRequest("disk", [3]);
    expect(decodeInfoRequest(good, 4096)).toEqual({ name: "disk", infoTypes: [3] });
    expect(() => decodeInfoRequest(good.subarray(0, good.length - 1), 4096)).toThrow(SyntaxError);
    expect(() => decodeInfoRequest(concatBytes([good, new Uint8Array(1)]), 4096)).toThrow(SyntaxError);
    expect(() => decodeInfoRequest(good, 3)).toThrow(SyntaxError);
    const badName = encodeInfoRequest("disk", []);
    badName[4] = 0xff;
    expect(() => decodeInfoRequest(badName, 4096)).toThrow(SyntaxError);
    expect(() => decodeInfoRequest(encodeInfoRequest("a\0b", []), 4096)).toThrow(SyntaxError);
  });

  it("refuses client flags the server did not offer", () => {
    expect(decodeClientFlags(new Uint8Array([0, 0, 0, 3]))).toBe(3);
    expect(() => decodeClientFlags(new Uint8Array([0, 0, 0, 4]))).toThrow(NbdProtocolError);
  });
});

describe("NBD request checks", () => {
  const shape = { sizeBytes: 1024 * 1024, readOnly: false };
  const readOnly = { ...shape, readOnly: true };
  const request = (fields: Partial<DecodedRequest["header"]> & { payloadDiscarded?: boolean }): DecodedRequest => ({
    header: { flags: 0, type: nbdCommands.read, cookie: new Uint8Array(8), offsetBytes: 0, lengthBytes: 512, ...fields },
    payloadDiscarded: fields.payloadDiscarded ?? false,
  });

  it("maps each rejection to the error value the NBD document names", () => {
    const cases: [DecodedRequest, typeof shape, number][] = [
      [request({}), shape, nbdErrors.none],
      [request({ type: nbdCommands.write }), readOnly, nbdErrors.permission],
      [request({ type: nbdCommands.trim }), readOnly, nbdErrors.permission],
      [request({ type: nbdCommands.writeZeroes }), readOnly, nbdErrors.permission],
      [request({}), readOnly, nbdErrors.none],
      [request({ type: nbdCommands.write, offsetBytes: shape.sizeBytes }), shape, nbdErrors.noSpace],
      [request({ type: nbdCommands.writeZeroes, offsetBytes: 0, lengthBytes: shape.sizeBytes + 512 }), shape, nbdErrors.noSpace],
      [request({ offsetBytes: shape.sizeBytes - 256 }), shape, nbdErrors.invalid],
      [request({ offsetBytes: shape.sizeBytes }), shape, nbdErrors.invalid],
      [request({ offsetBytes: 2 ** 63 }), shape, nbdErrors.invalid],
      [request({ offsetBytes: 100 }), shape, nbdErrors.invalid],
      [request({ type: nbdCommands.write, lengthBytes: 100 }), shape, nbdErrors.invalid],
      [request({ type: nbdCommands.write, payloadDiscarded: true, lengthBytes: 8 * 1024 * 1024 }), shape, nbdErrors.overflow],
      [request({ lengthBytes: nbdLimits.payloadBytesMax + 512 }), shape, nbdErrors.overflow],
      [request({ type: nbdCommands.blockStatus }), shape, nbdErrors.invalid],
      [request({ type: 99 }), shape, nbdErrors.invalid],
      [request({ flags: nbdCommandFlags.df }), shape, nbdErrors.invalid],
      [request({ type: nbdCommands.write, flags: nbdCommandFlags.noHole }), shape, nbdErrors.invalid],
      [request({ type: nbdCommands.writeZeroes, flags: nbdCommandFlags.noHole | nbdCommandFlags.fua }), shape, nbdErrors.none],
      [request({ type: nbdCommands.flush, lengthBytes: 0 }), shape, nbdErrors.none],
      [request({ type: nbdCommands.flush, lengthBytes: 512 }), shape, nbdErrors.invalid],
    ];
    for (const [input, against, expected] of cases) {
      expect(checkRequest(input, against), JSON.stringify({ ...input.header, cookie: undefined })).toBe(expected);
    }
  });
});
