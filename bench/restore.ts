/**
 * Restore benchmarks (issue "Restore"), Node target, `anytime serve` assembled in this process
 * on real files (BENCH_DIR or the temp directory), volume of RESTORE_GIB GiB (default 4):
 * 1. full restore (`full`: every byte from the journal's image onto the primary) vs `nbdcopy`
 *    copying a raw file of the same size to the same disk, in the same run;
 * 2. incremental restore after changing 1% of the volume: the bytes it moves, as a share of
 *    the volume;
 * 3. instant restore: time from asking for the job to the host's first successful read of a
 *    region the background copy has not reached (it is fetched on demand).
 * Both copies read from the disk, not the page cache: the journal writes its large groups
 * around the page cache (`file_segment_store.ts`, direct writes), so the raw file is written
 * the same way (`dd oflag=direct`); a restore reads a journal written long before, and a copy
 * reads a backup, which are not cached either. Both write through the page cache and flush
 * at the end; each starts from a quiet disk (`sync` first:
 * the fill leaves gigabytes of dirty pages whose writeback would otherwise slow whichever
 * copy runs first).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServe } from "../src/server/processes.ts";
import { nodeServerRuntime } from "../targets/node/server_runtime.ts";
import { report } from "./report.ts";

const MiB = 1024 * 1024;
const volumeBytes = Number(process.env.RESTORE_GIB ?? 4) * 1024 * MiB;
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "anytime-restore-"));

async function waitForJob(running: Awaited<ReturnType<typeof startServe>>, id: string) {
  for (;;) {
    const job = running.controlPlane.job(id);
    if (job.state !== "running") return job;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

try {
  const runtime = nodeServerRuntime({ log: () => {} });
  const running = await startServe(runtime, {
    dataDirectory: join(root, "data"),
    volumes: [{ name: "vol", path: join(root, "vol.img"), sizeBytes: volumeBytes }],
    nbdAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
    onFull: "wait",
  });
  const switchNode = running.switchNode!;
  const splitter = switchNode.splitter("vol");

  // Fill the volume through the splitter (1 MiB writes, 16 in flight), then snapshot.
  const chunk = new Uint8Array(MiB);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131) & 0xff;
  let next = 0;
  const writer = async () => {
    while (next < volumeBytes) {
      const offsetBytes = next;
      next += MiB;
      await splitter.write(offsetBytes, chunk);
    }
  };
  await Promise.all(Array.from({ length: 16 }, writer));
  await switchNode.waitAcknowledged("vol", splitter.nextSeq - 1);
  await running.controlPlane.createSnapshot("vol", "filled");

  // 1. Full restore vs nbdcopy of a raw file of the same size, each from a quiet disk.
  execFileSync("sync");
  let started = performance.now();
  const full = await running.controlPlane.restore("vol", { at: "snap:filled", instant: false, full: true });
  const fullJob = await waitForJob(running, full.id);
  const fullSeconds = (performance.now() - started) / 1000;
  if (fullJob.state !== "done") throw new Error(`Full restore ended ${fullJob.state}: ${fullJob.error?.message}`);
  const restoreRate = fullJob.bytesMoved / fullSeconds / MiB;

  const raw = join(root, "raw.img");
  execFileSync("dd", [`if=${join(root, "vol.img")}`, `of=${raw}`, "bs=4M", "status=none", "oflag=direct", "conv=fsync"]);
  execFileSync("sync");
  started = performance.now();
  execFileSync("/usr/bin/nbdcopy", ["--flush", raw, join(root, "raw-copy.img")]);
  const nbdcopySeconds = (performance.now() - started) / 1000;
  const nbdcopyRate = volumeBytes / nbdcopySeconds / MiB;
  rmSync(raw);
  rmSync(join(root, "raw-copy.img"));
  report({
    name: `full restore of a ${volumeBytes / 1024 / MiB} GiB volume (journal image → primary)`,
    value: restoreRate,
    unit: "MiB/s",
    peer: `nbdcopy of a raw ${volumeBytes / 1024 / MiB} GiB file to a file on the same disk`,
    peerValue: nbdcopyRate,
    ratio: restoreRate / nbdcopyRate,
    target: "ratio >= 0.8",
    met: restoreRate / nbdcopyRate >= 0.8,
    note: `${(fullSeconds).toFixed(1)} s vs ${nbdcopySeconds.toFixed(1)} s`,
  });

  // 2. Change 1% of the volume (random 64 KiB writes), restore to before: what moves.
  await running.controlPlane.createSnapshot("vol", "before-change");
  const changeBytes = volumeBytes / 100;
  const piece = new Uint8Array(64 * 1024).fill(0x5a);
  const regions = volumeBytes / piece.length;
  let seed = 12345;
  for (let done = 0; done < changeBytes; done += piece.length) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    await splitter.write((seed % regions) * piece.length, piece);
  }
  await switchNode.waitAcknowledged("vol", splitter.nextSeq - 1);
  const incremental = await running.controlPlane.restore("vol", { at: "snap:before-change", instant: false });
  const incrementalJob = await waitForJob(running, incremental.id);
  const share = incrementalJob.bytesMoved / volumeBytes;
  report({
    name: "incremental restore after changing 1% of the volume: bytes moved",
    value: share * 100,
    unit: "% of the volume",
    peer: "bytes written since the point (random 64 KiB writes, some overlap)",
    peerValue: (changeBytes / volumeBytes) * 100,
    ratio: null,
    target: "<= 1.5%",
    met: share <= 0.015 && incrementalJob.state === "done",
  });

  // 3. Instant restore: the host keeps reading a region the background copy reaches last,
  // from the moment the restore is asked for (hosts do not wait for the API's answer); the
  // figure is the time until a read returns the point's bytes.
  await splitter.write(volumeBytes - MiB, piece.subarray(0, 4096)); // something to restore at the end
  await switchNode.waitAcknowledged("vol", splitter.nextSeq - 1);
  execFileSync("sync");
  const readTarget = new Uint8Array(4096);
  const expectedByte = chunk[(volumeBytes - MiB) % MiB];
  started = performance.now();
  const asked = running.controlPlane.restore("vol", { at: "snap:filled", instant: true, full: true });
  let firstReadMs = Infinity;
  for (;;) {
    await splitter.read(volumeBytes - MiB, readTarget);
    if (readTarget[0] === expectedByte) {
      firstReadMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const instant = await asked;
  const instantJob = await waitForJob(running, instant.id);
  report({
    name: "instant restore: job start to the host's first successful read (a region not yet restored)",
    value: firstReadMs,
    unit: "ms",
    peer: "none (the copy of the whole volume takes seconds)",
    peerValue: null,
    ratio: null,
    target: "<= 100 ms",
    met: firstReadMs <= 100 && instantJob.state === "done",
  });
  await running.stop();
} finally {
  rmSync(root, { recursive: true, force: true });
}
