/**
 * `anytime` on Deno (`deno task anytime ...`): the portable CLI (`src/cli/main.ts`) with
 * Deno's fetch, files, terminal and clock, and the commands that run the product over the
 * Deno target. SIGINT and SIGTERM stop a running process cleanly (exit 0); a second signal
 * exits at once (exit 130).
 *
 * @module
 */
import { runCli } from "../../src/cli/main.ts";
import type { CliDeps } from "../../src/cli/cli_deps.ts";
import { runDemo } from "../../src/server/demo.ts";
import { processCommands } from "../../src/server/process_commands.ts";
import { denoServerRuntime } from "./server_runtime.ts";

const encoder = new TextEncoder();

async function writeAll(stream: { write(bytes: Uint8Array): Promise<number> }, text: string): Promise<void> {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(await stream.write(bytes));
}

function untilStopSignal(): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => {
        if (received) Deno.exit(130);
        received = true;
        resolve(signal);
      });
    }
  });
}

const cliDeps: Omit<CliDeps, "env" | "processCommands"> = {
  fetch: (input, init) => fetch(input, init),
  readTextFile: (path) => Deno.readTextFile(path),
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
  isTty: Deno.stderr.isTerminal(),
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  nowMs: () => Date.now(),
  columns: Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined,
};

const runtime = denoServerRuntime();
const commands = processCommands({
  runtime,
  stdout: (text) => void Deno.stdout.writeSync(encoder.encode(text)),
  stderr: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
  untilStopSignal,
});

const code = await runCli(Deno.args, {
  ...cliDeps,
  env: Deno.env.toObject(),
  processCommands: {
    ...commands,
    demo: (args) =>
      runDemo({
        runtime,
        cli: cliDeps,
        makeTempDirectory: () => Deno.makeTempDir({ prefix: "anytime-demo-" }),
        removeDirectory: (path) => Deno.remove(path, { recursive: true }),
      }, { keep: args.includes("--keep") }),
  },
});
Deno.exit(code);
