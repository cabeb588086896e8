/**
 * `anytime` as a real process of the runtime under test (Node: `bin/anytime.mjs`, Deno:
 * `targets/deno/cli.ts`), for the tests that kill and restart it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { runPeerOk } from "./peers.ts";

const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const cliCommand: readonly string[] = deno !== undefined
  ? [deno.execPath(), "run", "-A", "targets/deno/cli.ts"]
  : [process.execPath, "bin/anytime.mjs"];

export interface Started {
  child: ChildProcess;
  output: () => string;
}

/** Starts `anytime ARGS...`, resolving once its banner (up to `readyText`) is printed. */
export function startCli(args: readonly string[], readyText: RegExp): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(cliCommand[0], [...cliCommand.slice(1), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    const timer = setTimeout(() => reject(new Error(`anytime ${args[0]} did not start:\n${text}`)), 30_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (readyText.test(text)) {
        clearTimeout(timer);
        resolve({ child, output: () => text });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`anytime ${args[0]} exited with ${code}:\n${text}`));
    });
  });
}

export function killHard(started: Started): Promise<void> {
  return new Promise((resolve) => {
    started.child.removeAllListeners("exit");
    started.child.once("exit", () => resolve());
    started.child.kill("SIGKILL");
  });
}

/**
 * SIGTERM, then "stopped cleanly" when the process said so and exited 0; else what it did.
 * Deno's `node:child_process` reports a child that exited 0 after handling the SIGTERM it was
 * sent as killed by that signal (a shell sees exit 0), so under Deno the printed line decides.
 */
export function stopCleanly(started: Started): Promise<string> {
  return new Promise((resolve) => {
    started.child.removeAllListeners("exit");
    started.child.once("exit", (code, signal) => {
      const exitedZero = code === 0 || (deno !== undefined && code === null && signal === "SIGTERM");
      const said = started.output().includes("anytime: stopped cleanly");
      resolve(exitedZero && said ? "stopped cleanly" : `exit ${code} ${signal}:\n${started.output()}`);
    });
    started.child.kill("SIGTERM");
  });
}

/** A JSON request to a running process's HTTP API (bearer `token`); throws on a non-2xx status. */
export async function apiJson(httpPort: number, token: string, path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return await response.json();
}

/** Whether the NBD export at `uri`, copied out with `nbdcopy` to `copyPath`, equals the file at `filePath`. */
export async function exportEqualsFile(uri: string, copyPath: string, filePath: string): Promise<boolean> {
  await runPeerOk("nbdcopy", ["--flush", uri, copyPath]);
  const [a, b] = await Promise.all([readFile(copyPath), readFile(filePath)]);
  return a.equals(b);
}
