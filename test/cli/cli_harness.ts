/**
 * Runs `runCli` with captured stdout and stderr, a fake clock (sleep advances it, at once),
 * files from a map and the fake API by default, so a test reads like a shell session.
 */
import type { CliDeps } from "../../src/cli/main.ts";
import { runCli } from "../../src/cli/main.ts";
import { createFakeApi, type FakeApi } from "./fake_api.ts";

/** What one run printed and did. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Milliseconds of every sleep, in order. */
  readonly sleeps: readonly number[];
}

/** Overrides for one run. */
export interface CliRunOptions extends Partial<Omit<CliDeps, "stdout" | "stderr" | "sleep" | "nowMs">> {
  readonly fake?: FakeApi;
  /** Files `readTextFile` can read. */
  readonly files?: Record<string, string>;
}

/**
 * Runs the CLI.
 *
 * @example
 * ```ts
 * const { code, stdout } = await cli(["volumes", "--token", FAKE_TOKEN]);
 * ```
 */
export async function cli(argv: readonly string[], options: CliRunOptions = {}): Promise<CliRun> {
  const fake = options.fake ?? createFakeApi();
  let stdout = "";
  let stderr = "";
  const sleeps: number[] = [];
  let nowMs = Date.UTC(2026, 10, 22, 10, 20, 0);
  const files = options.files ?? {};
  const code = await runCli(argv, {
    fetch: options.fetch ?? fake.fetch,
    env: options.env ?? {},
    readTextFile: options.readTextFile ?? (async (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    }),
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    isTty: options.isTty ?? false,
    timeZone: options.timeZone ?? "Europe/Berlin",
    sleep: (ms) => {
      sleeps.push(ms);
      nowMs += ms;
      return Promise.resolve();
    },
    nowMs: () => nowMs,
    columns: options.columns,
    processCommands: options.processCommands,
  });
  return { code, stdout, stderr, sleeps };
}
