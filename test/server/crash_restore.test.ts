/**
 * Proves that a restore survives a crash by resuming (issue "Restore"), with a real process:
 * `anytime serve` protects a volume, a host writes with `qemu-io`, a snapshot is taken, the
 * host overwrites part of it, a full restore to the snapshot starts, and the process is killed
 * with SIGKILL while it copies. Started again, it resumes the restore from its checkpoint
 * before any host connects (a job says so), the primary ends equal to the snapshot's image byte
 * for byte, the restart's gap is recorded, and once the resync that follows ends the journal's
 * head equals the primary again. The same with `anytime appliance` and `anytime switch` apart:
 * the switch is killed mid-restore, resumes reading the appliance's image over the link when it
 * starts again, and the appliance's job ends `done`; and the appliance killed mid-restore: the
 * switch's reads wait for it, the restarted appliance takes the restore up as a job when the
 * switch reports it, and it ends `done`. A missing `qemu-io` or `nbdcopy` fails the test.
 */
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiJson, exportEqualsFile, killHard, startCli, stopCleanly } from "../support/cli_processes.ts";
import { freePort, runPeerOk } from "../support/peers.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

const volumeMiB = 256;

describe("a restore interrupted by SIGKILL", () => {
  let target: RuntimeTarget;
  let directory: string;
  let ports: { nbd: number; http: number; link: number; switchNbd: number; switchHttp: number };
  let token: string;

  const serveArgs = () => [
    "serve",
    "--data", `${directory}/data`,
    "--volume", `db=${directory}/db.img:${volumeMiB}MiB`,
    "--nbd", `127.0.0.1:${ports.nbd}`,
    "--http", `127.0.0.1:${ports.http}`,
  ];
  const ready = /HTTP API: http/;

  const api = (path: string, init: RequestInit = {}) => apiJson(ports.http, token, path, init);
  const imageEqualsPrimary = (at: string, volume = "db") =>
    exportEqualsFile(`nbd://127.0.0.1:${ports.nbd}/${volume}@${at}`, `${directory}/image-copy.img`, `${directory}/${volume}.img`);

  async function untilNoJobRuns(): Promise<void> {
    for (let turn = 0; turn < 600; turn++) {
      const jobs = (await api("/v1/jobs")) as { jobs: { state: string }[] };
      if (!jobs.jobs.some((j) => j.state === "running")) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error("A job kept running");
  }

  /** Two processes for volume `name`: the appliance's and the switch's arguments (own directories). */
  function twoProcesses(name: string) {
    return {
      appliance: [
        "appliance",
        "--data", `${directory}/appliance-${name}`,
        "--listen", `127.0.0.1:${ports.link}`,
        "--http", `127.0.0.1:${ports.http}`,
        "--nbd", `127.0.0.1:${ports.nbd}`,
      ],
      switch: [
        "switch",
        "--state", `${directory}/switch-${name}`,
        "--appliance", `127.0.0.1:${ports.link}`,
        "--secret-file", `${directory}/appliance-${name}/secret`,
        "--volume", `${name}=${directory}/${name}.img:${volumeMiB}MiB`,
        "--nbd", `127.0.0.1:${ports.switchNbd}`,
        "--http", `127.0.0.1:${ports.switchHttp}`,
      ],
      token: async () => (token = (await readFile(`${directory}/appliance-${name}/token`, "utf8")).trim()),
      untilLinked: async () => {
        for (let turn = 0; turn < 300; turn++) {
          const status = (await api(`/v1/volumes/${name}`).catch(() => ({ linked: false }))) as { linked: boolean };
          if (status.linked) return;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error("The switch never linked");
      },
      /** A host writes, a snapshot "good" is taken, then the host overwrites part of it. */
      history: async () => {
        const uri = `nbd://127.0.0.1:${ports.switchNbd}/${name}`;
        await runPeerOk("qemu-io", ["-f", "raw", "-c", "write -P 0x31 0 4M", uri]);
        await api(`/v1/volumes/${name}/snapshots`, { method: "POST", body: JSON.stringify({ name: "good" }) });
        await runPeerOk("qemu-io", ["-f", "raw", "-c", "write -P 0x32 1M 8M", uri]);
      },
      /** The primary equals the snapshot, then (after the resync) the journal's head equals the primary. */
      settled: async () => {
        expect(await imageEqualsPrimary("snap:good", name)).toBe(true);
        await untilNoJobRuns();
        let same = false;
        for (let turn = 0; turn < 300 && !same; turn++) {
          same = await imageEqualsPrimary("head", name);
          if (!same) await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(same).toBe(true);
      },
    };
  }

  beforeAll(async () => {
    target = await runtimeTarget();
    directory = await target.tempDir();
    ports = { nbd: await freePort(), http: await freePort(), link: await freePort(), switchNbd: await freePort(), switchHttp: await freePort() };
  });

  afterAll(async () => {
    await target.removeDir(directory);
  });

  it("resumes after the restart and ends with the primary equal to the point", async () => {
    let serve = await startCli(serveArgs(), ready);
    token = (await readFile(`${directory}/data/token`, "utf8")).trim();
    const uri = `nbd://127.0.0.1:${ports.nbd}/db`;
    await runPeerOk("qemu-io", ["-f", "raw", "-c", "write -P 0x11 0 4M", "-c", "write -P 0x12 100M 4M", uri]);
    await api("/v1/volumes/db/snapshots", { method: "POST", body: JSON.stringify({ name: "good" }) });
    await runPeerOk("qemu-io", ["-f", "raw", "-c", "write -P 0x22 1M 8M", "-c", "write -P 0x23 200M 1M", uri]);

    const job = (await api("/v1/volumes/db/restore", {
      method: "POST",
      body: JSON.stringify({ at: "snap:good", instant: false, full: true }),
    })) as { id: string; point: { seq: number } };
    await killHard(serve); // mid-copy: 256 MiB take a while
    const killedOutput = serve.output();

    serve = await startCli(serveArgs(), ready);
    const resumedJob = async () => ((await api("/v1/jobs")) as { jobs: { kind: string; state: string; point?: { seq: number } }[] })
      .jobs.find((j) => j.kind === "restore");
    let resumed = await resumedJob();
    if (/resuming the restore to seq:/.test(serve.output())) {
      // The copy had not finished: the new process resumed it (as a job) before hosts could connect.
      expect(resumed?.point?.seq).toBe(job.point.seq);
    } else {
      // The copy finished between the answer and the kill (its checkpoint was cleared first;
      // the last log line may not have been written): nothing to resume, and the data below
      // must still be the point's.
      expect(serve.output()).not.toMatch(/was under way when the switch stopped/);
      void killedOutput;
    }
    for (let turn = 0; turn < 600 && resumed !== undefined && resumed.state === "running"; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      resumed = await resumedJob();
    }
    if (resumed !== undefined) expect(resumed.state).toBe("done");
    expect(await imageEqualsPrimary("snap:good")).toBe(true);

    // The restart left a recorded gap; the resync after it brings the journal's head back to the primary.
    const status = (await api("/v1/volumes/db")) as { gaps: { reason: string }[] };
    expect(status.gaps.map((gap) => gap.reason)).toContain("switch restart");
    let same = false;
    for (let turn = 0; turn < 300 && !same; turn++) {
      const jobs = (await api("/v1/jobs")) as { jobs: { kind: string; state: string }[] };
      if (!jobs.jobs.some((j) => j.state === "running")) same = await imageEqualsPrimary("head");
      if (!same) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(same).toBe(true);
    expect(await stopCleanly(serve)).toBe("stopped cleanly");
  });

  it("with the switch in another process: the switch resumes over the link and the appliance's job ends done", async () => {
    const setup = twoProcesses("vol");
    const appliance = await startCli(setup.appliance, ready);
    await setup.token();
    let switchProcess = await startCli(setup.switch, /appliance: 127\.0\.0\.1/);
    await setup.untilLinked();
    await setup.history();
    const job = (await api("/v1/volumes/vol/restore", {
      method: "POST",
      body: JSON.stringify({ at: "snap:good", instant: true, full: true }),
    })) as { id: string };
    await killHard(switchProcess);
    switchProcess = await startCli(setup.switch, /appliance: 127\.0\.0\.1/);
    let state = "running";
    for (let turn = 0; turn < 600 && state === "running"; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = ((await api(`/v1/jobs/${job.id}`)) as { state: string }).state;
    }
    expect(state).toBe("done");
    if (/resuming the restore/.test(switchProcess.output())) expect(switchProcess.output()).toMatch(/restored to seq:/);
    await setup.settled();
    expect(await stopCleanly(switchProcess)).toBe("stopped cleanly");
    expect(await stopCleanly(appliance)).toBe("stopped cleanly");
  });

  it("with the appliance killed mid-restore: the restarted appliance follows the switch's restore as a job to its end", async () => {
    const setup = twoProcesses("third");
    let appliance = await startCli(setup.appliance, ready);
    await setup.token();
    const switchProcess = await startCli(setup.switch, /appliance: 127\.0\.0\.1/);
    await setup.untilLinked();
    await setup.history();
    await api("/v1/volumes/third/restore", { method: "POST", body: JSON.stringify({ at: "snap:good", instant: false, full: true }) });
    await killHard(appliance);
    appliance = await startCli(setup.appliance, ready);
    await setup.untilLinked();
    let job: { state: string } | undefined;
    for (let turn = 0; turn < 600 && (job === undefined || job.state === "running"); turn++) {
      const jobs = (await api("/v1/jobs")) as { jobs: { kind: string; state: string }[] };
      job = jobs.jobs.find((j) => j.kind === "restore");
      if (job === undefined && /restored to seq:/.test(switchProcess.output())) break; // it ended before the restart
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (job !== undefined) {
      expect(job.state).toBe("done");
      expect(appliance.output()).toMatch(/started before this process: following it/);
    }
    await setup.settled();
    expect(await stopCleanly(switchProcess)).toBe("stopped cleanly");
    expect(await stopCleanly(appliance)).toBe("stopped cleanly");
  });
});
