/**
 * Proves the long-running commands refuse bad switch-side flags before they start anything
 * (exit 2 through the CLI: a UsageError naming the flag): a copy buffer too small for the
 * largest host write (guarantee 5: a full buffer holds or marks, never refuses a write), an
 * unknown `--on-full`.
 */
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.ts";
import { processCommands } from "../../src/server/process_commands.ts";
import type { ServerRuntime } from "../../src/server/processes.ts";

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
});
