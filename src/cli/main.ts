/**
 * `anytime`'s entry point, portable: `runCli(argv, deps)` resolves to the exit code, with every
 * effect injected ({@link CliDeps}). `targets/node` and `targets/deno` pass the runtime's
 * fetch, environment, files, terminal and clock, plus the commands that run the product
 * (`serve`, `appliance`, `switch`, `demo`); tests pass fakes.
 *
 * Exit codes (SPEC.md, "Command line"): 0 success, 1 a refused request (the message says why,
 * quoting the server), 2 a usage error (unknown command or flag, missing argument).
 *
 * @module
 */
import { ApiClient, ApiError } from "./api_client.ts";
import { type ApiConnection, resolveApiConnection } from "./api_connection.ts";
import { closest, parseArgs, UsageError } from "./args.ts";
import type { CliDeps, ProcessCommandName } from "./cli_deps.ts";
import { type Command, type CommandContext, commands, globalFlags } from "./commands.ts";
import { commandSynopsis, commandUsageText, processCommandUsages, usageText } from "./usage.ts";
import { CLI_VERSION } from "./version.ts";

export type { CliDeps, ProcessCommand, ProcessCommandName } from "./cli_deps.ts";

/**
 * Exit codes scripts rely on (SPEC.md, "Command line").
 *
 * @example
 * ```ts
 * if (await runCli(argv, deps) === EXIT_CODES.usage) console.error("see anytime help");
 * ```
 */
export const EXIT_CODES = { ok: 0, refused: 1, usage: 2 } as const;

/** Subcommands: `snapshot rm VOL NAME`, `job cancel ID`. */
const subcommands: Readonly<Record<string, string>> = { snapshot: "rm", job: "cancel" };

/** Global flags that take a value, so the command word can be found after them. */
const globalValueFlags: ReadonlySet<string> = new Set(["--api", "--token", "--token-file"]);

/**
 * Runs one `anytime` command line and resolves to its exit code; never throws.
 *
 * @example
 * ```ts
 * const code = await runCli(["image", "db", "--at", "snap:before-upgrade"], {
 *   fetch: globalThis.fetch, env: {}, readTextFile: (path) => readFile(path, "utf8"),
 *   stdout: (text) => write(1, text), stderr: (text) => write(2, text), isTty: false,
 *   timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
 *   sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), nowMs: () => Date.now(),
 * });
 * ```
 */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const state: { connection?: ApiConnection; command?: string } = {};
  try {
    return await dispatch(argv, deps, state);
  } catch (error) {
    return await report(error, deps, state);
  }
}

async function dispatch(
  argv: readonly string[],
  deps: CliDeps,
  state: { connection?: ApiConnection; command?: string },
): Promise<number> {
  const commandIndex = findCommandIndex(argv);
  const leading = argv.slice(0, commandIndex).filter((token) => token !== "--");
  const word = argv[commandIndex];
  if (leading.includes("--version")) {
    await deps.stdout(`anytime ${CLI_VERSION}\n`);
    return EXIT_CODES.ok;
  }
  const helpAsked = leading.includes("--help") || leading.includes("-h");
  if (word === undefined) {
    if (helpAsked) {
      await deps.stdout(usageText());
      return EXIT_CODES.ok;
    }
    await deps.stderr(usageText());
    return EXIT_CODES.usage;
  }
  let rest = argv.slice(commandIndex + 1);
  if (word === "help" || (helpAsked && !isProcessCommand(word))) {
    return await printHelp(deps, word === "help" ? parseArgs(rest, globalFlags).positionals : [word]);
  }
  if (isProcessCommand(word)) {
    state.command = word;
    // Help is answered here, the same with or without the runtime's commands.
    if (beforeEnd(rest).some((token) => token === "--help" || token === "-h")) return await printHelp(deps, [word]);
    const run = deps.processCommands?.[word];
    if (run === undefined) {
      throw new UsageError(`Command "${word}" is not available in this build: it runs the product, and no runtime supplied it`);
    }
    return await run([...leading, ...rest]);
  }
  let name = word;
  const sub = subcommands[word];
  if (sub !== undefined && rest[0] === sub) {
    name = `${word} ${sub}`;
    rest = rest.slice(1);
  }
  const command = commands.find((candidate) => candidate.name === name);
  if (command === undefined) throw unknownCommand(word);
  state.command = command.name;
  const args = [...leading, ...rest];
  if (beforeEnd(args).some((token) => token === "--help" || token === "-h")) {
    await deps.stdout(commandUsageText(command.name) ?? usageText());
    return EXIT_CODES.ok;
  }
  const { flags, positionals } = parseArgs(args, { ...globalFlags, ...command.flags });
  checkPositionals(command, positionals);
  const connection = await resolveApiConnection(deps, { api: flags.api, token: flags.token, tokenFile: flags["token-file"] });
  state.connection = connection;
  const write = (sink: (text: string) => void | Promise<void>) => async (text: string) => {
    await sink(text);
  };
  const context: CommandContext<typeof command.flags> = {
    client: new ApiClient({ fetch: deps.fetch }, connection),
    flags,
    positionals,
    format: { timeZone: deps.timeZone },
    out: write(deps.stdout),
    err: write(deps.stderr),
    sleep: deps.sleep,
    nowMs: deps.nowMs,
    isTty: deps.isTty,
    columns: deps.columns,
  };
  return await command.run(context);
}

/** The index of the command word: the first token that is neither a flag nor a global flag's value. */
function findCommandIndex(argv: readonly string[]): number {
  let index = 0;
  while (index < argv.length) {
    const token = argv[index];
    if (token === "--") return index + 1;
    if (!token.startsWith("-") || token === "-") return index;
    index += globalValueFlags.has(token) ? 2 : 1;
  }
  return index;
}

function beforeEnd(args: readonly string[]): readonly string[] {
  const end = args.indexOf("--");
  return end === -1 ? args : args.slice(0, end);
}

function isProcessCommand(word: string): word is ProcessCommandName {
  return processCommandUsages.some((usage) => usage.name === word);
}

async function printHelp(deps: CliDeps, topics: readonly string[]): Promise<number> {
  const topic = topics.slice(0, 2).join(" ");
  if (topic === "") {
    await deps.stdout(usageText());
    return EXIT_CODES.ok;
  }
  const text = commandUsageText(topic) ?? commandUsageText(topics[0]);
  if (text === undefined) throw unknownCommand(topics[0]);
  await deps.stdout(text);
  return EXIT_CODES.ok;
}

function unknownCommand(word: string): UsageError {
  const names = [...new Set([...commands.map((c) => c.name.split(" ")[0]), ...processCommandUsages.map((u) => u.name), "help"])];
  const suggestion = closest(word, names);
  return new UsageError(`Unknown command "${word}"${suggestion === undefined ? "" : `: did you mean "${suggestion}"?`}`);
}

function checkPositionals(command: Command, positionals: readonly string[]): void {
  const required = command.arguments.filter((name) => !name.endsWith("?"));
  if (positionals.length < required.length) {
    throw new UsageError(`Missing argument ${required[positionals.length]} for "${command.name}"`, { command: command.name });
  }
  if (positionals.length > command.arguments.length) {
    throw new UsageError(`Unexpected argument "${positionals[command.arguments.length]}" for "${command.name}"`, {
      command: command.name,
    });
  }
  positionals.forEach((value, index) => {
    if (value.trim() === "") {
      throw new UsageError(`Argument ${command.arguments[index].replace("?", "")} of "${command.name}" is empty`, {
        command: command.name,
      });
    }
  });
}

/** The one place errors become messages and exit codes. */
async function report(
  error: unknown,
  deps: CliDeps,
  state: { connection?: ApiConnection; command?: string },
): Promise<number> {
  try {
    if (error instanceof UsageError) {
      const name = error.command ?? state.command;
      const command = commands.find((candidate) => candidate.name === name);
      const processUsage = processCommandUsages.find((usage) => usage.name === name);
      const usage = command !== undefined
        ? `Usage: anytime ${commandSynopsis(command)}\nRun \`anytime help ${command.name}\` for its flags.\n`
        : processUsage !== undefined
        ? `Usage: anytime ${processUsage.synopsis}\n`
        : "Run `anytime help` for the commands.\n";
      await deps.stderr(`anytime: ${error.message}\n${usage}`);
      return EXIT_CODES.usage;
    }
    if (error instanceof ApiError) {
      await deps.stderr(describeApiError(error, state.connection));
      return EXIT_CODES.refused;
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    await deps.stderr(`anytime: unexpected error: ${message}\n`);
    return EXIT_CODES.refused;
  } catch {
    // stderr itself failed (a closed pipe): nothing left to tell, the exit code still says it.
    return error instanceof UsageError ? EXIT_CODES.usage : EXIT_CODES.refused;
  }
}

/**
 * The message for a refused request, with what to do for 401 and the range for 422.
 *
 * @example
 * ```ts
 * describeApiError(new ApiError('Unknown volume "nope"', { status: 404, code: "not_found" }));
 * // 'anytime: refused (404 not_found): Unknown volume "nope"\n'
 * ```
 */
export function describeApiError(error: ApiError, connection?: ApiConnection): string {
  if (error.status === 0) return `anytime: ${error.message}\n`;
  let text = `anytime: refused (${error.status} ${error.code}): ${error.message}\n`;
  if (error.status === 401) {
    text += connection === undefined || connection.tokenSource === "none"
      ? "  No token was given: pass --token-file F (the token file of `anytime serve`) or set ANYTIME_TOKEN.\n"
      : `  The token came from ${connection.tokenSource}; check it is this server's token.\n`;
  }
  if (error.available !== undefined) text += `  Available: ${error.available.from} .. ${error.available.to}\n`;
  return text;
}
