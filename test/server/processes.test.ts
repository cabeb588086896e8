/**
 * Proves the processes on the runtime running the tests (Node or Deno), on real files and
 * loopback sockets: `serve` journals what a host writes through its NBD-facing splitter and
 * answers the CLI (run in-process with the runtime's fetch) over real HTTP — status, snapshot,
 * image URI on stdout only, diff, `--json` parsed back — and refuses a wrong token (exit 1), an
 * unknown volume (exit 1) and a malformed POINT (exit 1) and usage errors (exit 2); a clean stop
 * keeps everything and the restart records no gap; the initial full copy journals a primary's
 * existing content; and `appliance` + `switch` as two parts joined over TCP protect a volume,
 * with snapshots taken on either side landing in the switch's write stream (the appliance's
 * control plane, and its HTTP API through the CLI, ask the switch for the marker; so does a
 * removal) and opening as `snap:NAME` with the data written before them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.ts";
import type { CliDeps } from "../../src/cli/cli_deps.ts";
import { parseVolumeArgument } from "../../src/server/process_commands.ts";
import { type RunningProcess, type ServerRuntime, startAppliance, startServe, startSwitch } from "../../src/server/processes.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

const volumeBytes = 8 * 1024 * 1024;

function cliFor(running: RunningProcess, tokenFile: string, output: { out: string; err: string }): CliDeps {
  return {
    fetch: (input, init) => fetch(input, init),
    env: { ANYTIME_API: `http://${running.httpAddress}`, ANYTIME_TOKEN_FILE: tokenFile },
    readTextFile: async (path) => new TextDecoder().decode(await readFileText(path)),
    stdout: (text) => void (output.out += text),
    stderr: (text) => void (output.err += text),
    isTty: false,
    timeZone: "UTC",
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    nowMs: () => Date.now(),
  };
}

let target: RuntimeTarget;
let runtime: ServerRuntime;
const logs: string[] = [];
let readFileText: (path: string) => Promise<Uint8Array>;

beforeAll(async () => {
  target = await runtimeTarget();
  runtime = target.createServerRuntime({ log: (line) => logs.push(line) });
  readFileText = async (path) => {
    const bytes = await runtime.fileSystem.readFileOrNull(path);
    if (bytes === null) throw new Error(`No file at ${path}`);
    return bytes;
  };
});

describe("anytime serve", () => {
  let directory: string;
  beforeAll(async () => {
    directory = await target.tempDir();
  });
  afterAll(async () => {
    await target.removeDir(directory);
  });

  it("protects a volume, answers the CLI over HTTP, and restarts cleanly after a clean stop", async () => {
    const data = `${directory}/data`;
    const options = {
      dataDirectory: data,
      volumes: [{ name: "db", path: `${directory}/db.img`, sizeBytes: volumeBytes }],
      nbdAddress: "127.0.0.1:0",
      httpAddress: "127.0.0.1:0",
    };
    let running = await startServe(runtime, options);
    const tokenFile = `${data}/token`;
    const token = new TextDecoder().decode((await runtime.fileSystem.readFileOrNull(tokenFile))!).trim();
    expect(running.banner.join("\n")).toContain(`(token created now in ${tokenFile}: ${token} (printed this once))`);
    const splitter = running.switchNode!.splitter("db");
    await splitter.write(0, new Uint8Array(65536).fill(0x41));
    await running.switchNode!.waitAcknowledged("db", 1);

    const output = { out: "", err: "" };
    const cli = async (...argv: string[]) => {
      output.out = "";
      output.err = "";
      return await runCli(argv, cliFor(running, tokenFile, output));
    };
    expect(await cli("snapshot", "db", "first")).toBe(0);
    await splitter.write(0, new Uint8Array(65536).fill(0x42));
    await running.switchNode!.waitAcknowledged("db", 3);

    expect(await cli("status", "db", "--json")).toBe(0);
    const status = JSON.parse(output.out);
    expect(status).toMatchObject({ name: "db", size: volumeBytes, state: "protecting", lagSeconds: 0, head: { seq: 3 } });

    expect(await cli("image", "db", "--at", "snap:first")).toBe(0);
    expect(output.out.trim()).toBe(`nbd://${running.nbdAddress}/db@seq:2`);

    expect(await cli("diff", "db", "--from", "snap:first", "--to", "head", "--json")).toBe(0);
    expect(JSON.parse(output.out).extents).toEqual([{ offset: 0, length: 65536 }]);

    expect(await cli("volumes", "--json")).toBe(0);
    expect(JSON.stringify(JSON.parse(output.out))).toContain('"name":"db"');

    expect(await runCli(["volumes"], { ...cliFor(running, tokenFile, output), env: { ANYTIME_API: `http://${running.httpAddress}`, ANYTIME_TOKEN: "not-the-token-at-all" } })).toBe(1);
    expect(await cli("status", "nope")).toBe(1);
    expect(output.err).toMatch(/not protected here/);
    expect(await cli("image", "db", "--at", "seq:x")).toBe(1);
    expect(output.err).toMatch(/seq:x/);
    expect(await cli("image", "db")).toBe(2);
    expect(await cli("frobnicate")).toBe(2);

    await running.stop();
    running = await startServe(runtime, options);
    expect(running.banner.join("\n")).toContain(`(token in ${tokenFile})`); // printed once: not again
    expect(running.banner.join("\n")).not.toContain(token);
    const volume = running.appliance!.volume("db");
    expect(volume.head.seq).toBe(3);
    expect(volume.gaps()).toEqual([]); // a clean stop settled the DRL: no "switch restart" gap
    const bytes = new Uint8Array(512);
    await volume.openImage("snap:first").read(0, bytes);
    expect(bytes.every((b) => b === 0x41)).toBe(true);
    await running.stop();
  });

  it("journals the existing content of a primary as the initial full copy", async () => {
    const path = `${directory}/existing.img`;
    const device = await target.FileBlockDevice.open(path, { sizeBytes: volumeBytes, create: true });
    await device.write(4096, new Uint8Array(4096).fill(7));
    await device.close();
    const running = await startServe(runtime, {
      dataDirectory: `${directory}/data2`,
      volumes: [{ name: "old", path }],
      nbdAddress: "127.0.0.1:0",
      httpAddress: "127.0.0.1:0",
    });
    const bytes = new Uint8Array(4096);
    await running.appliance!.volume("old").openImage("seq:0").read(4096, bytes);
    expect(bytes.every((b) => b === 7)).toBe(true);
    await running.stop();
  });

  it("refuses bad volume arguments clearly", async () => {
    expect(parseVolumeArgument("db=/srv/db.img:1GiB")).toEqual({ name: "db", path: "/srv/db.img", sizeBytes: 2 ** 30 });
    expect(parseVolumeArgument("db=/srv/a:b.img")).toEqual({ name: "db", path: "/srv/a:b.img" });
    expect(() => parseVolumeArgument("db")).toThrow(/NAME=PATH/);
    await expect(startServe(runtime, {
      dataDirectory: `${directory}/data3`,
      volumes: [{ name: "new", path: `${directory}/missing.img` }],
      nbdAddress: "127.0.0.1:0",
      httpAddress: "127.0.0.1:0",
    })).rejects.toThrow(/give its size/);
  });
});

describe("anytime appliance + anytime switch over TCP", () => {
  it("protect a volume as two parts that find each other by address and secret", async () => {
    const directory = await target.tempDir();
    try {
      const appliance = await startAppliance(runtime, {
        dataDirectory: `${directory}/appliance`,
        listenAddress: "127.0.0.1:0",
        httpAddress: "127.0.0.1:0",
        nbdAddress: "127.0.0.1:0",
      });
      const switchProcess = await startSwitch(runtime, {
        stateDirectory: `${directory}/switch`,
        applianceAddress: appliance.linkAddress!,
        secretFile: `${directory}/appliance/secret`,
        volumes: [{ name: "db", path: `${directory}/db.img`, sizeBytes: volumeBytes }],
        nbdAddress: "127.0.0.1:0",
        httpAddress: "127.0.0.1:0",
      });
      const splitter = switchProcess.switchNode!.splitter("db");
      await splitter.write(8192, new Uint8Array(4096).fill(9));
      await switchProcess.switchNode!.waitAcknowledged("db", 1);
      const snapshot = await switchProcess.controlPlane.createSnapshot("db", "two-process");
      const volume = appliance.appliance!.volume("db");
      for (let turn = 0; turn < 200 && volume.head.seq < snapshot.seq; turn++) await runtime.clock.sleep(5);
      expect(appliance.controlPlane.snapshots("db").map((s) => s.name)).toEqual(["two-process"]);
      expect(appliance.controlPlane.volume("db")).toMatchObject({ state: "protecting", linked: true, head: { seq: 2 } });
      const bytes = new Uint8Array(4096);
      await volume.openImage("snap:two-process").read(8192, bytes);
      expect(bytes.every((b) => b === 9)).toBe(true);

      // The appliance's API takes a snapshot while the switch streams: the switch gives it a seq.
      await splitter.write(8192, new Uint8Array(4096).fill(10));
      await switchProcess.switchNode!.waitAcknowledged("db", 3);
      const fromAppliance = await appliance.controlPlane.createSnapshot("db", "from-appliance");
      expect(fromAppliance.seq).toBe(4);
      await splitter.write(8192, new Uint8Array(4096).fill(11)); // after the marker
      await switchProcess.switchNode!.waitAcknowledged("db", 5);
      for (let turn = 0; turn < 200 && volume.head.seq < 5; turn++) await runtime.clock.sleep(5);
      expect(appliance.controlPlane.snapshots("db").map((s) => [s.name, s.seq])).toEqual([["two-process", 2], ["from-appliance", 4]]);
      await volume.openImage("snap:from-appliance").read(8192, bytes);
      expect(bytes.every((b) => b === 10)).toBe(true);
      await volume.openImage("head").read(8192, bytes);
      expect(bytes.every((b) => b === 11)).toBe(true);

      // ... over HTTP too (the CLI against the appliance's API), and removes one, again in the stream.
      const output = { out: "", err: "" };
      const code = await runCli(["snapshot", "db", "over-http", "--json"], cliFor(appliance, `${directory}/appliance/token`, output));
      expect(output.err).toBe("");
      expect(code).toBe(0);
      expect(JSON.parse(output.out)).toMatchObject({ name: "over-http", seq: 6 });
      await appliance.controlPlane.removeSnapshot("db", "two-process");
      expect(appliance.controlPlane.snapshots("db").map((s) => s.name)).toEqual(["from-appliance", "over-http"]);
      expect(volume.markers({ fromSeq: 6 }).map((m) => [m.seq, m.kind])).toEqual([[6, "snapshot"], [7, "snapshotRemoved"]]);
      await switchProcess.stop();
      await appliance.stop();
    } finally {
      await target.removeDir(directory);
    }
  });

  it("journals an existing primary whole at the switch's first start (the initial copy), compares before moving after it, and copies not again after a restart", async () => {
    const directory = await target.tempDir();
    try {
      const path = `${directory}/existing.img`;
      const device = await target.FileBlockDevice.open(path, { sizeBytes: volumeBytes, create: true });
      const content = new Uint8Array(volumeBytes);
      for (let i = 0; i < content.length; i += 4096) content.fill((i / 4096) % 251 + 1, i, i + 4096);
      await device.write(0, content);
      await device.close();
      const appliance = await startAppliance(runtime, {
        dataDirectory: `${directory}/appliance`,
        listenAddress: "127.0.0.1:0",
        httpAddress: "127.0.0.1:0",
        nbdAddress: "127.0.0.1:0",
      });
      const switchOptions = {
        stateDirectory: `${directory}/switch`,
        applianceAddress: appliance.linkAddress!,
        secretFile: `${directory}/appliance/secret`,
        volumes: [{ name: "old", path }],
        nbdAddress: "127.0.0.1:0",
      };
      let switchProcess = await startSwitch(runtime, switchOptions);
      const splitter = () => switchProcess.switchNode!.splitter("old");
      for (let turn = 0; turn < 1000 && (splitter().needsResync || splitter().resyncing); turn++) await runtime.clock.sleep(10);
      expect(splitter().needsResync).toBe(false);
      const volume = appliance.appliance!.volume("old");
      for (let turn = 0; turn < 200 && volume.head.seq < splitter().acknowledgedSeq; turn++) await runtime.clock.sleep(5);
      const image = new Uint8Array(volumeBytes);
      await volume.openImage("head").read(0, image);
      expect(image.every((byte, i) => byte === content[i])).toBe(true); // (toEqual on 8 MiB takes a minute)
      expect(volume.gaps().map((gap) => gap.reason)).toEqual(["initial copy"]);
      expect(volume.suspectIntervals().every((interval) => interval.to !== undefined)).toBe(true); // closed by the copy's end

      // A re-baseline now compares every piece over the link (HASH_REQUEST) and moves nothing.
      const job = await switchProcess.controlPlane.resync("old", { full: true });
      for (let turn = 0; turn < 1000 && switchProcess.controlPlane.job(job.id).state === "running"; turn++) await runtime.clock.sleep(10);
      expect(switchProcess.controlPlane.job(job.id)).toMatchObject({ state: "done", bytesMoved: 0 });
      for (let turn = 0; turn < 200 && volume.head.seq < splitter().acknowledgedSeq; turn++) await runtime.clock.sleep(5);
      const ends = volume.markers().filter((m) => m.kind === "fixupEnd");
      expect(ends.map((m) => m.detail)).toEqual([
        { regions: volumeBytes / (1024 * 1024), bytes: volumeBytes, matched: 0 }, // the initial copy: nothing matched
        { regions: volumeBytes / (1024 * 1024), bytes: 0, matched: volumeBytes },
      ]);

      await switchProcess.stop();
      switchProcess = await startSwitch(runtime, switchOptions);
      expect(splitter().needsResync).toBe(false); // the DRL says the switch has seen it: no second copy
      await switchProcess.stop();
      await appliance.stop();
    } finally {
      await target.removeDir(directory);
    }
  });
});
