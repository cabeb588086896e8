/**
 * The long-running commands of the CLI — `anytime serve`, `anytime appliance`,
 * `anytime switch` — as functions from arguments to an exit code, portable: flags are parsed
 * here (SPEC.md "Command line"), the process is started with the runtime's parts, the banner
 * printed, and the function returns once the runtime's stop signal (SIGINT / SIGTERM) has come
 * and the process stopped cleanly (acknowledged data durable, listeners closed): exit 0.
 *
 * @example
 * ```ts
 * // In a target's CLI entry:
 * // const commands = processCommands({ runtime, stdout, stderr, untilStopSignal });
 * // await runCli(args, { ...deps, processCommands: commands });
 * ```
 *
 * @module
 */
import { parseArgs, UsageError } from "../cli/args.ts";
import { parseSizeBytes } from "../core/units.ts";
import { parseTcpAddress } from "../io/transport.ts";
import type { OnFull } from "../switch/splitter.ts";
import {
  type RunningProcess,
  type ServerRuntime,
  startAppliance,
  startServe,
  startSwitch,
  type VolumeArgument,
} from "./processes.ts";

/** Defaults of SPEC.md: everything on loopback unless told otherwise. */
export const processDefaults = {
  nbdAddress: "127.0.0.1:10809",
  httpAddress: "127.0.0.1:7380",
  linkAddress: "127.0.0.1:7300",
} as const;

/** What the commands need from the target. */
export interface ProcessCommandsDeps {
  readonly runtime: ServerRuntime;
  stdout(text: string): void;
  stderr(text: string): void;
  /** Resolves when the process is told to stop (SIGINT, SIGTERM). */
  untilStopSignal(): Promise<string>;
  /** Called with the started process (tests drive it, then send the stop). */
  onStarted?(process: RunningProcess): void;
}

/** A command: arguments after its name → exit code. */
export type ProcessCommand = (args: readonly string[]) => Promise<number>;

const switchSideFlags = {
  volume: { kind: "list", valueName: "NAME=PATH[:SIZE]", summary: "a volume to protect (repeat for more)" },
  buffer: { kind: "string", valueName: "SIZE", summary: "copy buffer per volume (default 64MiB)" },
  region: { kind: "string", valueName: "SIZE", summary: "dirty region log region size (default 1MiB)" },
  "on-full": { kind: "string", valueName: "mark|wait", summary: "what a full copy buffer does (default mark)" },
} as const;

const keyFlags = {
  "token-file": { kind: "string", valueName: "FILE", summary: "HTTP bearer token (created, mode 0600, if missing)" },
  "secret-file": { kind: "string", valueName: "FILE", summary: "switch-appliance shared secret (same rule)" },
} as const;

const serveFlags = {
  data: { kind: "string", valueName: "DIR", summary: "where the journal, maps and DRL live" },
  nbd: { kind: "string", valueName: "HOST:PORT" },
  http: { kind: "string", valueName: "HOST:PORT" },
  "no-initial-copy": { kind: "boolean", summary: "unwritten blocks read as zeros in images" },
  ...switchSideFlags,
  ...keyFlags,
} as const;

const applianceFlags = {
  data: { kind: "string", valueName: "DIR" },
  listen: { kind: "string", valueName: "HOST:PORT", summary: "where switches connect (default 127.0.0.1:7300)" },
  nbd: { kind: "string", valueName: "HOST:PORT" },
  http: { kind: "string", valueName: "HOST:PORT" },
  ...keyFlags,
} as const;

const switchFlags = {
  state: { kind: "string", valueName: "DIR", summary: "holds the dirty region log" },
  appliance: { kind: "string", valueName: "HOST:PORT" },
  nbd: { kind: "string", valueName: "HOST:PORT" },
  http: { kind: "string", valueName: "HOST:PORT" },
  ...switchSideFlags,
  ...keyFlags,
} as const;

/** The three commands over a runtime. */
export function processCommands(deps: ProcessCommandsDeps): Record<"serve" | "appliance" | "switch", ProcessCommand> {
  return {
    serve: (args) => {
      const { flags } = parseArgs(args, serveFlags);
      return run(deps, () =>
        startServe(deps.runtime, {
          dataDirectory: required(flags.data, "--data", "serve"),
          volumes: flags.volume.map(parseVolumeArgument),
          nbdAddress: address(flags.nbd, "--nbd", processDefaults.nbdAddress),
          httpAddress: address(flags.http, "--http", processDefaults.httpAddress),
          tokenFile: flags["token-file"],
          secretFile: flags["secret-file"],
          noInitialCopy: flags["no-initial-copy"],
          ...switchSide(flags),
        }));
    },
    appliance: (args) => {
      const { flags } = parseArgs(args, applianceFlags);
      return run(deps, () =>
        startAppliance(deps.runtime, {
          dataDirectory: required(flags.data, "--data", "appliance"),
          listenAddress: address(flags.listen, "--listen", processDefaults.linkAddress),
          nbdAddress: address(flags.nbd, "--nbd", processDefaults.nbdAddress),
          httpAddress: address(flags.http, "--http", processDefaults.httpAddress),
          tokenFile: flags["token-file"],
          secretFile: flags["secret-file"],
        }));
    },
    switch: (args) => {
      const { flags } = parseArgs(args, switchFlags);
      return run(deps, () =>
        startSwitch(deps.runtime, {
          stateDirectory: required(flags.state, "--state", "switch"),
          applianceAddress: address(flags.appliance, "--appliance", processDefaults.linkAddress),
          volumes: flags.volume.map(parseVolumeArgument),
          nbdAddress: address(flags.nbd, "--nbd", processDefaults.nbdAddress),
          httpAddress: flags.http === undefined ? undefined : address(flags.http, "--http", processDefaults.httpAddress),
          tokenFile: flags["token-file"],
          secretFile: flags["secret-file"],
          ...switchSide(flags),
        }));
    },
  };
}

/**
 * Parses `NAME=PATH[:SIZE]` (`db=/srv/db.img:1GiB`); a `:` whose suffix is not a size is part
 * of the path.
 *
 * @throws {UsageError} naming the argument.
 */
export function parseVolumeArgument(text: string): VolumeArgument {
  const equals = text.indexOf("=");
  if (equals <= 0 || equals === text.length - 1) {
    throw new UsageError(`Cannot parse --volume "${text}": expected NAME=PATH[:SIZE], like db=/srv/db.img:1GiB`, { flag: "--volume" });
  }
  const name = text.slice(0, equals);
  let path = text.slice(equals + 1);
  let sizeBytes: number | undefined;
  const colon = path.lastIndexOf(":");
  if (colon > 0) {
    try {
      sizeBytes = parseSizeBytes(path.slice(colon + 1));
      path = path.slice(0, colon);
    } catch (error) {
      if (!(error instanceof SyntaxError || error instanceof RangeError)) throw error;
    }
  }
  return { name, path, ...(sizeBytes !== undefined ? { sizeBytes } : {}) };
}

function switchSide(flags: { buffer: string | undefined; region: string | undefined; "on-full": string | undefined }) {
  const onFull = flags["on-full"];
  if (onFull !== undefined && onFull !== "mark" && onFull !== "wait") {
    throw new UsageError(`Cannot use --on-full "${onFull}": choose mark or wait`, { flag: "--on-full" });
  }
  return {
    bufferBytes: flags.buffer === undefined ? undefined : size(flags.buffer, "--buffer"),
    regionBytes: flags.region === undefined ? undefined : size(flags.region, "--region"),
    onFull: onFull as OnFull | undefined,
  };
}

function size(text: string, flag: string): number {
  try {
    return parseSizeBytes(text);
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof RangeError)) throw error;
    throw new UsageError(`Cannot use ${flag} "${text}": ${error.message}`, { flag });
  }
}

function required(value: string | undefined, flag: string, command: string): string {
  if (value === undefined || value === "") throw new UsageError(`anytime ${command} needs ${flag}`, { flag, command });
  return value;
}

function address(value: string | undefined, flag: string, fallback: string): string {
  const text = value ?? fallback;
  try {
    parseTcpAddress(text);
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof RangeError)) throw error;
    throw new UsageError(`Cannot use ${flag} "${text}": ${error.message}`, { flag });
  }
  return text;
}

async function run(deps: ProcessCommandsDeps, start: () => Promise<RunningProcess>): Promise<number> {
  let started: RunningProcess;
  try {
    started = await start();
  } catch (error) {
    if (error instanceof UsageError) throw error;
    deps.stderr(`anytime: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  deps.stdout(`${started.banner.join("\n")}\n`);
  deps.onStarted?.(started);
  const signal = await deps.untilStopSignal();
  deps.stderr(`anytime: ${signal}: stopping (flushing acknowledged data, closing listeners)\n`);
  await started.stop();
  deps.stderr("anytime: stopped cleanly\n");
  return 0;
}
