/**
 * Wire benchmarks through the real switch (issue: "The switch: splitter, dirty region log and
 * the CBOR wire protocol"), Node target, as the product runs: `startSwitch` in this process
 * (a `Splitter` per volume on a file primary, the `SwitchLink`, the DRL on files) and
 * `startAppliance` in a child process (`bench/wire_child.ts`: file journal, TCP link), so each
 * process holds one role and gets a core of its own, as `anytime switch` and
 * `anytime appliance` do. The host is this process calling `splitter.write` with a queue depth.
 * On a file primary a write under 256 KiB completes synchronously, so these host loops run in
 * microtasks and hold the switch's event loop until the copy buffer is full (CPU profiles on
 * 2026-12-03: 100-200 ms stretches in which the link's send loop got 1% of the samples); an
 * NBD host's requests arrive in socket reads instead, a turn of the loop each (README, bench).
 *
 * 1. 64 KiB host writes end to end (durable on the appliance) vs raw loopback TCP between two
 *    processes, 64 KiB chunks, measured in the same run (the note adds the journal's ceiling on
 *    this disk, also measured in the run: `raw_disk.ts`);
 * 2. 4 KiB host writes end to end, writes/s;
 *    1 and 2 also run with the appliance on stores that discard data and sync at once: the
 *    same processes and link with the disk out of the picture (CPU and loopback only). Each
 *    note gives the CPU time per write of both processes, which the shared machine's load
 *    changes less than the wall-clock rate, and the limit the primary sets: the same writes
 *    (same warm-up, same queue depth) into a bare primary file in the same run;
 * 3. latency `splitter.write` adds at queue depth 1 (4 KiB, async mode: the copy streams in
 *    the background) over a direct write to the same kind of primary file, p50 and p99;
 * 4. the switch's RSS under 10x overload (a link throttled to a tenth of the offered rate),
 *    with `--on-full=mark` and `--on-full=wait`, the switch alone in a child process run with
 *    V8's young generation fixed small (`--max-semi-space-size=1`, as README advises).
 *
 * The throughput runs use `onFull: "wait"`, so every write is copied and the host is paced by
 * the appliance (with "mark" a full buffer would drop copies and the figure would lie); each
 * checks that nothing was dropped. Before timing, one write per DRL region makes every bit
 * durable (steady state: the DRL persists only on a write to a clean region).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { availableParallelism } from "node:os";
import { createInterface } from "node:readline";
import { limits } from "../src/core/limits.ts";
import { writeBatchFrameBytes } from "../src/wire/write_batch.ts";
import { startAppliance, startSwitch, type RunningProcess } from "../src/server/processes.ts";
import type { OnFull, Splitter } from "../src/switch/splitter.ts";
import { FileBlockDevice, TcpTransport } from "../targets/node/mod.ts";
import { nodeServerRuntime } from "../targets/node/server_runtime.ts";
import { startCpuProfile, stopCpuProfile } from "./cpu_profile.ts";
import { diskCeilingPhrase } from "./raw_disk.ts";
import { percentile, report } from "./report.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const childPath = new URL("./wire_child.ts", import.meta.url).pathname;

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Spawns `wire_child.ts MODE ARGS` with this process's loader; resolves with its first line. */
async function spawnChild(
  args: string[],
  nodeFlags: readonly string[] = [],
): Promise<{ child: ChildProcess; first: Record<string, unknown>; lines: AsyncIterator<string> }> {
  const child = spawn(process.execPath, [...process.execArgv, ...nodeFlags, childPath, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error(`The bench child (${args[0]}) ended before reporting`);
  return { child, first: JSON.parse(first.value), lines };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** An appliance in a child process; `stop` ends its standard input and waits for it to exit. */
async function childAppliance(directory: string, stores: ApplianceStores) {
  const { child, first, lines } = await spawnChild([stores === "files" ? "appliance" : "appliance-discarding", directory]);
  return {
    linkAddress: first.linkAddress as string,
    secretFile: first.secretFile as string,
    /** The child's CPU time so far (user + system), µs. */
    /** Starts or stops (writing NAME) the child's CPU profile, with `BENCH_CPU_PROFILE_DIR`. */
    profile: (command: "start" | string) => {
      child.stdin!.write(command === "start" ? "profile-start\n" : `profile-stop ${command}\n`);
    },
    cpuUs: async () => {
      child.stdin!.write("cpu\n");
      const line = await lines.next();
      if (line.done) throw new Error("The appliance child ended before reporting its CPU time");
      return (JSON.parse(line.value) as { cpuUs: number }).cpuUs;
    },
    stop: async () => {
      child.stdin!.end();
      await exited(child);
    },
  };
}

/**
 * Raw loopback TCP from this process to a child that only counts bytes: 64 KiB chunks, the
 * same transport, `inFlight` sends outstanding (1: each awaited, as the in-process peer).
 */
export async function rawTcpAcrossProcessesBytesPerSecond(totalBytes: number, inFlight: number): Promise<number> {
  const { child, first } = await spawnChild(["sink", String(totalBytes)]);
  const client = await new TcpTransport().connect(first.address as string);
  const chunk = new Uint8Array(64 * KiB).fill(7);
  const answer = client[Symbol.asyncIterator]();
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let sent = 0; sent < totalBytes; sent += chunk.length) {
    pending.push(client.send(chunk));
    if (pending.length >= inFlight) await pending.shift();
  }
  await Promise.all(pending);
  await answer.next();
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  await exited(child);
  return totalBytes / seconds;
}

/** Where the appliance child keeps its data: files (durable), or stores that discard (CPU only). */
type ApplianceStores = "files" | "discarding";

interface SwitchUnderTest {
  readonly running: RunningProcess;
  readonly splitter: Splitter;
  readonly primaryPath: string;
  /** The appliance process's CPU time so far, µs. */
  applianceCpuUs(): Promise<number>;
  /** `"start"`, or the name to write the appliance child's CPU profile under. */
  applianceProfile(command: string): void;
  stop(): Promise<void>;
}

/** A switch in this process (one volume on a file primary) linked to an appliance child. */
async function switchWithApplianceChild(
  directory: string,
  options: { primaryBytes: number; onFull: OnFull; stores?: ApplianceStores },
): Promise<SwitchUnderTest> {
  mkdirSync(directory, { recursive: true });
  const appliance = await childAppliance(join(directory, "appliance"), options.stores ?? "files");
  const primaryPath = join(directory, "primary.img");
  const running = await startSwitch(nodeServerRuntime({ log: () => {} }), {
    stateDirectory: join(directory, "switch"),
    applianceAddress: appliance.linkAddress,
    nbdAddress: "127.0.0.1:0",
    secretFile: appliance.secretFile,
    volumes: [{ name: "vol", path: primaryPath, sizeBytes: options.primaryBytes }],
    onFull: options.onFull,
  });
  const node = running.switchNode!;
  while (node.link.state !== "streaming") await sleepMs(5);
  return {
    running,
    splitter: node.splitter("vol"),
    primaryPath,
    applianceCpuUs: appliance.cpuUs,
    applianceProfile: appliance.profile,
    stop: async () => {
      await running.stop();
      await appliance.stop();
    },
  };
}

/** Resolves once the appliance acknowledged every record the splitter gave a seq. */
async function acknowledgedAll(splitter: Splitter): Promise<void> {
  while (splitter.acknowledgedSeq < splitter.nextSeq - 1) await new Promise((resolve) => setImmediate(resolve));
}

/** The cores the two processes share (the ceiling their CPU per write sets). */
const cores = availableParallelism();

/** What {@link hostWrites} writes to: the splitter, or a bare primary. */
interface WriteTarget {
  readonly sizeBytes: number;
  write(offsetBytes: number, source: Uint8Array): Promise<void>;
}

/** `count` host writes of `lengthBytes`, `queueDepth` at a time, scattered over the primary. */
async function hostWrites(
  target: WriteTarget,
  options: { count: number; lengthBytes: number; queueDepth: number; firstIndex?: number; strideBytes?: number },
): Promise<void> {
  const slots = target.sizeBytes / (options.strideBytes ?? options.lengthBytes);
  const strideBytes = options.strideBytes ?? options.lengthBytes;
  let next = 0;
  const worker = async (workerIndex: number) => {
    const data = new Uint8Array(options.lengthBytes);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + workerIndex) & 0xff;
    for (;;) {
      const i = next++;
      if (i >= options.count) return;
      data[0] = i;
      data[1] = i >>> 8;
      const index = (options.firstIndex ?? 0) + i;
      await target.write(((index * 7919) % slots) * strideBytes, data);
    }
  };
  await Promise.all(Array.from({ length: options.queueDepth }, (_, w) => worker(w)));
}

/** One write per DRL region, so the timed writes find their bits durable. */
async function warmUp(splitter: Splitter): Promise<void> {
  await touch(splitter, splitter.regionBytes);
  await acknowledgedAll(splitter);
}

/** The warm-up's writes: one per `regionBytes`, then 20,000 scattered 4 KiB writes. */
async function touch(target: WriteTarget, regionBytes: number): Promise<void> {
  await hostWrites(target, { count: target.sizeBytes / regionBytes, lengthBytes: 4 * KiB, queueDepth: 16, strideBytes: regionBytes });
  await hostWrites(target, { count: 20_000, lengthBytes: 4 * KiB, queueDepth: 16 });
}

/**
 * The limit of an end-to-end figure: the same writes (after the same warm-up) into a bare
 * primary, a fresh sparse file of the same size as the switch's, in this process. On this VM
 * the kernel's page-cache write into new pages is most of a switch write's cost.
 */
async function primaryAloneWritesPerSecond(
  directory: string,
  options: { sizeBytes: number; regionBytes: number; count: number; lengthBytes: number; queueDepth: number },
): Promise<{ writesPerSecond: number; cpuUsPerWrite: number }> {
  const path = join(directory, "primary-alone.img");
  const device = await FileBlockDevice.open(path, { sizeBytes: options.sizeBytes, create: true });
  try {
    await touch(device, options.regionBytes);
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    await hostWrites(device, { ...options, firstIndex: 1 });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    return { writesPerSecond: options.count / seconds, cpuUsPerWrite: (cpu.user + cpu.system) / options.count };
  } finally {
    await device.close();
    rmSync(path, { force: true });
  }
}

/** End-to-end rate: host writes through the splitter until the appliance acknowledged all. */
export async function endToEndWritesPerSecond(
  root: string,
  name: string,
  options: { count: number; lengthBytes: number; queueDepth: number; stores: ApplianceStores },
): Promise<{ writesPerSecond: number; note: string }> {
  const directory = join(root, name);
  // The primary is created sparse, as `startSwitch` creates a volume given a size. (Measured on
  // this VM: overwriting a file whose blocks are all written costs ~44 µs per random 4 KiB
  // write, against ~2-3 µs into a sparse one, which would make the primary the figure.)
  const under = await switchWithApplianceChild(directory, { primaryBytes: 1024 * MiB, onFull: "wait", stores: options.stores });
  try {
    const splitter = under.splitter;
    const alone = await primaryAloneWritesPerSecond(directory, { ...options, sizeBytes: splitter.sizeBytes, regionBytes: splitter.regionBytes });
    await warmUp(splitter);
    const firstSeq = splitter.nextSeq;
    under.applianceProfile("start");
    await startCpuProfile();
    const applianceCpuStartUs = await under.applianceCpuUs();
    const switchCpuStart = process.cpuUsage();
    const countersStart = splitter.counters;
    const started = performance.now();
    await hostWrites(splitter, { ...options, firstIndex: 1 });
    const hostSeconds = (performance.now() - started) / 1000;
    await acknowledgedAll(splitter);
    const seconds = (performance.now() - started) / 1000;
    const switchCpu = process.cpuUsage(switchCpuStart);
    const countersEnd = splitter.counters;
    const heldWrites = countersEnd.bufferWaits - countersStart.bufferWaits;
    const heldSeconds = countersEnd.bufferWaitSeconds - countersStart.bufferWaitSeconds;
    const applianceCpuUs = (await under.applianceCpuUs()) - applianceCpuStartUs;
    await stopCpuProfile(`${name}-switch`);
    under.applianceProfile(`${name}-appliance`);
    const switchCpuUs = switchCpu.user + switchCpu.system;
    const copied = splitter.nextSeq - firstSeq;
    if (splitter.state !== "protecting" || splitter.needsResync || copied !== options.count) {
      throw new Error(`The run dropped copies: state ${splitter.state}, ${copied} of ${options.count} copied`);
    }
    return {
      writesPerSecond: options.count / seconds,
      note: `queue depth ${options.queueDepth}, ${options.count} writes, 1 GiB file primary, appliance in a child process` +
        `${options.stores === "files" ? "" : " on stores that discard"}; ` +
        `host side done after ${hostSeconds.toFixed(2)} s, all acknowledged after ${seconds.toFixed(2)} s; ` +
        `host writes held for copy-buffer room (acknowledgements came slower than the host wrote): ${heldWrites} of ${options.count}` +
        `${heldWrites > 0 ? `, ${(heldSeconds / heldWrites * 1000).toFixed(2)} ms each on average` : ""}; ` +
        `CPU per write: switch ${(switchCpuUs / options.count).toFixed(1)} µs, appliance ${(applianceCpuUs / options.count).toFixed(1)} µs ` +
        `(busy ${(switchCpuUs / 1e6 / seconds * 100).toFixed(0)}% / ${(applianceCpuUs / 1e6 / seconds * 100).toFixed(0)}% of a core; ` +
        `together ${((switchCpuUs + applianceCpuUs) / options.count).toFixed(1)} µs, so this machine's ${cores} cores could ` +
        `carry at most ${(cores * 1e6 / ((switchCpuUs + applianceCpuUs) / options.count)).toFixed(0)} writes/s at that cost); ` +
        `limit: the same writes into a bare primary file (fresh, sparse, same size and warm-up) ran ` +
        `${alone.writesPerSecond.toFixed(0)} writes/s, ${alone.cpuUsPerWrite.toFixed(1)} µs CPU per write`,
    };
  } finally {
    await under.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Figure 3: queue depth 1, 4 KiB, splitter vs direct, interleaved so both see the same load. */
async function addedLatency(root: string, samples: number): Promise<void> {
  const directory = join(root, "latency");
  const primaryBytes = 1024 * MiB;
  const under = await switchWithApplianceChild(directory, { primaryBytes, onFull: "mark" });
  const direct = await FileBlockDevice.open(join(directory, "direct.img"), { sizeBytes: primaryBytes, create: true });
  try {
    const splitter = under.splitter;
    await warmUp(splitter);
    const data = new Uint8Array(4 * KiB).fill(0x3c);
    const slots = primaryBytes / data.length;
    // Touch the direct file's pages as the warm-up touched the primary's.
    for (let i = 0; i < 20_000 + primaryBytes / splitter.regionBytes; i++) await direct.write(((i * 7919) % slots) * data.length, data);
    const splitterUs: number[] = [];
    const directUs: number[] = [];
    const warmUpSamples = 5_000;
    for (let i = 0; i < warmUpSamples + samples; i++) {
      const offsetBytes = ((i * 104_729) % slots) * data.length;
      const t0 = performance.now();
      await splitter.write(offsetBytes, data);
      const t1 = performance.now();
      await direct.write(offsetBytes, data);
      const t2 = performance.now();
      if (i >= warmUpSamples) {
        splitterUs.push((t1 - t0) * 1000);
        directUs.push((t2 - t1) * 1000);
      }
    }
    await acknowledgedAll(splitter);
    if (splitter.state !== "protecting") throw new Error(`The latency run left protecting mode: ${splitter.state}`);
    for (const [label, p, targetUs] of [["p50", 0.5, 20], ["p99", 0.99, 200]] as const) {
      const splitterAt = percentile(splitterUs, p);
      const directAt = percentile(directUs, p);
      report({
        name: `host write latency added by the splitter, 4 KiB, queue depth 1, async copy (${label})`,
        value: splitterAt - directAt,
        unit: "µs",
        peer: `direct FileBlockDevice.write to the same kind of file (${label})`,
        peerValue: directAt,
        ratio: splitterAt / directAt,
        target: `<= ${targetUs} µs added`,
        met: splitterAt - directAt <= targetUs,
        note: `splitter.write ${label} ${splitterAt.toFixed(1)} µs; ${samples} samples each, interleaved, after ${warmUpSamples} warm-up; ` +
          `appliance acknowledging in a child process`,
      });
    }
  } finally {
    await direct.close();
    await under.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Figure 4: the switch alone in a child, its link throttled to a tenth of the offered load. */
async function overloadRss(root: string, onFull: OnFull, seconds: number): Promise<void> {
  const directory = join(root, `overload-${onFull}`);
  const appliance = await startAppliance(nodeServerRuntime({ log: () => {} }), {
    dataDirectory: join(directory, "appliance"),
    listenAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
    nbdAddress: "127.0.0.1:0",
  });
  const bufferBytes = 64 * MiB;
  const linkMiBps = 16;
  // The switch runs as README's deployment section advises, with V8's young generation fixed
  // small: with the default one, its pages (~19 MiB here) are first touched under load.
  const switchNodeFlags = ["--max-semi-space-size=1"];
  try {
    const { child, first } = await spawnChild([
      "overload",
      JSON.stringify({
        applianceAddress: appliance.linkAddress,
        secretFile: join(directory, "appliance", "secret"),
        directory: join(directory, "switch"),
        onFull,
        seconds,
        linkMiBps,
        offeredMiBps: 10 * linkMiBps,
        bufferBytes,
        primaryBytes: 256 * MiB,
      }),
    ], switchNodeFlags);
    await exited(child);
    const result = first as {
      rssStartBytes: number; rssEndBytes: number; rssPeakBytes: number; rssSamplesBytes: number[]; heapUsedEndBytes: number;
      heapTotalEndBytes: number; arrayBuffersEndBytes: number; heapTotalStartBytes: number; arrayBuffersStartBytes: number;
      hostMiBps: number; linkMiBps: number; offeredMiBps: number; markingEntries: number; refusedForQueueDepth: number;
      failures: number; state: string; seconds: number;
    };
    const growthBytes = result.rssEndBytes - result.rssStartBytes;
    // Allocated at start for data, their pages touched only as they fill: the link's WRITE frame
    // buffer (header and body; batches' data are sent from the copy buffer). The copy buffer
    // (`bufferBytes`) is resident from the start: the switch touches its pages as it opens.
    const fixedBytes = writeBatchFrameBytes();
    const limitBytes = fixedBytes + 8 * MiB;
    const steadyFromBytes = result.rssSamplesBytes[Math.min(4, result.rssSamplesBytes.length - 1)];
    const steadyGrowthBytes = result.rssEndBytes - steadyFromBytes;
    const mib = (bytes: number) => (bytes / MiB).toFixed(1);
    const common = `switch run with node ${switchNodeFlags.join(" ")}; offered ${result.offeredMiBps} MiB/s of 64 KiB writes for ${result.seconds.toFixed(1)} s (queue depth <= 64); ` +
      `host got ${result.hostMiBps.toFixed(1)} MiB/s, link absorbed ${result.linkMiBps.toFixed(1)} MiB/s (throttled to ${linkMiBps}); ` +
      `entered marking ${result.markingEntries}x; ${result.failures} failed writes; ` +
      `RSS start ${mib(result.rssStartBytes)} MiB, peak ${mib(result.rssPeakBytes)} MiB, end ${mib(result.rssEndBytes)} MiB ` +
      `(per second: ${result.rssSamplesBytes.map((b) => (b / MiB).toFixed(0)).join(" ")}); JS heap total ${mib(result.heapTotalStartBytes)} -> ${mib(result.heapTotalEndBytes)} MiB (used at end ` +
      `${mib(result.heapUsedEndBytes)}), array buffers ${mib(result.arrayBuffersStartBytes)} -> ${mib(result.arrayBuffersEndBytes)} MiB`;
    report({
      name: `switch RSS growth under 10x overload, --on-full=${onFull} (end - start)`,
      value: growthBytes / MiB,
      unit: "MiB",
      peer: `data memory touched as it fills: link frame buffer ${(writeBatchFrameBytes() / 1024).toFixed(0)} KiB (the ${bufferBytes / MiB} MiB copy buffer is resident from start)`,
      peerValue: fixedBytes / MiB,
      ratio: growthBytes / limitBytes, // at most 1 when met
      target: "growth / (that + 8 MiB) <= 1",
      met: growthBytes <= limitBytes,
      note: common,
    });
    report({
      name: `switch RSS growth under 10x overload, --on-full=${onFull}, after the buffer filled (end - 5 s)`,
      value: steadyGrowthBytes / MiB,
      unit: "MiB",
      peer: "5% of RSS at 5 s",
      peerValue: (0.05 * steadyFromBytes) / MiB,
      ratio: steadyGrowthBytes / (0.05 * steadyFromBytes),
      target: "<= 5% of RSS at 5 s",
      met: steadyGrowthBytes <= 0.05 * steadyFromBytes,
    });
  } finally {
    await appliance.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * Runs figures 1-4; `root` is a scratch directory. `parts` picks some of them: `switch64k`
 * (with its raw TCP peer), `switch4k`, `latency`, `overload`.
 */
export async function switchFigures(root: string, parts: readonly string[]): Promise<void> {
  if (parts.includes("switch64k")) {
    // The peer: the better of each send awaited and 16 sends in flight.
    const rawTotalBytes = 2048 * MiB;
    const rawOne = await rawTcpAcrossProcessesBytesPerSecond(rawTotalBytes, 1);
    const rawSixteen = await rawTcpAcrossProcessesBytesPerSecond(rawTotalBytes, 16);
    const raw = Math.max(rawOne, rawSixteen);
    const rawHow = rawOne >= rawSixteen ? "1 send in flight won" : "16 sends in flight won";
    const disk = diskCeilingPhrase(root, 1024 * MiB);
    const lengthBytes = 64 * KiB;
    const count = 16_384; // 1 GiB
    for (const stores of ["files", "discarding"] as const) {
      const { writesPerSecond, note } = await endToEndWritesPerSecond(root, `switch64k-${stores}`, { count, lengthBytes, queueDepth: 32, stores });
      const bytesPerSecond = writesPerSecond * lengthBytes;
      report({
        name: stores === "files"
          ? "64 KiB host writes through the splitter, forwarded over loopback TCP, journaled durably (real switch)"
          : "64 KiB host writes through the splitter, forwarded over loopback TCP, appliance stores discard (CPU and loopback only)",
        value: bytesPerSecond / MiB,
        unit: "MiB/s",
        peer: `raw loopback TCP between two processes, 64 KiB chunks, same transport (best of 1 and 16 sends in flight: ${rawHow})`,
        peerValue: raw / MiB,
        ratio: bytesPerSecond / raw,
        target: "ratio >= 0.7",
        met: bytesPerSecond / raw >= 0.7,
        note: `${note}; the journal's ceiling here: ${disk.phrase}`,
      });
    }
  }
  if (parts.includes("switch4k")) {
    const count = 200_000;
    for (const stores of ["files", "discarding"] as const) {
      const { writesPerSecond, note } = await endToEndWritesPerSecond(root, `switch4k-${stores}`, { count, lengthBytes: 4 * KiB, queueDepth: 32, stores });
      report({
        name: stores === "files"
          ? "4 KiB host writes through the splitter, forwarded over loopback TCP, journaled durably (real switch)"
          : "4 KiB host writes through the splitter, forwarded over loopback TCP, appliance stores discard (CPU and loopback only)",
        value: writesPerSecond,
        unit: "writes/s",
        peer: "target",
        peerValue: 100_000,
        ratio: writesPerSecond / 100_000,
        target: ">= 100000 writes/s",
        met: writesPerSecond >= 100_000,
        note,
      });
    }
  }
  if (parts.includes("latency")) await addedLatency(root, 20_000);
  if (parts.includes("overload")) {
    const overloadSeconds = Number(process.env.BENCH_OVERLOAD_SECONDS ?? 20);
    await overloadRss(root, "mark", overloadSeconds);
    await overloadRss(root, "wait", overloadSeconds);
  }
}
