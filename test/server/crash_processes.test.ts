/**
 * Proves SPEC guarantees 2 and 3 with real processes: `anytime appliance` and `anytime switch`
 * run as two processes of the runtime under test (Node: `bin/anytime.mjs`, Deno:
 * `targets/deno/cli.ts`) joined over loopback TCP, a host writes through the switch's NBD
 * export with `qemu-io`, and each process is killed with SIGKILL and started again:
 * - appliance killed: no write it acknowledged is lost, the switch resends what it held, and
 *   once the lag is 0 the image at head equals the primary byte for byte with no gap;
 * - switch killed: every write the host saw acknowledged is on the primary, and the appliance
 *   either has them all (image at head equals the primary) or a gap is recorded — never a
 *   silent difference.
 * A missing `qemu-io` or `nbdcopy` fails the test (CI installs them).
 */
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiJson, exportEqualsFile, killHard, startCli, stopCleanly } from "../support/cli_processes.ts";
import { freePort, runPeerOk } from "../support/peers.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

const volumeBytes = 16 * 1024 * 1024;
async function run(command: string, args: readonly string[]): Promise<string> {
  return (await runPeerOk(command, args)).stdout;
}

describe("appliance and switch as processes, each killed with SIGKILL", () => {
  let target: RuntimeTarget;
  let directory: string;
  let ports: { link: number; applianceHttp: number; applianceNbd: number; switchNbd: number; switchHttp: number };
  let token: string;

  const applianceArgs = () => [
    "appliance",
    "--data", `${directory}/appliance`,
    "--listen", `127.0.0.1:${ports.link}`,
    "--http", `127.0.0.1:${ports.applianceHttp}`,
    "--nbd", `127.0.0.1:${ports.applianceNbd}`,
  ];
  const switchArgs = () => [
    "switch",
    "--state", `${directory}/switch`,
    "--appliance", `127.0.0.1:${ports.link}`,
    "--secret-file", `${directory}/appliance/secret`,
    "--volume", `db=${directory}/db.img:16MiB`,
    "--nbd", `127.0.0.1:${ports.switchNbd}`,
    "--http", `127.0.0.1:${ports.switchHttp}`,
  ];

  const api = (path: string, init: RequestInit = {}) => apiJson(ports.applianceHttp, token, path, init);

  async function headEqualsPrimary(): Promise<boolean> {
    const image = (await api("/v1/volumes/db/images", { method: "POST", body: JSON.stringify({ at: "head", writable: false }) })) as { uri: string };
    return await exportEqualsFile(image.uri, `${directory}/head-copy.img`, `${directory}/db.img`);
  }

  async function waitForLagZero(): Promise<void> {
    for (let turn = 0; turn < 300; turn++) {
      // 404 until the switch has registered the volume.
      const status = (await api("/v1/volumes/db").catch(() => ({ linked: false }))) as { linked: boolean };
      if (status.linked) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error("The switch never linked again");
  }

  async function hostWrites(pattern: number, fromBytes: number, count: number): Promise<void> {
    const commands = Array.from({ length: count }, (_, i) => ["-c", `write -P ${pattern + i} ${fromBytes + i * 65536} 64k`]).flat();
    await run("qemu-io", ["-f", "raw", ...commands, `nbd://127.0.0.1:${ports.switchNbd}/db`]);
  }

  beforeAll(async () => {
    target = await runtimeTarget();
    directory = await target.tempDir();
    ports = { link: await freePort(), applianceHttp: await freePort(), applianceNbd: await freePort(), switchNbd: await freePort(), switchHttp: await freePort() };
  });

  afterAll(async () => {
    await target.removeDir(directory);
  });

  it("loses no acknowledged write and leaves every gap recorded", async () => {
    let appliance = await startCli(applianceArgs(), /HTTP API: http/);
    token = (await readFile(`${directory}/appliance/token`, "utf8")).trim();
    let switchProcess = await startCli(switchArgs(), /appliance: 127\.0\.0\.1/);
    await hostWrites(0x10, 0, 8);
    await waitForLagZero();

    // 1. The appliance dies; the host keeps writing (the switch holds the copies).
    await killHard(appliance);
    await hostWrites(0x40, 1024 * 1024, 8);
    appliance = await startCli(applianceArgs(), /HTTP API: http/);
    await waitForLagZero();
    for (let turn = 0; turn < 100 && !(await headEqualsPrimary()); turn++) await new Promise((r) => setTimeout(r, 100));
    expect(await headEqualsPrimary()).toBe(true);
    expect(((await api("/v1/volumes/db")) as { gaps: unknown[] }).gaps).toEqual([]);

    // 2. The switch dies right after acknowledging host writes.
    await hostWrites(0x70, 2 * 1024 * 1024, 8);
    await killHard(switchProcess);
    const primary = await readFile(`${directory}/db.img`);
    for (let i = 0; i < 8; i++) {
      const at = 2 * 1024 * 1024 + i * 65536;
      expect(primary.subarray(at, at + 65536).every((b) => b === 0x70 + i)).toBe(true);
    }
    switchProcess = await startCli(switchArgs(), /appliance: 127\.0\.0\.1/);
    await waitForLagZero();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const status = (await api("/v1/volumes/db")) as { gaps: unknown[]; suspect: unknown[] };
    const same = await headEqualsPrimary();
    // Either every acknowledged write reached the journal, or the difference is a recorded gap.
    expect(same || status.gaps.length > 0).toBe(true);
    if (!same) expect(status.suspect.length).toBeGreaterThan(0);

    expect(await stopCleanly(switchProcess)).toBe("stopped cleanly");
    expect(await stopCleanly(appliance)).toBe("stopped cleanly");
  });
});
