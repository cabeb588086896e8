/**
 * What the CLI needs from the runtime, injected by `targets/node` and `targets/deno` (and by
 * tests): the network, the environment, files, the terminal, the clock. `src/cli` touches
 * nothing else, so one codebase runs on both runtimes and tests run without a socket.
 *
 * @module
 */
import type { FetchLike } from "./api_client.ts";

/** The commands that run the product rather than talk to it (SPEC: serve, appliance, switch, demo). */
export type ProcessCommandName = "serve" | "appliance" | "switch" | "demo";

/**
 * Runs one of the {@link ProcessCommandName} commands with the arguments after its name
 * (and any before it), and resolves to the exit code when it ends (after a signal, for the
 * long-running ones).
 */
export type ProcessCommand = (args: readonly string[]) => Promise<number>;

/** `runCli`'s dependencies. */
export interface CliDeps {
  /** The runtime's `fetch`, or Hono's `app.request`, or a fake. */
  readonly fetch: FetchLike;
  /** The environment (`ANYTIME_API`, `ANYTIME_TOKEN`, `ANYTIME_TOKEN_FILE`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads a UTF-8 text file (the token file). */
  readTextFile(path: string): Promise<string>;
  /** Writes text to standard output as it is (the CLI adds the newlines). */
  stdout(text: string): void | Promise<void>;
  /** Writes text to standard error as it is. */
  stderr(text: string): void | Promise<void>;
  /** Whether standard error is a terminal (progress redraws in place) or a file or pipe. */
  readonly isTty: boolean;
  /** IANA time zone for local times (`Intl.DateTimeFormat().resolvedOptions().timeZone`). */
  readonly timeZone: string;
  /** Resolves after `ms` milliseconds (polling a job). */
  sleep(ms: number): Promise<void>;
  /** Milliseconds since the epoch (the rate of a job). */
  nowMs(): number;
  /** Terminal width, when known. */
  readonly columns?: number;
  /** Supplied by the runtime target; without one of them its command is a usage error. */
  readonly processCommands?: Partial<Record<ProcessCommandName, ProcessCommand>>;
}
