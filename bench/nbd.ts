/**
 * NBD benchmarks (issue: "NBD: hosts write through the switch, and any point in time opens
 * as a block device"), Node target, real clients over loopback TCP. Every figure is measured
 * next to `qemu-nbd -f raw -t` serving a plain raw file on the same disk in the same run
 * (the peer runs with its defaults; nothing of it is tuned):
 *
 * (a) 1 MiB sequential writes with `nbdcopy` through the switch export with protection on
 *     (Splitter on a FileBlockDevice primary, linked in-process to an Appliance journaling
 *     on FileSegmentStores, `--on-full=wait` so no write escapes the journal), vs nbdcopy
 *     into qemu-nbd. Target ratio >= 0.8.
 *     Beside it, the same copy ending with a flush (`nbdcopy --flush`) on both servers:
 *     without it qemu-nbd's copy may still sit in the page cache when nbdcopy exits, while
 *     the journal has made every write durable.
 * (b) 4 KiB random writes, 16 in flight, `fio --ioengine=nbd --iodepth=16`, same pair.
 *     Target ratio >= 0.6.
 * (c) sequential read (`nbdcopy ... null:`) of the image at a point in the middle of the
 *     journal (`vol@seq:N`, N = head / 2) vs reading the raw file through qemu-nbd. Target
 *     ratio >= 0.7.
 * (d) time to first byte of a new image export (TCP connect + NBD_OPT_GO + the first 4 KiB
 *     READ) at random points, measured by a minimal client in this process. Target <= 100 ms.
 *
 * Each timed run starts after `sync` (`settled`), so none pays for the writeback of the one
 * before. The 1 MiB note gives the journal's ceiling on this disk (`raw_disk.ts`): the
 * journal writes every byte durably, qemu-nbd into the page cache. Both write notes say how
 * many host writes were held for copy-buffer room (`Splitter.counters`): while they are, the
 * appliance's side (its check of each batch, the journal, the disk), not the host path, is
 * what limits the figure.
 *
 * nbdcopy runs with `--connections=1 --no-extents` against both servers: one connection
 * because the switch export does not advertise multi-conn, no extents so neither side can
 * skip reading what the other must read.
 *
 * Environment: BENCH_NBD_VOLUME_BYTES (default 1 GiB), BENCH_NBD_ROUNDS (default 3),
 * BENCH_NBD_FIO_SECONDS (default 10), BENCH_NBD_ONLY (figures to run, e.g. `b,d`; default
 * all — (c) and (d) read the journal the write figures leave), BENCH_DIR (default the OS
 * temp dir), BENCH_CPU_PROFILE_DIR (unset: none; else CPU profiles of this process over each
 * write run through the switch export and each image read, `cpu_profile.ts`).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../src/appliance/appliance.ts";
import type { JournalCounters } from "../src/appliance/journal.ts";
import { ApplianceLink } from "../src/appliance/appliance_link.ts";
import { createChecksum } from "../src/core/checksum.ts";
import { MemoryTransport } from "../src/io/memory_transport.ts";
import { SeededRandom } from "../src/io/random.ts";
import type { Connection } from "../src/io/transport.ts";
import { NbdServer } from "../src/nbd/nbd_server.ts";
import {
  ByteQueue,
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
  simpleReplyHeaderBytes,
} from "../src/nbd/protocol.ts";
import { VolumeExports } from "../src/server/volume_exports.ts";
import { Splitter, type SplitterCounters } from "../src/switch/splitter.ts";
import { SwitchLink } from "../src/switch/switch_link.ts";
import { FileBlockDevice, FileDurableCell, FileSegmentStore, SystemClock, TcpTransport } from "../targets/node/mod.ts";
import { freePort } from "../test/support/peers.ts";
import { startCpuProfile, stopCpuProfile } from "./cpu_profile.ts";
import { diskCeilingPhrase } from "./raw_disk.ts";
import { diskBusyMs, median, percentile, processCpuSeconds, report, threadCpuSeconds } from "./report.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const volumeBytes = Number(process.env.BENCH_NBD_VOLUME_BYTES ?? GiB);
const rounds = Number(process.env.BENCH_NBD_ROUNDS ?? 3);
const fioSeconds = Number(process.env.BENCH_NBD_FIO_SECONDS ?? 10);
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "anytime-nbd-"));
const clock = new SystemClock();
const secret = new TextEncoder().encode("benchmark shared secret, 32 bytes");
const random = new SeededRandom(20261122);
const only = new Set((process.env.BENCH_NBD_ONLY ?? "a,b,c,d").split(",").map((figure) => figure.trim()));

// ---- helpers -----------------------------------------------------------------------------

function runTool(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 64 * MiB, timeout: 600_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else resolve(String(stdout));
    });
  });
}

/** Each round's rate of a 1-volume copy, for a note: `"212 / 480 / 502"`. */
function perRound(seconds: readonly number[]): string {
  return seconds.map((s) => (volumeBytes / MiB / s).toFixed(0)).join(" / ");
}

/** One round of the 1 MiB copy: the journal write stage's share of it, its rate, the disk's share. */
interface JournalRound {
  share: number;
  bytesPerSecond: number;
  diskShare: number | null;
}

/** How busy the journal's group writes kept it over `elapsedMs`, and their rate meanwhile. */
function journalWritingSince(start: JournalCounters, end: JournalCounters, elapsedMs: number): Omit<JournalRound, "diskShare"> {
  const writingUs = end.writeInFlightUs - start.writeInFlightUs;
  return {
    share: writingUs / (elapsedMs * 1000),
    bytesPerSecond: writingUs > 0 ? ((end.groupWriteBytes - start.groupWriteBytes) * 1e6) / writingUs : 0,
  };
}

/**
 * The note's phrase for {@link journalWritingSince} per round, with the disk's own busy share
 * (`diskBusyMs`). The journal times its writes from JavaScript, so "outstanding" includes the
 * hand-off to a pool thread and the busy event loop taking the completion: a write stage
 * outstanding ~100% of a round with the disk busy far less means the hand-off, not the
 * disk, paced it.
 */
function journalWritingPhrase(rounds: readonly JournalRound[]): string {
  const disk = rounds.every((r) => r.diskShare !== null)
    ? `; the disk itself busy ${rounds.map((r) => (r.diskShare! * 100).toFixed(0)).join(" / ")}% (io_ticks)`
    : "";
  return `a journal group write outstanding ${rounds.map((r) => (r.share * 100).toFixed(0)).join(" / ")}% of each round's time ` +
    `(nbdcopy until journaled), at ${rounds.map((r) => (r.bytesPerSecond / MiB).toFixed(0)).join(" / ")} MiB/s meanwhile${disk}`;
}

/**
 * A note's phrase on the host writes held for copy-buffer room (`--on-full=wait`), per round:
 * while they wait, the appliance's side (check, journal, disk) is what limits the host.
 */
function heldPhrase(shares: readonly number[], meanMs: readonly number[]): string {
  return `host writes held for copy-buffer room (the appliance's side the limit then): ` +
    `${shares.map((share) => `${(share * 100).toFixed(0)}%`).join(" / ")} of each round's, ` +
    `${meanMs.map((ms) => ms.toFixed(1)).join(" / ")} ms each on average`;
}

/** Per round: the share of host writes held for copy-buffer room, and their mean hold (ms). */
function holds(start: SplitterCounters, end: SplitterCounters): { share: number; meanMs: number } {
  const held = end.bufferWaits - start.bufferWaits;
  return {
    share: held / Math.max(1, end.hostWrites - start.hostWrites),
    meanMs: held === 0 ? 0 : ((end.bufferWaitSeconds - start.bufferWaitSeconds) * 1000) / held,
  };
}

async function timedSeconds(command: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  await runTool(command, args);
  return (performance.now() - started) / 1000;
}


/**
 * Waits until the kernel has written back every dirty page (`sync`), so each timed run starts
 * on a quiet disk. Without it a run pays for the one before: the kernel writes back the
 * earlier copies (up to 3 GiB of the three servers' files) during the next, throttling
 * whichever server writes then into the page cache and taking the disk from the journal.
 */
async function settled(): Promise<void> {
  await runTool("sync", []);
}

async function until(condition: () => boolean, what: string, timeoutMs = 600_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A file of non-zero bytes (so no client can treat any of it as a hole). */
function writeSourceFile(path: string, sizeBytes: number): void {
  const chunk = new Uint8Array(MiB);
  const fd = openSync(path, "w");
  for (let offsetBytes = 0; offsetBytes < sizeBytes; offsetBytes += MiB) {
    for (let i = 0; i < chunk.length; i += 4096) chunk.fill(((offsetBytes / MiB + i / 4096) % 251) + 1, i, i + 4096);
    writeSync(fd, chunk, 0, chunk.length, offsetBytes);
  }
  closeSync(fd);
}

// ---- the two servers ---------------------------------------------------------------------

/** qemu-nbd on a raw file, on loopback TCP. */
async function startQemuNbd(file: string): Promise<{ uri: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn("qemu-nbd", ["-f", "raw", "-x", "peer", "-t", "-b", "127.0.0.1", "-p", String(port), file], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const uri = `nbd://127.0.0.1:${port}/peer`;
  for (let attempt = 0; ; attempt++) {
    try {
      await runTool("nbdinfo", ["--size", uri]);
      return { uri, process: child };
    } catch (error) {
      if (attempt > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/** The product as `anytime serve` runs it: splitter + appliance in one process, NBD on TCP. */
async function startAnytime() {
  const directory = join(root, "anytime");
  const appliance = await Appliance.open({
    clock,
    registry: await FileDurableCell.open(join(root, "volumes.json")),
    storesFor: async (volume) => ({
      journalStore: await FileSegmentStore.open(join(directory, volume, "journal")),
      mapStore: await FileSegmentStore.open(join(directory, volume, "maps")),
    }),
  });
  const transport = new MemoryTransport();
  const applianceLink = new ApplianceLink({ appliance, clock }, { secret });
  const linkListener = await transport.listen("appliance");
  const linkServing = applianceLink.serve(linkListener);
  const primary = await FileBlockDevice.open(join(root, "primary.raw"), { sizeBytes: volumeBytes, create: true });
  const splitter = await Splitter.open(
    { primary, drlCell: await FileDurableCell.open(join(root, "drl.bin")), clock, checksum: await createChecksum() },
    { name: "vol", onFull: "wait" },
  );
  const link = new SwitchLink({ transport, clock, splitters: [splitter] }, { address: "appliance", secret, switchId: "bench" });
  link.start();
  await until(() => link.state === "streaming", "the link streams", 10_000);
  const exportsOf = new VolumeExports({
    appliance,
    splitters: new Map([["vol", splitter]]),
    log: (line) => {
      if (!/The connection ended/.test(line)) console.error(line);
    },
  });
  const server = new NbdServer(exportsOf);
  const listener = await new TcpTransport().listen("127.0.0.1:0");
  const serving = server.serve(listener);
  return {
    appliance,
    splitter,
    address: listener.address,
    uri: `nbd://${listener.address}`,
    /** Waits until the appliance holds every write durably; returns how long that took. */
    async journaled(): Promise<number> {
      const started = performance.now();
      await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1, "the journal caught up");
      return (performance.now() - started) / 1000;
    },
    async stop() {
      await listener.close();
      await serving;
      await server.close();
      await link.stop();
      await linkListener.close();
      await linkServing.catch(() => undefined);
      await appliance.close();
      await primary.close();
    },
  };
}

// ---- time to first byte ------------------------------------------------------------------

/** Connect, GO `name`, READ the first 4 KiB; milliseconds until the data is here. */
async function timeToFirstByteMs(transport: TcpTransport, address: string, name: string): Promise<number> {
  const started = performance.now();
  const connection: Connection = await transport.connect(address);
  const queue = new ByteQueue();
  const iterator = connection[Symbol.asyncIterator]();
  const take = async (lengthBytes: number): Promise<Uint8Array> => {
    for (;;) {
      const bytes = queue.take(lengthBytes);
      if (bytes !== undefined) return bytes;
      const next = await iterator.next();
      if (next.done) throw new Error(`The server hung up during the handshake of "${name}"`);
      queue.push(next.value);
    }
  };
  try {
    await take(greetingBytes);
    const flags = new Uint8Array(4);
    new DataView(flags.buffer).setUint32(0, nbdClientFlags.fixedNewstyle | nbdClientFlags.noZeroes);
    await connection.send([flags, encodeOption(nbdOptions.go, encodeInfoRequest(name, []))]);
    for (;;) {
      const header = await take(optionReplyHeaderBytes);
      const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
      const replyType = view.getUint32(12);
      const data = await take(view.getUint32(16));
      if (replyType === nbdOptionReplies.ack) break;
      if (replyType !== nbdOptionReplies.info) throw new Error(`GO "${name}" failed: ${new TextDecoder().decode(data)}`);
    }
    await connection.send(encodeRequest({ type: nbdCommands.read, cookie: 1n, offsetBytes: 0, lengthBytes: 4096 }));
    const reply = decodeSimpleReplyHeader(await take(simpleReplyHeaderBytes));
    if (reply.errorValue !== 0) throw new Error(`READ of "${name}" failed with ${reply.errorValue}`);
    await take(4096);
    const elapsedMs = performance.now() - started;
    await connection.send(encodeRequest({ type: nbdCommands.disconnect, cookie: 2n, offsetBytes: 0, lengthBytes: 0 }));
    return elapsedMs;
  } finally {
    await connection.close();
  }
}

// ---- the run -----------------------------------------------------------------------------

const nbdcopyArgs = ["--connections=1", "--no-extents", "--request-size=1048576"];

/**
 * A diagnostic, not a figure's peer: the same NbdServer over a FileBlockDevice with no
 * splitter and no appliance, so the notes can say how much of a write figure is the NBD
 * server and the file device, and how much is protection.
 */
async function startBareServer() {
  const device = await FileBlockDevice.open(join(root, "bare.raw"), { sizeBytes: volumeBytes, create: true });
  const server = new NbdServer({ resolveExport: () => Promise.resolve({ device, readOnly: false }), listExports: () => [] });
  const listener = await new TcpTransport().listen("127.0.0.1:0");
  const serving = server.serve(listener);
  return {
    uri: `nbd://${listener.address}/bare`,
    async stop() {
      await listener.close();
      await serving;
      await server.close();
      await device.close();
    },
  };
}

async function fioIops(uri: string): Promise<number> {
  const output = await runTool("fio", [
    "--name=randwrite",
    "--ioengine=nbd",
    `--uri=${uri}`,
    "--rw=randwrite",
    "--bs=4k",
    "--iodepth=16",
    `--size=${volumeBytes}`,
    `--runtime=${fioSeconds}`,
    "--time_based",
    "--norandommap",
    "--randrepeat=0",
    "--output-format=json",
  ]);
  return JSON.parse(output.slice(output.indexOf("{"))).jobs[0].write.iops as number;
}

async function main(): Promise<void> {
  const source = join(root, "source.raw");
  writeSourceFile(source, volumeBytes);
  const peerFile = join(root, "peer.raw");
  closeSync(openSync(peerFile, "w"));
  await runTool("truncate", ["-s", String(volumeBytes), peerFile]);
  const peer = await startQemuNbd(peerFile);
  const anytime = await startAnytime();
  const bare = await startBareServer();
  const vol = `${anytime.uri}/vol`;
  try {
    if (only.has("a")) {
      // (a) 1 MiB sequential writes; the servers take turns, the journal drains between turns.
      const oursSeconds: number[] = [];
      const peerSeconds: number[] = [];
      const bareSeconds: number[] = [];
      const catchUpSeconds: number[] = [];
      const oursCpuUsPerMiB: number[] = [];
      const mainThreadBusy: number[] = [];
      const peerCpuUsPerMiB: number[] = [];
      const journalWriting: JournalRound[] = [];
      const heldShares: number[] = [];
      const heldMeanMs: number[] = [];
      // The journal's ceiling: it writes every byte durably, qemu-nbd into the page cache.
      await settled();
      const disk = diskCeilingPhrase(root, GiB);
      for (let round = 0; round < rounds; round++) {
        await settled();
        await startCpuProfile();
        const cpuStart = process.cpuUsage();
        const countersStart = anytime.splitter.counters;
        const mainStart = threadCpuSeconds();
        const journalStart = anytime.appliance.volume("vol").journalCounters;
        const diskStartMs = diskBusyMs(root);
        const wallStart = performance.now();
        oursSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, source, vol]));
        catchUpSeconds.push(await anytime.journaled());
        const elapsedMs = performance.now() - wallStart;
        const diskEndMs = diskBusyMs(root);
        journalWriting.push({
          ...journalWritingSince(journalStart, anytime.appliance.volume("vol").journalCounters, elapsedMs),
          diskShare: diskStartMs !== null && diskEndMs !== null ? (diskEndMs - diskStartMs) / elapsedMs : null,
        });
        const held = holds(countersStart, anytime.splitter.counters);
        heldShares.push(held.share);
        heldMeanMs.push(held.meanMs);
        const cpu = process.cpuUsage(cpuStart);
        const mainEnd = threadCpuSeconds();
        if (mainStart !== null && mainEnd !== null) mainThreadBusy.push((mainEnd - mainStart) / ((performance.now() - wallStart) / 1000));
        oursCpuUsPerMiB.push((cpu.user + cpu.system) / (volumeBytes / MiB));
        await stopCpuProfile(`nbd-a-${round}`);
        await settled();
        const peerCpuStart = processCpuSeconds(peer.process.pid);
        peerSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, source, peer.uri]));
        const peerCpuEnd = processCpuSeconds(peer.process.pid);
        if (peerCpuStart !== null && peerCpuEnd !== null) peerCpuUsPerMiB.push(((peerCpuEnd - peerCpuStart) * 1e6) / (volumeBytes / MiB));
        await settled();
        bareSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, source, bare.uri]));
      }
      const ours = volumeBytes / MiB / median(oursSeconds);
      const peerValue = volumeBytes / MiB / median(peerSeconds);
      report({
        name: "1 MiB sequential writes, nbdcopy through the switch export, protection on (journaled on files)",
        value: ours,
        unit: "MiB/s",
        peer: "nbdcopy into qemu-nbd on a raw file, same disk",
        peerValue,
        ratio: ours / peerValue,
        target: "ratio >= 0.8",
        met: ours / peerValue >= 0.8,
        note: `median of ${rounds} (rounds, MiB/s: ours ${perRound(oursSeconds)}, qemu-nbd ${perRound(peerSeconds)}; ` +
          `the first writes into fresh files, whose new pages cost most on this VM); ` +
          `the journal held every write ${median(catchUpSeconds).toFixed(2)} s after nbdcopy ended; ` +
          `the journal's ceiling here: ${disk.phrase}, ${(disk.bytesPerSecond / MiB / peerValue).toFixed(2)} of qemu-nbd's rate; ` +
          `${journalWritingPhrase(journalWriting)}; ` +
          `splitter ${anytime.splitter.state}; ${heldPhrase(heldShares, heldMeanMs)}; this process's CPU (switch, appliance, NBD server, user + system, ` +
          `until journaled) ${(median(oursCpuUsPerMiB) / 1000).toFixed(2)} ms per MiB` +
          (peerCpuUsPerMiB.length > 0 ? ` (qemu-nbd's process: ${(median(peerCpuUsPerMiB) / 1000).toFixed(2)} ms per MiB)` : "") +
          (mainThreadBusy.length > 0
            ? `, its main thread (NBD server, splitter, link, appliance, journal) busy ` +
              `${(median(mainThreadBusy) * 100).toFixed(0)}% of a core (rounds: ${mainThreadBusy.map((b) => (b * 100).toFixed(0)).join(" / ")}%)`
            : "") +
          `; diagnostic: the bare NbdServer on a ` +
          `FileBlockDevice (no protection) ${(volumeBytes / MiB / median(bareSeconds)).toFixed(1)} MiB/s`,
      });

      // The same copy made durable: each ends with a flush (qemu-nbd's raw file is then on
      // disk too, as the journal is throughout). A variant, reported beside the figure above.
      const oursFlushSeconds: number[] = [];
      const peerFlushSeconds: number[] = [];
      for (let round = 0; round < rounds; round++) {
        await settled();
        oursFlushSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, "--flush", source, vol]));
        await anytime.journaled();
        await settled();
        peerFlushSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, "--flush", source, peer.uri]));
      }
      const oursFlush = volumeBytes / MiB / median(oursFlushSeconds);
      const peerFlush = volumeBytes / MiB / median(peerFlushSeconds);
      report({
        name: "1 MiB sequential writes as above, each copy ending with a flush (nbdcopy --flush), protection on",
        value: oursFlush,
        unit: "MiB/s",
        peer: "nbdcopy --flush into qemu-nbd on a raw file, same disk",
        peerValue: peerFlush,
        ratio: oursFlush / peerFlush,
        target: "ratio >= 0.8 (the same target, durable variant)",
        met: oursFlush / peerFlush >= 0.8,
        note: `median of ${rounds} (rounds, MiB/s: ours ${perRound(oursFlushSeconds)}, qemu-nbd ${perRound(peerFlushSeconds)})`,
      });
    }

    let seqAfterFirstFio = 0;
    if (only.has("b")) {
      // (b) 4 KiB random writes, 16 in flight.
      const oursIops: number[] = [];
      const peerIops: number[] = [];
      const bareIops: number[] = [];
      const catchUpSeconds: number[] = [];
      const oursCpuUsPerWrite: number[] = [];
      const oursMainUsPerWrite: number[] = [];
      const heldShares: number[] = [];
      const heldMeanMs: number[] = [];
      const writesPerGroupWrite: number[] = [];
      const writesPerSync: number[] = [];
      for (let round = 0; round < Math.max(2, rounds - 1); round++) {
        await settled();
        await startCpuProfile();
        const cpuStart = process.cpuUsage();
        const mainStart = threadCpuSeconds();
        const countersStart = anytime.splitter.counters;
        const seqStart = anytime.splitter.nextSeq;
        const journalStart = anytime.appliance.volume("vol").journalCounters;
        oursIops.push(await fioIops(vol));
        catchUpSeconds.push(await anytime.journaled());
        const journalEnd = anytime.appliance.volume("vol").journalCounters;
        const writes = Math.max(1, anytime.splitter.nextSeq - seqStart);
        writesPerGroupWrite.push(writes / Math.max(1, journalEnd.groupWrites - journalStart.groupWrites));
        writesPerSync.push(writes / Math.max(1, journalEnd.syncs - journalStart.syncs));
        const held = holds(countersStart, anytime.splitter.counters);
        heldShares.push(held.share);
        heldMeanMs.push(held.meanMs);
        const cpu = process.cpuUsage(cpuStart);
        const mainEnd = threadCpuSeconds();
        oursCpuUsPerWrite.push((cpu.user + cpu.system) / writes);
        if (mainStart !== null && mainEnd !== null) oursMainUsPerWrite.push(((mainEnd - mainStart) * 1e6) / writes);
        await stopCpuProfile(`nbd-b-${round}`);
        if (round === 0) seqAfterFirstFio = anytime.splitter.nextSeq - 1;
        await settled();
        peerIops.push(await fioIops(peer.uri));
        await settled();
        bareIops.push(await fioIops(bare.uri));
      }
      const ours = median(oursIops);
      const peerValue = median(peerIops);
      report({
        name: "4 KiB random writes, 16 in flight, fio --ioengine=nbd through the switch export, protection on",
        value: ours,
        unit: "writes/s",
        peer: "the same fio against qemu-nbd on a raw file, same disk",
        peerValue,
        ratio: ours / peerValue,
        target: "ratio >= 0.6",
        met: ours / peerValue >= 0.6,
        note: `median of ${oursIops.length} runs of ${fioSeconds} s; the journal caught up ${median(catchUpSeconds).toFixed(2)} s ` +
          `after fio ended; host writes per journal group write ${writesPerGroupWrite.map((n) => n.toFixed(1)).join(" / ")}, ` +
          `per journal sync ${writesPerSync.map((n) => n.toFixed(1)).join(" / ")}; ${heldPhrase(heldShares, heldMeanMs)}; this process's CPU (switch, appliance, NBD server, user + system) ` +
          `${median(oursCpuUsPerWrite).toFixed(1)} µs per write` +
          (oursMainUsPerWrite.length > 0 ? `, ${median(oursMainUsPerWrite).toFixed(1)} of them on its main thread` : "") +
          `; diagnostic: the bare NbdServer on a FileBlockDevice ` +
          `${median(bareIops).toFixed(0)} writes/s`,
      });
    }

    const volume = anytime.appliance.volume("vol");
    if (only.has("c")) {
      // (c) sequential read of the image at the middle of the journal.
      const middleSeq = Math.floor(volume.head.seq / 2);
      const image = volume.openImage(`seq:${middleSeq}`);
      const layers = image.layerCount;
      await image.close();
      const imageSeconds: number[] = [];
      const rawSeconds: number[] = [];
      for (let round = 0; round < rounds; round++) {
        await startCpuProfile();
        imageSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, `${vol}@seq:${middleSeq}`, "null:"]));
        await stopCpuProfile(`nbd-c-${round}`);
        rawSeconds.push(await timedSeconds("nbdcopy", [...nbdcopyArgs, peer.uri, "null:"]));
      }
      const ours = volumeBytes / MiB / median(imageSeconds);
      const peerValue = volumeBytes / MiB / median(rawSeconds);
      report({
        name: `sequential read (nbdcopy to null:) of the image vol@seq:${middleSeq}, the middle of a journal of ${volume.head.seq} records`,
        value: ours,
        unit: "MiB/s",
        peer: "nbdcopy of the raw file through qemu-nbd to null:",
        peerValue,
        ratio: ours / peerValue,
        target: "ratio >= 0.7",
        met: ours / peerValue >= 0.7,
        note: `median of ${rounds}; the image reads ${layers} maps; fio's first run ended at seq ${seqAfterFirstFio}`,
      });
    }

    if (only.has("d")) {
      // (d) time to first byte of a new image export at random points.
      const transport = new TcpTransport();
      const peerAddress = peer.uri.slice("nbd://".length, peer.uri.lastIndexOf("/"));
      const oursMs: number[] = [];
      const peerMs: number[] = [];
      for (let sample = 0; sample < 50; sample++) {
        const seq = Math.floor((random.nextUint32() / 2 ** 32) * (volume.head.seq + 1));
        oursMs.push(await timeToFirstByteMs(transport, anytime.address, `vol@seq:${seq}`));
        peerMs.push(await timeToFirstByteMs(transport, peerAddress, "peer"));
      }
      const ours = median(oursMs);
      report({
        name: "time to first byte of a new image export (connect + NBD_OPT_GO + first 4 KiB READ), random points",
        value: ours,
        unit: "ms",
        peer: "target",
        peerValue: 100,
        ratio: ours / 100,
        target: "<= 100 ms",
        met: ours <= 100,
        note: `median of ${oursMs.length}, p99 ${percentile(oursMs, 0.99).toFixed(2)} ms; the same client against qemu-nbd ` +
          `on the raw file: median ${median(peerMs).toFixed(2)} ms`,
      });
    }
  } finally {
    await bare.stop();
    await anytime.stop();
    peer.process.kill("SIGTERM");
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
