/**
 * `anytime` on Node.js: the portable CLI (`src/cli/main.ts`) with Node's fetch, files,
 * terminal and clock, and the commands that run the product (`serve`, `appliance`, `switch`,
 * `demo`) over the Node target's files, sockets and HTTP server. SIGINT and SIGTERM stop a
 * running process cleanly (exit 0); a second signal exits at once (exit 130).
 *
 * @module
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { runCli } from "../../src/cli/main.ts";
import type { CliDeps } from "../../src/cli/cli_deps.ts";
import { runDemo } from "../../src/server/demo.ts";
import { processCommands } from "../../src/server/process_commands.ts";
import { nodeServerRuntime } from "./server_runtime.ts";

/** Resolves with the signal's name on the first SIGINT or SIGTERM; a second one exits now. */
function untilStopSignal(): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: string) => {
      if (received) process.exit(130);
      received = true;
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

const write = (stream: NodeJS.WriteStream) => (text: string) =>
  new Promise<void>((resolve, reject) => stream.write(text, (error) => (error ? reject(error) : resolve())));

const cliDeps: Omit<CliDeps, "env" | "processCommands"> = {
  fetch: (input, init) => fetch(input, init),
  readTextFile: (path) => readFile(path, "utf8"),
  stdout: write(process.stdout),
  stderr: write(process.stderr),
  isTty: process.stderr.isTTY === true,
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  nowMs: () => Date.now(),
  columns: process.stdout.columns,
};

const runtime = nodeServerRuntime();
const commands = processCommands({
  runtime,
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  untilStopSignal,
});

const code = await runCli(process.argv.slice(2), {
  ...cliDeps,
  env: process.env,
  processCommands: {
    ...commands,
    demo: (args) =>
      runDemo({
        runtime,
        cli: cliDeps,
        makeTempDirectory: () => mkdtemp(join(tmpdir(), "anytime-demo-")),
        removeDirectory: (path) => rm(path, { recursive: true, force: true }),
      }, { keep: args.includes("--keep") }),
  },
});
process.exitCode = code;
// Timers of stopped parts (backoff, upkeep) must not keep a finished command alive.
setTimeout(() => process.exit(code), 200).unref();
