/**
 * The other process of the real-switch wire benchmarks (`bench/wire_switch.ts`), so that each
 * measured process holds one role, as `anytime switch` and `anytime appliance` do:
 *
 * - `appliance DIR`: `startAppliance` on the Node runtime (file stores under DIR, TCP link on
 *   a free loopback port); prints `{"linkAddress", "secretFile"}` as one line, answers a `cpu`
 *   line with its CPU time (`{"cpuUs"}`), `profile-start` / `profile-stop NAME` lines by
 *   profiling (`cpu_profile.ts`, with `BENCH_CPU_PROFILE_DIR`), stops when its standard input ends.
 * - `appliance-discarding DIR`: the same appliance and link on stores that discard data and
 *   sync at once (CPU and loopback only, the disk out of the picture); only the secret is a file.
 * - `sink BYTES`: a TCP listener that reads BYTES from its first connection and answers one
 *   byte (the raw loopback peer, across processes like the link); prints `{"address"}`.
 * - `overload JSON`: a switch (`startSwitch`) whose link is throttled to `linkMiBps`, driven with
 *   64 KiB host writes offered at `offeredMiBps` for `seconds`; samples its own RSS every
 *   second and prints one JSON result line. See `overloadRun` for the fields.
 *
 * Spawned by the parent with its own `process.execArgv` (tsx's loader).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { Appliance } from "../src/appliance/appliance.ts";
import { ApplianceLink } from "../src/appliance/appliance_link.ts";
import { MemoryDurableCell } from "../src/io/memory_durable_cell.ts";
import { startAppliance, startSwitch } from "../src/server/processes.ts";
import type { OnFull } from "../src/switch/splitter.ts";
import type { Connection, Listener, Transport } from "../src/io/transport.ts";
import { nodeServerRuntime } from "../targets/node/server_runtime.ts";
import { SystemClock } from "../targets/node/system_clock.ts";
import { TcpTransport } from "../targets/node/tcp_transport.ts";
import { startCpuProfile, stopCpuProfile } from "./cpu_profile.ts";
import { DiscardingSegmentStore } from "./discarding_store.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function printLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * Answers each `cpu` line on standard input with this process's CPU time so far
 * (`{"cpuUs"}`, user + system); resolves when standard input ends.
 */
async function serveStandardInput(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "cpu") {
      const usage = process.cpuUsage();
      printLine({ cpuUs: usage.user + usage.system });
    } else if (line === "profile-start") {
      await startCpuProfile();
    } else if (line.startsWith("profile-stop ")) {
      await stopCpuProfile(line.slice("profile-stop ".length));
    }
  }
}

/** The appliance and its link, as `startAppliance` assembles them, on discarding stores. */
async function runDiscardingAppliance(dataDirectory: string): Promise<void> {
  mkdirSync(dataDirectory, { recursive: true });
  const clock = new SystemClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: () => Promise.resolve({ journalStore: new DiscardingSegmentStore(), mapStore: new DiscardingSegmentStore() }),
  });
  const secret = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
  const secretFile = join(dataDirectory, "secret");
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const link = new ApplianceLink({ appliance, clock }, { secret: new TextEncoder().encode(secret) });
  const listener = await new TcpTransport().listen("127.0.0.1:0");
  const serving = link.serve(listener);
  printLine({ linkAddress: listener.address, secretFile });
  await serveStandardInput();
  await listener.close();
  await link.close();
  await serving;
  await appliance.close();
}

async function runAppliance(dataDirectory: string): Promise<void> {
  const runtime = nodeServerRuntime({ log: () => {} });
  const running = await startAppliance(runtime, {
    dataDirectory,
    listenAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
    nbdAddress: "127.0.0.1:0",
  });
  printLine({ linkAddress: running.linkAddress, secretFile: join(dataDirectory, "secret") });
  await serveStandardInput();
  await running.stop();
}

async function runSink(totalBytes: number): Promise<void> {
  const transport = new TcpTransport();
  const listener = await transport.listen("127.0.0.1:0");
  printLine({ address: listener.address });
  for await (const connection of listener) {
    let bytes = 0;
    for await (const chunk of connection) {
      bytes += chunk.length;
      if (bytes >= totalBytes) break;
    }
    await connection.send(new Uint8Array(1));
    await connection.close();
    break;
  }
  await listener.close();
}

/**
 * A connection whose sends pass at most `bytesPerMs` on average: each send waits until the
 * bytes before it would have drained at that rate. Models an appliance (or a WAN) slower than
 * the host; receiving is untouched.
 */
class ThrottledConnection implements Connection {
  readonly #inner: Connection;
  readonly #bytesPerMs: number;
  #readyAtMs = 0;

  constructor(inner: Connection, bytesPerMs: number) {
    this.#inner = inner;
    this.#bytesPerMs = bytesPerMs;
  }

  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }

  async send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const list = chunks instanceof Uint8Array ? [chunks] : chunks;
    let bytes = 0;
    for (const chunk of list) bytes += chunk.length;
    const nowMs = performance.now();
    this.#readyAtMs = Math.max(nowMs, this.#readyAtMs) + bytes / this.#bytesPerMs;
    const waitMs = this.#readyAtMs - nowMs;
    if (waitMs >= 1) await sleepMs(waitMs);
    await this.#inner.send(chunks);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#inner[Symbol.asyncIterator]();
  }
}

/** TCP whose outgoing connections are throttled; listening (NBD) is plain. */
class ThrottledTransport implements Transport {
  readonly #inner: Transport;
  readonly #bytesPerMs: number;

  constructor(inner: Transport, bytesPerMs: number) {
    this.#inner = inner;
    this.#bytesPerMs = bytesPerMs;
  }

  async connect(address: string): Promise<Connection> {
    return new ThrottledConnection(await this.#inner.connect(address), this.#bytesPerMs);
  }

  listen(address: string): Promise<Listener> {
    return this.#inner.listen(address);
  }
}

interface OverloadOptions {
  readonly applianceAddress: string;
  readonly secretFile: string;
  readonly directory: string;
  readonly onFull: OnFull;
  readonly seconds: number;
  readonly linkMiBps: number;
  readonly offeredMiBps: number;
  readonly bufferBytes: number;
  readonly primaryBytes: number;
}

async function overloadRun(options: OverloadOptions): Promise<void> {
  mkdirSync(options.directory, { recursive: true });
  const base = nodeServerRuntime({ log: () => {} });
  const runtime = { ...base, tcp: new ThrottledTransport(base.tcp, (options.linkMiBps * MiB) / 1000) };
  const running = await startSwitch(runtime, {
    stateDirectory: join(options.directory, "state"),
    applianceAddress: options.applianceAddress,
    nbdAddress: "127.0.0.1:0",
    secretFile: options.secretFile,
    volumes: [{ name: "vol", path: join(options.directory, "primary.img"), sizeBytes: options.primaryBytes }],
    bufferBytes: options.bufferBytes,
    onFull: options.onFull,
  });
  const node = running.switchNode!;
  const splitter = node.splitter("vol");
  while (node.link.state !== "streaming") await sleepMs(5);

  const lengthBytes = 64 * KiB;
  const inFlightMax = 64;
  const pool: Uint8Array[] = [];
  for (let i = 0; i < inFlightMax; i++) pool.push(new Uint8Array(lengthBytes).fill(i + 1));
  const slots = options.primaryBytes / lengthBytes;
  const tickMs = 10;
  const perTick = (options.offeredMiBps * MiB * tickMs) / 1000 / lengthBytes;
  let inFlight = 0;
  let issued = 0;
  let completed = 0;
  let refusedForQueueDepth = 0;
  let failures = 0;
  let owed = 0;
  const issue = () => {
    const data = pool.pop()!;
    const offsetBytes = ((issued * 7919) % slots) * lengthBytes;
    issued++;
    inFlight++;
    splitter.write(offsetBytes, data).then(
      () => completed++,
      () => failures++,
    ).finally(() => {
      inFlight--;
      pool.push(data);
    });
  };

  // Sampled before any host write: the copy buffer is resident (touched at start), nothing else used yet.
  const usageStart = process.memoryUsage();
  const rssStartBytes = usageStart.rss;
  const samples: number[] = [];
  const ackedStartSeq = splitter.acknowledgedSeq;
  const startedMs = performance.now();
  let nextSampleMs = startedMs + 1000;
  let markingEntries = 0;
  let wasMarking = false;
  const endMs = startedMs + options.seconds * 1000;
  let nextTickMs = startedMs;
  while (performance.now() < endMs) {
    owed += perTick;
    while (owed >= 1) {
      owed--;
      if (inFlight >= inFlightMax) refusedForQueueDepth++;
      else issue();
    }
    const marking = splitter.state === "marking";
    if (marking && !wasMarking) markingEntries++;
    wasMarking = marking;
    const nowMs = performance.now();
    if (nowMs >= nextSampleMs) {
      samples.push(process.memoryUsage().rss);
      nextSampleMs += 1000;
    }
    nextTickMs += tickMs;
    await sleepMs(Math.max(0, nextTickMs - performance.now()));
  }
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  const ackedSeqs = splitter.acknowledgedSeq - ackedStartSeq;
  const usageEnd = process.memoryUsage();
  const rssEndBytes = usageEnd.rss;
  while (inFlight > 0) await sleepMs(5);
  printLine({
    onFull: options.onFull,
    seconds: elapsedSeconds,
    rssStartBytes,
    heapTotalStartBytes: usageStart.heapTotal,
    arrayBuffersStartBytes: usageStart.arrayBuffers,
    rssSamplesBytes: samples,
    rssEndBytes,
    rssPeakBytes: Math.max(rssStartBytes, rssEndBytes, ...samples),
    heapUsedEndBytes: usageEnd.heapUsed,
    heapTotalEndBytes: usageEnd.heapTotal,
    arrayBuffersEndBytes: usageEnd.arrayBuffers,
    offeredMiBps: options.offeredMiBps,
    hostMiBps: (completed * lengthBytes) / MiB / elapsedSeconds,
    // Records acknowledged (copied writes plus gap markers, these few): the link's absorbed rate.
    linkMiBps: (ackedSeqs * lengthBytes) / MiB / elapsedSeconds,
    throttleMiBps: options.linkMiBps,
    markingEntries,
    refusedForQueueDepth,
    failures,
    state: splitter.state,
  });
  process.exit(0);
}

const mode = process.argv[2];
if (mode === "appliance") await runAppliance(process.argv[3]);
else if (mode === "appliance-discarding") await runDiscardingAppliance(process.argv[3]);
else if (mode === "sink") await runSink(Number(process.argv[3]));
else if (mode === "overload") await overloadRun(JSON.parse(process.argv[3]) as OverloadOptions);
else throw new TypeError(`Unknown mode "${mode}": choose appliance, appliance-discarding, sink or overload`);
