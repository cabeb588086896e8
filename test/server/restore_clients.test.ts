/**
 * Proves instant restore with real NBD clients on `anytime serve` (real files and sockets on
 * the runtime under test): `qemu-io` writes patterns through the switch export, a snapshot is
 * taken over HTTP, more writes damage the volume, and an instant restore starts; while it runs,
 * `qemu-io` reads the restored pattern back through the switch export and writes on top of
 * it; when the job is done, `nbdcopy` copies the volume out and it equals the snapshot image
 * with the host's later write on top. A missing client fails the test (CI installs them).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServe, type RunningProcess } from "../../src/server/processes.ts";
import { runPeerOk } from "../support/peers.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

const MiB = 1024 * 1024;

async function run(command: string, args: readonly string[]): Promise<string> {
  return (await runPeerOk(command, args)).stdout;
}

let target: RuntimeTarget;
let directory: string;
let running: RunningProcess;

beforeAll(async () => {
  target = await runtimeTarget();
  directory = await target.tempDir();
  running = await startServe(target.createServerRuntime({ log: () => {} }), {
    dataDirectory: `${directory}/data`,
    volumes: [{ name: "db", path: `${directory}/db.img`, sizeBytes: 64 * MiB }],
    nbdAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
  });
});

afterAll(async () => {
  await running.stop();
  await target.removeDir(directory);
});

it("serves restored data and takes host writes through the switch export during an instant restore", async () => {
  const uri = `nbd://${running.nbdAddress}/db`;
  const writes = Array.from({ length: 32 }, (_, i) => ["-c", `write -P ${0x10 + i} ${i * 2}M 1M`]).flat();
  await run("qemu-io", ["-f", "raw", ...writes, uri]);
  await running.controlPlane.createSnapshot("db", "good");
  const damage = Array.from({ length: 32 }, (_, i) => ["-c", `write -P 0xee ${i * 2}M 1M`]).flat();
  await run("qemu-io", ["-f", "raw", ...damage, uri]);
  await running.switchNode!.waitAcknowledged("db", running.switchNode!.splitter("db").nextSeq - 1);

  const job = await running.controlPlane.restore("db", { at: "snap:good", instant: true });
  // While the job runs: the host reads restored data and writes on top of it.
  const during = await run("qemu-io", ["-f", "raw", "-c", "read -P 0x2f 62M 1M", "-c", "write -P 0x77 60M 64k", "-c", "read -P 0x77 60M 64k", uri]);
  expect(during).not.toMatch(/Pattern verification failed/);
  for (let turn = 0; turn < 1000 && running.controlPlane.job(job.id).state === "running"; turn++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(running.controlPlane.job(job.id)).toMatchObject({ state: "done", progress: 1, bytesMoved: 32 * MiB });

  // The volume is the snapshot plus the host's write during the restore.
  const check = await run("qemu-io", ["-f", "raw", "-r", "-c", "read -P 0x10 0 1M", "-c", "read -P 0x77 60M 64k", "-c", "read -P 0x2e 61504k 64k", uri]);
  expect(check).not.toMatch(/Pattern verification failed/);
  await run("nbdcopy", [uri, `${directory}/after.img`]);
  await run("nbdcopy", [`nbd://${running.nbdAddress}/db@snap:good`, `${directory}/good.img`]);
  await run("qemu-io", ["-f", "raw", "-c", "write -P 0x77 60M 64k", `${directory}/good.img`]);
  await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", `${directory}/after.img`, `${directory}/good.img`]);
});
