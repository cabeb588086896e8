/**
 * Proves every {@link Transport} keeps the seam's contract: one shared suite runs over the
 * in-process `MemoryTransport` and the running runtime's `TcpTransport` on loopback (Node's
 * under Node, Deno's under Deno): connect, accept and echo; 64 MiB in random chunk sizes from
 * several sends in flight, compared by a running xxHash64 of the whole stream (TCP may split
 * and merge chunks, so only the concatenation counts); both directions at once; close from
 * either end; connecting where nothing listens; closing a listener; many connections at once;
 * and backpressure: a peer that does not read makes `send` stay pending (checked by that
 * pending state, and by how little was accepted before it, never by wall-clock time).
 *
 * Then each transport's own duties: the in-process transport's zero-copy hand-over and its
 * faults (drop, stall and resume, drop after n bytes, the per-direction bound); TCP's real
 * port, IPv6 loopback, and a reset that ends the iteration with `ConnectionClosedError`;
 * and `sinkTo`: the stream continues exactly from where an iteration left it, reads land in
 * the views the sink names, `end` comes once; a paused sink gets nothing and the sender
 * waits; a reset ends it once with `ConnectionClosedError`; a sink that throws breaks the
 * connection; after `close` the sink hears nothing.
 */
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import xxhash from "xxhash-wasm";
import { type MemoryConnection, MemoryTransport } from "../../src/io/memory_transport.ts";
import { randomInt, SeededRandom } from "../../src/io/random.ts";
import {
  ConnectFailedError,
  type Connection,
  ConnectionClosedError,
  type Listener,
  type Transport,
} from "../../src/io/transport.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { expectBytes } from "./test_bytes.ts";

const target = await runtimeTarget();
const { create64 } = await xxhash();
const kibibyte = 1024;
const mebibyte = 1024 * 1024;

/** How the shared suite gets a transport and its addresses. */
interface TransportHarness {
  readonly transport: Transport;
  /** An address to listen on; a new one each call where names must differ. */
  listenAddress(): string;
  /** An address nothing listens on. */
  unusedAddress(): Promise<string>;
  /** An address the transport cannot parse. */
  readonly malformedAddress: string;
}

let memoryNameCount = 0;

function memoryHarness(): TransportHarness {
  return {
    transport: new MemoryTransport(),
    listenAddress: () => `appliance-${++memoryNameCount}`,
    unusedAddress: () => Promise.resolve("nobody-listens-here"),
    malformedAddress: "",
  };
}

function tcpHarness(): TransportHarness {
  const transport = new target.TcpTransport();
  return {
    transport,
    listenAddress: () => "127.0.0.1:0",
    unusedAddress: async () => {
      // A port that was free a moment ago: listen on any port, then give it back.
      const listener = await transport.listen("127.0.0.1:0");
      await listener.close();
      return listener.address;
    },
    malformedAddress: "localhost",
  };
}

/** Closes, after each test, what the test opened, so no socket outlives it. */
class Resources {
  #closables: { close(): Promise<void> }[] = [];

  track<T extends { close(): Promise<void> }>(closable: T): T {
    this.#closables.push(closable);
    return closable;
  }

  async closeAll(): Promise<void> {
    const closables = this.#closables.splice(0).reverse();
    await Promise.all(closables.map((closable) => closable.close()));
  }
}

/** Accepts connections one by one from a listener, through one iteration. */
class Acceptor {
  readonly #iterator: AsyncIterator<Connection>;

  constructor(listener: Listener) {
    this.#iterator = listener[Symbol.asyncIterator]();
  }

  async accept(): Promise<Connection> {
    const result = await this.#iterator.next();
    if (result.done) throw new Error("The listener ended instead of accepting");
    return result.value;
  }
}

/** A listener with one accepted connection and its client end. */
async function connectedPair(harness: TransportHarness, resources: Resources) {
  const listener = resources.track(await harness.transport.listen(harness.listenAddress()));
  const acceptor = new Acceptor(listener);
  const client = resources.track(await harness.transport.connect(listener.address));
  const server = resources.track(await acceptor.accept());
  return { listener, acceptor, client, server };
}

/** Random bytes to take chunks from (crypto fills at most 64 KiB per call). */
function randomPool(lengthBytes: number): Uint8Array {
  const pool = new Uint8Array(lengthBytes);
  for (let offsetBytes = 0; offsetBytes < lengthBytes; offsetBytes += 64 * kibibyte) {
    crypto.getRandomValues(pool.subarray(offsetBytes, offsetBytes + 64 * kibibyte));
  }
  return pool;
}

const pool = randomPool(8 * mebibyte);

/** `count` adjacent slices of the pool, each `lengthBytes` long. */
function poolSlices(count: number, lengthBytes: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => pool.subarray(index * lengthBytes, (index + 1) * lengthBytes));
}

/** A running hash and length of a byte stream. */
class StreamDigest {
  readonly #hash = create64();
  lengthBytes = 0;

  update(bytes: Uint8Array): void {
    this.#hash.update(bytes);
    this.lengthBytes += bytes.length;
  }

  digest(): { lengthBytes: number; hash: bigint } {
    return { lengthBytes: this.lengthBytes, hash: this.#hash.digest() };
  }
}

/**
 * Sends `totalBytes` of the pool in random chunk sizes (1 byte to 256 KiB, skewed small), one
 * to three chunks per send, keeping up to `sendsInFlightMax` sends in flight; returns the
 * digest of what it sent.
 */
async function sendRandomStream(
  connection: Connection,
  options: { totalBytes: number; seed: number; sendsInFlightMax: number },
): Promise<{ lengthBytes: number; hash: bigint }> {
  const random = new SeededRandom(options.seed);
  const digest = new StreamDigest();
  const inFlight: Promise<void>[] = [];
  while (digest.lengthBytes < options.totalBytes) {
    const chunks: Uint8Array[] = [];
    const chunkCount = randomInt(random, 1, 3);
    for (let index = 0; index < chunkCount && digest.lengthBytes < options.totalBytes; index++) {
      const sizeMax = Math.min(1 << randomInt(random, 0, 18), options.totalBytes - digest.lengthBytes);
      const lengthBytes = randomInt(random, 1, sizeMax);
      const offsetBytes = randomInt(random, 0, pool.length - lengthBytes);
      const chunk = pool.subarray(offsetBytes, offsetBytes + lengthBytes);
      digest.update(chunk);
      chunks.push(chunk);
    }
    inFlight.push(connection.send(chunks.length === 1 ? chunks[0] : chunks));
    if (inFlight.length >= options.sendsInFlightMax) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return digest.digest();
}

/** Reads until the stream ends (or `lengthBytesMax` bytes arrived); returns its digest. */
async function receiveStream(
  connection: Connection,
  lengthBytesMax = Number.POSITIVE_INFINITY,
): Promise<{ lengthBytes: number; hash: bigint }> {
  const digest = new StreamDigest();
  if (lengthBytesMax === 0) return digest.digest();
  for await (const chunk of connection) {
    digest.update(chunk);
    if (digest.lengthBytes >= lengthBytesMax) break;
  }
  return digest.digest();
}

/** Reads until the stream ends; returns the bytes. */
async function receiveAll(connection: Connection): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of connection) chunks.push(chunk.slice());
  return concatenate(chunks);
}

/** Reads exactly `lengthBytes` bytes (the stream must carry at least that many). */
async function receiveExactly(connection: Connection, lengthBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let receivedBytes = 0;
  for await (const chunk of connection) {
    chunks.push(chunk.slice());
    receivedBytes += chunk.length;
    if (receivedBytes >= lengthBytes) break;
  }
  expect(receivedBytes).toBe(lengthBytes);
  return concatenate(chunks);
}

function concatenate(chunks: readonly Uint8Array[]): Uint8Array {
  let lengthBytes = 0;
  for (const chunk of chunks) lengthBytes += chunk.length;
  const bytes = new Uint8Array(lengthBytes);
  let offsetBytes = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offsetBytes);
    offsetBytes += chunk.length;
  }
  return bytes;
}

const text = (value: string) => new TextEncoder().encode(value);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A plain `node:net` socket connected to `address` (both runtimes have `node:net`); its own errors are ignored. */
async function rawPeer(address: string) {
  const net = await import("node:net");
  const [host, portText] = address.split(":");
  const raw = net.connect({ host, port: Number(portText) });
  await new Promise<void>((resolve, reject) => {
    raw.once("connect", () => resolve());
    raw.once("error", reject);
  });
  raw.on("error", () => {}); // the raw peer's own errors do not matter here
  return raw;
}

async function until(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 2000 && !condition(); attempt++) await delay(2);
  expect(condition()).toBe(true);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `promise` settles within `ms` (a wait, not a speed check: nothing asserts the time). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  const observed = promise.then(() => (settled = true), () => (settled = true));
  await Promise.race([observed, delay(ms)]);
  return settled;
}

/**
 * Sends `chunk` again and again, each send awaited, until one stays pending through four waits
 * of 100 ms (a slow machine just loops more) or `limitBytes` were accepted.
 */
async function sendUntilStuck(
  connection: Connection,
  chunk: Uint8Array,
  limitBytes: number,
): Promise<{ acceptedBytes: number; pending: Promise<void> | null }> {
  let acceptedBytes = 0;
  while (acceptedBytes < limitBytes) {
    const sent = connection.send(chunk);
    let settled = false;
    for (let wait = 0; wait < 4 && !settled; wait++) settled = await settlesWithin(sent, 100);
    if (!settled) return { acceptedBytes, pending: sent };
    await sent;
    acceptedBytes += chunk.length;
  }
  return { acceptedBytes, pending: null };
}

function describeTransportContract(name: string, makeHarness: () => TransportHarness) {
  describe(`${name} keeps the Transport contract`, () => {
    let harness: TransportHarness;
    let resources: Resources;

    beforeEach(() => {
      harness = makeHarness();
      resources = new Resources();
    });

    afterEach(async () => {
      await resources.closeAll();
    });

    test("A client connects, the listener accepts, and bytes echo back", async () => {
      const { listener, client, server } = await connectedPair(harness, resources);
      expect(client.remoteAddress.endsWith(listener.address)).toBe(true);
      expect(server.remoteAddress.length).toBeGreaterThan(0);
      const echoed = (async () => {
        for await (const chunk of server) await server.send(chunk);
      })();
      // Read while sending: in-process, a send completes only once the peer has read it.
      const received = receiveExactly(client, 16);
      await client.send([text("hello, "), text("appliance")]);
      expect(decode(await received)).toBe("hello, appliance");
      await client.close();
      await echoed;
    });

    test("64 MiB in random chunk sizes, several sends in flight, arrives in order and byte-exact", async () => {
      const { client, server } = await connectedPair(harness, resources);
      const received = receiveStream(server);
      const sent = await sendRandomStream(client, { totalBytes: 64 * mebibyte, seed: 7, sendsInFlightMax: 8 });
      await client.close();
      expect(await received).toEqual(sent);
      expect(sent.lengthBytes).toBe(64 * mebibyte);
    });

    test("Both directions carry 16 MiB at once", async () => {
      const { client, server } = await connectedPair(harness, resources);
      const totalBytes = 16 * mebibyte;
      const clientReceived = receiveStream(client, totalBytes);
      const serverReceived = receiveStream(server, totalBytes);
      const [clientSent, serverSent] = await Promise.all([
        sendRandomStream(client, { totalBytes, seed: 1, sendsInFlightMax: 4 }),
        sendRandomStream(server, { totalBytes, seed: 2, sendsInFlightMax: 4 }),
      ]);
      expect(await serverReceived).toEqual(clientSent);
      expect(await clientReceived).toEqual(serverSent);
    });

    for (const closer of ["client", "server"] as const) {
      test(`When the ${closer} closes, the other end gets every byte sent before, then the end`, async () => {
        const pair = await connectedPair(harness, resources);
        const closing = pair[closer];
        const other = closer === "client" ? pair.server : pair.client;
        const sent = closing.send(text("goodbye"));
        await closing.close();
        expect(decode(await receiveAll(other))).toBe("goodbye");
        await sent;
        await expect(other.send(text("too late"))).rejects.toBeInstanceOf(ConnectionClosedError);
        await expect(closing.send(text("too late"))).rejects.toBeInstanceOf(ConnectionClosedError);
        // Closing again, from either end, is harmless.
        await closing.close();
        await other.close();
      });
    }

    test("Every send made before close, even one still waiting, reaches the peer before the end", async () => {
      const { client, server } = await connectedPair(harness, resources);
      const chunk = pool.subarray(0, 64 * kibibyte);
      const sendCount = 256; // 16 MiB: more than the path holds, so some sends still wait
      const sends = Array.from({ length: sendCount }, () => client.send(chunk));
      const closed = client.close();
      await expect(client.send(chunk)).rejects.toBeInstanceOf(ConnectionClosedError);
      const received = await receiveStream(server);
      await Promise.all(sends);
      await closed;
      const expected = new StreamDigest();
      for (let index = 0; index < sendCount; index++) expected.update(chunk);
      expect(received).toEqual(expected.digest());
    });

    test("Closing an end ends its own iteration at once", async () => {
      const { client } = await connectedPair(harness, resources);
      const received = receiveAll(client);
      await client.close();
      expect((await received).length).toBe(0);
    });

    test("Connecting where nothing listens rejects with ConnectFailedError naming the address", async () => {
      const address = await harness.unusedAddress();
      const error = await harness.transport.connect(address).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectFailedError);
      expect((error as Error).message).toContain(address);
      await expect(harness.transport.connect(harness.malformedAddress)).rejects.toBeInstanceOf(SyntaxError);
    });

    test("Closing a listener ends its iteration, refuses new connections, and keeps accepted ones", async () => {
      const { listener, client, server } = await connectedPair(harness, resources);
      const accepting = (async () => {
        const accepted: Connection[] = [];
        for await (const connection of listener) accepted.push(connection);
        return accepted;
      })();
      await listener.close();
      expect(await accepting).toEqual([]);
      await expect(harness.transport.connect(listener.address)).rejects.toBeInstanceOf(ConnectFailedError);
      const received = receiveExactly(server, 5);
      await client.send(text("still"));
      expect(decode(await received)).toBe("still");
    });

    test("64 connections at once each carry their own bytes", async () => {
      const listener = resources.track(await harness.transport.listen(harness.listenAddress()));
      const serving = (async () => {
        const echoes: Promise<void>[] = [];
        for await (const connection of listener) {
          resources.track(connection);
          echoes.push((async () => {
            for await (const chunk of connection) await connection.send(chunk);
          })());
        }
        await Promise.all(echoes);
      })();
      const connectionCount = 64;
      const lengthBytes = 64 * kibibyte;
      await Promise.all(Array.from({ length: connectionCount }, async (_, index) => {
        const client = resources.track(await harness.transport.connect(listener.address));
        const offsetBytes = index * 97 * kibibyte;
        const bytes = pool.subarray(offsetBytes, offsetBytes + lengthBytes);
        const echoed = receiveExactly(client, lengthBytes);
        await client.send(bytes);
        expectBytes(await echoed, bytes);
        await client.close();
      }));
      await listener.close();
      await serving;
    });

    test("A peer that does not read makes send wait rather than buffer without bound", async () => {
      const { client, server } = await connectedPair(harness, resources);
      const chunk = pool.subarray(0, 64 * kibibyte);
      const limitBytes = 64 * mebibyte;
      const { acceptedBytes, pending } = await sendUntilStuck(client, chunk, limitBytes);
      // Something between the two ends filled up and pushed back well before 64 MiB.
      expect(pending).not.toBeNull();
      expect(acceptedBytes).toBeLessThan(limitBytes);
      // Once the peer reads, everything arrives in order and the pending send completes.
      const totalBytes = acceptedBytes + chunk.length;
      const received = await receiveStream(server, totalBytes);
      await pending;
      const expected = new StreamDigest();
      for (let sentBytes = 0; sentBytes < totalBytes; sentBytes += chunk.length) expected.update(chunk);
      expect(received).toEqual(expected.digest());
    });

    test("send rejects bad chunks with TypeError and sends nothing for an empty list", async () => {
      const { client } = await connectedPair(harness, resources);
      await expect(client.send(["no" as unknown as Uint8Array])).rejects.toBeInstanceOf(TypeError);
      await client.send([]);
      await client.send(new Uint8Array(0));
    });
  });
}

describeTransportContract("MemoryTransport", memoryHarness);
describeTransportContract(`TcpTransport (${target.name})`, tcpHarness);

describe("MemoryTransport's own duties", () => {
  /** A connected pair of in-process ends. */
  async function memoryPair(options: { bufferBytesMax?: number } = {}) {
    const transport = new MemoryTransport(options);
    const listener = await transport.listen("appliance");
    const client = await transport.connect("appliance");
    const server = (await new Acceptor(listener).accept()) as MemoryConnection;
    return { transport, listener, client, server };
  }

  /** Lets every queued microtask and a few event-loop turns pass. */
  async function quiesce(): Promise<void> {
    for (let turn = 0; turn < 3; turn++) await delay(0);
  }

  test("The receiver gets the very Uint8Array objects the sender passed", async () => {
    const { client, server } = await memoryPair();
    const first = text("header");
    const second = text("payload");
    const sent = client.send([first, second]);
    const iterator = server[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(first);
    expect((await iterator.next()).value).toBe(second);
    await sent;
  });

  test("A send resolves only when the receiver has taken its last chunk", async () => {
    const { client, server } = await memoryPair();
    let resolved = false;
    const sent = client.send([text("a"), text("b")]).then(() => (resolved = true));
    await quiesce();
    expect(resolved).toBe(false);
    const iterator = server[Symbol.asyncIterator]();
    await iterator.next();
    await quiesce();
    expect(resolved).toBe(false);
    await iterator.next();
    await sent;
    expect(resolved).toBe(true);
  });

  test("A receiver handles each chunk before the sender can reuse the buffer", async () => {
    const { client, server } = await memoryPair();
    const buffer = new Uint8Array(1024);
    const rounds = 200;
    const sending = (async () => {
      for (let round = 0; round < rounds; round++) {
        buffer.fill(round);
        await client.send(buffer);
      }
      await client.close();
    })();
    const seen: number[] = [];
    for await (const chunk of server) {
      expect(chunk).toBe(buffer);
      if (chunk.every((byte) => byte === chunk[0])) seen.push(chunk[0]);
    }
    await sending;
    expect(seen).toEqual(Array.from({ length: rounds }, (_, round) => round));
  });

  test("A held send settles only when the receiver is done with its chunks: asks for the next, or releases", async () => {
    const { client, server } = await memoryPair();
    let settled = false;
    const first = text("header");
    const second = text("payload");
    const sent = client.sendHeld([first, second]).then(() => (settled = true));
    const plain = client.send(text("after"));
    const iterator = server[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(first);
    expect(server.chunkHeld).toBe(true);
    expect((await iterator.next()).value).toBe(second); // asking for it released the first
    expect(server.chunkHeld).toBe(true);
    await quiesce();
    expect(settled).toBe(false); // the payload is still out, though every chunk was taken
    expect(decode((await iterator.next()).value!)).toBe("after");
    expect(server.chunkHeld).toBe(false); // a plain send's chunk
    await sent;
    await plain;
    // release() alone ends a loan, for a consumer that stops reading; it is idempotent.
    let released = false;
    const again = client.sendHeld([text("last")]).then(() => (released = true));
    await iterator.next();
    await quiesce();
    expect(released).toBe(false);
    server.release();
    server.release();
    await again;
    expect(released).toBe(true);
    expect(server.chunkHeld).toBe(false);
  });

  test("Leaving the iteration releases a held chunk; a close or a drop does not, while it is out", async () => {
    const { client, server } = await memoryPair();
    const left = client.sendHeld([text("a")]);
    for await (const _chunk of server) break;
    await left;
    // Out when the connection drops: the send settles (rejected) only at the release.
    let settled = false;
    const cut = client.sendHeld([text("b"), text("c")]).then(() => (settled = true), (error) => {
      settled = true;
      throw error;
    });
    const iterator = server[Symbol.asyncIterator]();
    expect(decode((await iterator.next()).value!)).toBe("b");
    client.drop();
    await server.close();
    await quiesce();
    expect(settled).toBe(false);
    expect((await iterator.next()).done).toBe(true); // this end is closed; asking released "b"
    await expect(cut).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("A held send the receiver never took rejects at the break, like a plain one", async () => {
    const { client, server } = await memoryPair();
    server.stall();
    const sent = client.sendHeld([text("never")]);
    client.drop();
    await expect(sent).rejects.toBeInstanceOf(ConnectionClosedError);
    await server.close();
  });

  test("Each direction queues at most bufferBytesMax; further sends wait, in order", async () => {
    const { client, server } = await memoryPair({ bufferBytesMax: mebibyte });
    const chunks = poolSlices(8, 256 * kibibyte);
    const sends = chunks.map((chunk) => client.send(chunk));
    await quiesce();
    expect(client.bufferedBytes).toBe(mebibyte);
    const received: Uint8Array[] = [];
    for await (const chunk of server) {
      expect(client.bufferedBytes).toBeLessThanOrEqual(mebibyte);
      received.push(chunk);
      if (received.length === chunks.length) break;
    }
    await Promise.all(sends);
    expect(received.length).toBe(chunks.length);
    expect(received.every((chunk, index) => chunk === chunks[index])).toBe(true);
    expect(client.bufferedBytes).toBe(0);
  });

  test("A chunk larger than bufferBytesMax still goes through, alone", async () => {
    const { client, server } = await memoryPair({ bufferBytesMax: 1024 });
    const big = pool.subarray(0, 4096);
    const sent = client.send([big, text("after")]);
    await quiesce();
    expect(client.bufferedBytes).toBe(4096);
    const iterator = server[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(big);
    expect(decode((await iterator.next()).value!)).toBe("after");
    await sent;
  });

  test("drop breaks the connection: both iterations throw and every send rejects", async () => {
    const { client, server } = await memoryPair();
    const clientReading = receiveAll(client);
    const serverReading = receiveAll(server);
    const pending = client.send(text("lost"));
    await quiesce();
    server.stall();
    const stuck = client.send(text("also lost"));
    client.drop();
    await expect(clientReading).rejects.toBeInstanceOf(ConnectionClosedError);
    await expect(serverReading).rejects.toBeInstanceOf(ConnectionClosedError);
    await expect(pending).resolves.toBeUndefined(); // taken before the drop
    await expect(stuck).rejects.toBeInstanceOf(ConnectionClosedError);
    await expect(server.send(text("later"))).rejects.toThrow(/dropped/);
    await client.close();
    await server.close();
  });

  test("stall pauses deliveries and senders block at the bound; resume delivers everything in order", async () => {
    const { client, server } = await memoryPair({ bufferBytesMax: 64 * kibibyte });
    client.stall();
    let delivered = 0;
    const reading = (async () => {
      const digest = new StreamDigest();
      for await (const chunk of server) {
        delivered += chunk.length;
        digest.update(chunk);
        if (digest.lengthBytes === 256 * kibibyte) break;
      }
      return digest.digest();
    })();
    const chunks = poolSlices(16, 16 * kibibyte);
    const sends = chunks.map((chunk) => client.send(chunk));
    await quiesce();
    expect(delivered).toBe(0);
    expect(client.bufferedBytes).toBe(64 * kibibyte);
    for (const send of sends) expect(await settlesWithin(send, 0)).toBe(false);
    server.resume();
    await Promise.all(sends);
    const expected = new StreamDigest();
    for (const chunk of chunks) expected.update(chunk);
    expect(await reading).toEqual(expected.digest());
  });

  test("dropAfterBytes delivers up to the mark, cutting the chunk that crosses it, then drops", async () => {
    const { client, server } = await memoryPair();
    const chunks = [pool.subarray(0, 100), pool.subarray(100, 200), pool.subarray(200, 300)];
    server.dropAfterBytes(250);
    const sent = client.send(chunks);
    const received: Uint8Array[] = [];
    const error = await (async () => {
      for await (const chunk of server) received.push(chunk);
    })().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(received.map((chunk) => chunk.length)).toEqual([100, 100, 50]);
    expect(received[0]).toBe(chunks[0]);
    expect(received[2].buffer).toBe(pool.buffer); // a view of the sender's buffer, not a copy
    expect(received[2].byteOffset).toBe(200);
    await expect(sent).rejects.toBeInstanceOf(ConnectionClosedError);
    await expect(client.send(text("x"))).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("dropAfterBytes counts both directions, and 0 drops at once", async () => {
    const { client, server } = await memoryPair();
    client.dropAfterBytes(10);
    const toServer = client.send(pool.subarray(0, 6));
    expect((await receiveExactly(server, 6)).length).toBe(6);
    await toServer;
    const toClient = server.send(pool.subarray(0, 6));
    const received: Uint8Array[] = [];
    await expect((async () => {
      for await (const chunk of client) received.push(chunk);
    })()).rejects.toBeInstanceOf(ConnectionClosedError);
    expect(received.map((chunk) => chunk.length)).toEqual([4]);
    await expect(toClient).rejects.toBeInstanceOf(ConnectionClosedError);

    const other = await memoryPair();
    other.server.dropAfterBytes(0);
    await expect(other.client.send(text("x"))).rejects.toBeInstanceOf(ConnectionClosedError);
    expect(() => other.server.dropAfterBytes(-1)).toThrow(RangeError);
  });

  test("A name in use cannot be listened on again until its listener closes", async () => {
    const transport = new MemoryTransport();
    const listener = await transport.listen("appliance");
    await expect(transport.listen("appliance")).rejects.toThrow(/"appliance": the name is in use/);
    await listener.close();
    const again = await transport.listen("appliance");
    expect(again.address).toBe("appliance");
    await again.close();
  });

  test("Closing a listener closes connections it did not accept; a full accept queue refuses", async () => {
    const transport = new MemoryTransport({ acceptQueueMax: 2 });
    const listener = await transport.listen("appliance");
    const first = await transport.connect("appliance");
    await transport.connect("appliance");
    await expect(transport.connect("appliance")).rejects.toThrow(ConnectFailedError);
    await listener.close();
    expect((await receiveAll(first)).length).toBe(0);
    await expect(first.send(text("x"))).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("Options out of range are refused with RangeError", () => {
    expect(() => new MemoryTransport({ bufferBytesMax: 0 })).toThrow(RangeError);
    expect(() => new MemoryTransport({ acceptQueueMax: 1.5 })).toThrow(RangeError);
  });
});

describe(`TcpTransport's own duties (${target.name})`, () => {
  let resources: Resources;

  beforeEach(() => {
    resources = new Resources();
  });

  afterEach(async () => {
    await resources.closeAll();
  });

  test("Listening on port 0 reports the real port", async () => {
    const listener = resources.track(await new target.TcpTransport().listen("127.0.0.1:0"));
    const match = /^127\.0\.0\.1:(\d+)$/.exec(listener.address);
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(0);
  });

  test("IPv6 loopback addresses are written in brackets", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("[::1]:0"));
    expect(listener.address).toMatch(/^\[::1\]:\d+$/);
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    const server = resources.track(await acceptor.accept());
    expect(client.remoteAddress).toBe(listener.address);
    expect(server.remoteAddress).toMatch(/^\[::1\]:\d+$/);
    const received = receiveExactly(server, 2);
    await client.send(text("v6"));
    expect(decode(await received)).toBe("v6");
  });

  test("A reset by the peer ends the iteration with ConnectionClosedError", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    // A raw peer that reads nothing, then closes: unread data makes the kernel reset.
    const raw = await rawPeer(listener.address);
    raw.pause();
    const server = resources.track(await acceptor.accept());
    const sent = server.send([pool, pool]);
    const sending = sent.catch((caught: unknown) => caught);
    const reading = receiveAll(server).catch((caught: unknown) => caught);
    // Once the send stalls, the raw peer's kernel holds bytes nobody read.
    expect(await settlesWithin(sent, 200)).toBe(false);
    raw.destroy();
    const error = await reading;
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect((error as Error).message).toContain(server.remoteAddress);
    expect(await sending).toBeInstanceOf(ConnectionClosedError);
    await expect(server.send(text("x"))).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("close gives up on a peer that does not read within the linger time, rejecting what is left", async () => {
    const transport = new target.TcpTransport({ closeLingerMs: 100 });
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    resources.track(await acceptor.accept()); // accepted, never read
    const { pending } = await sendUntilStuck(client, pool.subarray(0, 64 * kibibyte), 64 * mebibyte);
    expect(pending).not.toBeNull();
    await client.close();
    await expect(pending).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("A received chunk stays intact until the iteration asks for the next one, in both directions", async () => {
    // The receiving side reuses its read buffers once the iteration has moved past a chunk
    // (Node's slabs): a consumer that holds each chunk across awaits, while many more bytes
    // arrive behind it, must still find the bytes it was given. Each side is both an
    // accepted socket and one made by connect, so both ways of reading are covered.
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    const server = resources.track(await acceptor.accept());
    const totalBytes = 24 * mebibyte;
    const expected = (index: number) => (index * 131 + (index >>> 16)) & 0xff;
    const pattern = new Uint8Array(totalBytes);
    for (let i = 0; i < totalBytes; i++) pattern[i] = expected(i);
    for (const [sender, receiver] of [[client, server], [server, client]] as const) {
      const sends: Promise<void>[] = [];
      for (let at = 0; at < totalBytes; at += 96 * kibibyte) sends.push(sender.send(pattern.subarray(at, at + 96 * kibibyte)));
      const sending = Promise.all(sends);
      let receivedBytes = 0;
      let chunks = 0;
      for await (const chunk of receiver) {
        const at = receivedBytes;
        const copy = chunk.slice();
        // Let the socket read more (into other pieces) while this chunk is held.
        if (chunks++ % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        else await Promise.resolve();
        expectBytes(chunk, copy);
        expectBytes(chunk, pattern.subarray(at, at + chunk.length));
        receivedBytes += chunk.length;
        if (receivedBytes >= totalBytes) break;
      }
      await sending;
      expect(receivedBytes).toBe(totalBytes);
    }
  });

  test("sinkTo: the rest of the stream reaches the sink in order, reads land in the views it names, end comes once", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    const server = resources.track(await acceptor.accept());
    const totalBytes = 24 * mebibyte;
    const sending = (async () => {
      for (let at = 0; at < totalBytes; at += mebibyte) await client.send(pool.subarray(at % pool.length, (at % pool.length) + mebibyte));
      await client.close();
    })();
    const expected = (at: number) => pool[at % pool.length];
    // Iterate a little first: what the iteration had queued must reach the sink next.
    const assembled = new Uint8Array(totalBytes);
    let receivedBytes = 0;
    for await (const chunk of server) {
      assembled.set(chunk, receivedBytes);
      receivedBytes += chunk.length;
      if (receivedBytes >= 100 * kibibyte) break;
    }
    let inPlace = 0;
    let ends = 0;
    let endError: unknown = "none";
    let named: Uint8Array | null = null;
    const ended = new Promise<void>((resolve) => {
      server.sinkTo!({
        readTarget: () => {
          // Every other read goes where the bytes belong; the others into the transport's buffer.
          named = receivedBytes % 2 === 0 ? assembled.subarray(receivedBytes, receivedBytes + 300 * kibibyte) : null;
          return named !== null && named.length > 0 ? named : null;
        },
        receive: (bytes) => {
          if (named !== null && bytes.buffer === assembled.buffer) {
            expect(bytes.byteOffset).toBe(receivedBytes);
            inPlace++;
          } else {
            assembled.set(bytes, receivedBytes);
          }
          receivedBytes += bytes.length;
          return true;
        },
        end: (error) => {
          ends++;
          endError = error;
          resolve();
        },
      });
    });
    await sending;
    await ended;
    expect(receivedBytes).toBe(totalBytes);
    expect(ends).toBe(1);
    expect(endError).toBeUndefined();
    expect(inPlace).toBeGreaterThan(0);
    for (let at = 0; at < totalBytes; at += 4099) if (assembled[at] !== expected(at)) expect([at, assembled[at]]).toEqual([at, expected(at)]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(ends).toBe(1);
  });

  test("sinkTo: a sink that pauses gets nothing until it resumes, and the sender waits meanwhile", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    const server = resources.track(await acceptor.accept());
    let paused = false;
    let receivedWhilePaused = 0;
    let receivedBytes = 0;
    const digest = new StreamDigest();
    const resume = server.sinkTo!({
      readTarget: () => null,
      receive: (bytes) => {
        if (paused) receivedWhilePaused++;
        digest.update(bytes);
        receivedBytes += bytes.length;
        paused = true; // one read at a time
        return false;
      },
      end: () => {},
    });
    const totalBytes = 64 * mebibyte;
    const sends: Promise<void>[] = [];
    const expectedDigest = new StreamDigest();
    for (let at = 0; at < totalBytes; at += 8 * mebibyte) {
      sends.push(client.send(pool));
      expectedDigest.update(pool);
    }
    const sent = Promise.all(sends);
    await delay(50);
    expect(receivedBytes).toBeGreaterThan(0);
    expect(receivedBytes).toBeLessThanOrEqual(256 * kibibyte); // one read, then nothing
    expect(await settlesWithin(sent, 100)).toBe(false); // the kernel's window closed
    while (receivedBytes < totalBytes) {
      paused = false;
      resume();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await sent;
    expect(receivedWhilePaused).toBe(0);
    expect(digest.digest()).toEqual(expectedDigest.digest());
  });

  test("sinkTo: a reset by the peer ends the sink with ConnectionClosedError, once, after the bytes before it", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const raw = await rawPeer(listener.address);
    const server = resources.track(await acceptor.accept());
    let receivedBytes = 0;
    const ends: unknown[] = [];
    const ended = new Promise<void>((resolve) => {
      server.sinkTo!({
        readTarget: () => null,
        receive: (bytes) => {
          expect(ends).toEqual([]);
          receivedBytes += bytes.length;
          return true;
        },
        end: (error) => {
          ends.push(error);
          resolve();
        },
      });
    });
    raw.write(pool.subarray(0, 100 * kibibyte));
    await until(() => receivedBytes === 100 * kibibyte);
    raw.resetAndDestroy();
    await ended;
    await delay(20);
    expect(ends).toHaveLength(1);
    expect(ends[0]).toBeInstanceOf(ConnectionClosedError);
    await expect(server.send(text("x"))).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  test("sinkTo: a sink that throws breaks the connection and hears end with ConnectionClosedError; after close, nothing", async () => {
    const transport = new target.TcpTransport();
    const listener = resources.track(await transport.listen("127.0.0.1:0"));
    const acceptor = new Acceptor(listener);
    const client = resources.track(await transport.connect(listener.address));
    const server = resources.track(await acceptor.accept());
    const ended = new Promise<unknown>((resolve) => {
      server.sinkTo!({
        readTarget: () => null,
        receive: () => {
          throw new Error("the sink's own bug");
        },
        end: resolve,
      });
    });
    const clientReading = receiveAll(client).catch((caught: unknown) => caught);
    await client.send(text("boom"));
    const error = await ended;
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect((error as Error).message).toContain("the sink's own bug");
    await clientReading; // the peer sees the end (in order or broken), it does not hang
    // A second pair: close, then bytes that arrive are not delivered.
    const client2 = resources.track(await transport.connect(listener.address));
    const server2 = resources.track(await acceptor.accept());
    let heard = 0;
    server2.sinkTo!({ readTarget: () => null, receive: () => (heard++, true), end: () => heard++ });
    await server2.close();
    await client2.send(text("late")).catch(() => {});
    await delay(20);
    expect(heard).toBe(0);
  });

  test("Addresses are checked: a bad port or an unbracketed IPv6 host is a SyntaxError", async () => {
    const transport = new target.TcpTransport();
    for (const address of ["127.0.0.1:65536", "127.0.0.1:x", ":80", "::1:80", "[::1]80"]) {
      await expect(transport.connect(address)).rejects.toBeInstanceOf(SyntaxError);
      await expect(transport.listen(address)).rejects.toBeInstanceOf(SyntaxError);
    }
  });
});
