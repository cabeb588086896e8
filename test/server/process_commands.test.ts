/**
 * Proves the long-running commands refuse bad switch-side flags before they start anything
 * (exit 2 through the CLI: a UsageError naming the flag): a copy buffer too small for the
 * largest host write (guarantee 5: a full buffer holds or marks, never refuses a write), an
 * unknown `--on-full`, an `--overlay-max` outside the overlay's limits; and that the
 * switch-side, image and key flags reach the process they start.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.ts";
import { processCommands } from "../../src/server/process_commands.ts";
import type { RunningProcess, ServerRuntime } from "../../src/server/processes.ts";
import { runPeerOk } from "../support/peers.ts";
import { type RuntimeTarget, runtimeTarget } from "../support/runtime.ts";

function commands() {
  // Nothing may be started: any use of the runtime fails the test.
  const runtime = new Proxy({}, { get: (_, key) => expect.unreachable(`the runtime's ${String(key)} was used`) });
  return processCommands({
    runtime: runtime as ServerRuntime,
    stdout: () => expect.unreachable("a banner was printed"),
    stderr: () => {},
    untilStopSignal: () => new Promise(() => {}),
  });
}

describe("serve and switch flags", () => {
  it("refuse a --buffer smaller than the largest host write (4 MiB), naming the flag", async () => {
    for (const [command, args] of [
      ["serve", ["--data", "/nonexistent", "--volume", "db=/nonexistent/db", "--buffer", "1MiB"]],
      ["switch", ["--state", "/nonexistent", "--appliance", "127.0.0.1:7300", "--volume", "db=/dev/null", "--buffer", "4095KiB"]],
    ] as const) {
      const run = commands()[command](args);
      await expect(run).rejects.toThrow(UsageError);
      await expect(run).rejects.toThrow(/^Cannot use --buffer "(1MiB|4095KiB)": the copy buffer must hold the largest write a host may send \(4\.00 MiB/);
    }
  });

  it("refuse an unknown --on-full", async () => {
    await expect(commands().serve(["--data", "/x", "--volume", "db=/x/db", "--on-full", "drop"])).rejects.toThrow(
      /^Cannot use --on-full "drop": choose mark or wait$/,
    );
  });

  it("refuse an --overlay-max that is not whole 4 KiB blocks from 4 KiB to 64 GiB, on serve and appliance", async () => {
    for (const bad of ["1KiB", "6KiB", "65GiB"]) {
      await expect(commands().serve(["--data", "/x", "--volume", "db=/x/db", "--overlay-max", bad])).rejects.toThrow(
        new RegExp(`^Cannot use --overlay-max "${bad}": it must be a multiple of 4\\.00 KiB from 4\\.00 KiB to 64\\.0 GiB$`),
      );
      await expect(commands().appliance(["--data", "/x", "--overlay-max", bad])).rejects.toThrow(UsageError);
    }
  });
});

describe("serve with every switch-side flag", () => {
  let target: RuntimeTarget;
  let directory: string;
  beforeAll(async () => {
    target = await runtimeTarget();
    directory = await target.tempDir();
  });
  afterAll(async () => {
    await target.removeDir(directory);
  });

  it("starts with --buffer, --region, --on-full, --token-file, --no-initial-copy and --overlay-max as given", async () => {
    const runtime = target.createServerRuntime({ log: () => {} });
    let started!: RunningProcess;
    const stdout: string[] = [];
    // An existing primary: without --no-initial-copy its content would be journaled first.
    await target.writeFile(`${directory}/db.img`, new Uint8Array(8 * 1024 * 1024).fill(0x5a));
    const running = processCommands({
      runtime,
      stdout: (text) => void stdout.push(text),
      stderr: () => {},
      untilStopSignal: async () => {
        // Inspected while it runs, then stopped like a SIGTERM would.
        const splitter = started.switchNode!.splitter("db");
        expect(splitter.copyBuffer.bytesMax).toBe(8 * 1024 * 1024);
        expect(splitter.regionBytes).toBe(2 * 1024 * 1024);
        expect(splitter.onFull).toBe("wait");
        const head = new Uint8Array(4096);
        await started.appliance!.volume("db").openImage("head").read(0, head);
        expect(head.every((byte) => byte === 0)).toBe(true); // not journaled: no initial copy
        const info = await runPeerOk("nbdinfo", [`nbd://${started.nbdAddress}/db@head+rw`]);
        expect(info.stdout).toContain("writable scratch image (writes are thrown away, up to 1.00 GiB)");
        return "SIGTERM";
      },
      onStarted: (process) => void (started = process),
    }).serve([
      "--data", `${directory}/data`,
      "--volume", `db=${directory}/db.img`,
      "--nbd", "127.0.0.1:0",
      "--http", "127.0.0.1:0",
      "--buffer", "8MiB",
      "--region", "2MiB",
      "--on-full", "wait",
      "--token-file", `${directory}/my-token`,
      "--no-initial-copy",
      "--overlay-max", "1GiB",
    ]);
    expect(await running).toBe(0);
    const token = new TextDecoder().decode((await runtime.fileSystem.readFileOrNull(`${directory}/my-token`))!).trim();
    expect(stdout.join("")).toContain(`token created now in ${directory}/my-token: ${token}`);
  });
});
