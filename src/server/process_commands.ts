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
import { applianceFlags, processDefaults, serveFlags, switchFlags } from "../cli/process_flags.ts";
import { limits } from "../core/limits.ts";
import { formatBytes, parseSizeBytes } from "../core/units.ts";
import { overlayLimits } from "../io/overlay_block_device.ts";
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
          ...overlay(flags["overlay-max"]),
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
          ...overlay(flags["overlay-max"]),
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
          httpAddress: address(flags.http, "--http", processDefaults.httpAddress),
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
  const bufferBytes = flags.buffer === undefined ? undefined : size(flags.buffer, "--buffer");
  // A write the buffer cannot hold whole could never be copied: with --on-full=wait it would be
  // refused to the host, with mark it would drop the volume to marking mode every time.
  if (bufferBytes !== undefined && bufferBytes < limits.writeBytesMax) {
    throw new UsageError(
      `Cannot use --buffer "${flags.buffer}": the copy buffer must hold the largest write a host may send ` +
        `(${formatBytes(limits.writeBytesMax)}, the NBD export's maximum)`,
      { flag: "--buffer" },
    );
  }
  return {
    bufferBytes,
    regionBytes: flags.region === undefined ? undefined : size(flags.region, "--region"),
    onFull: onFull as OnFull | undefined,
  };
}

/** `--overlay-max`: scratch bytes per writable image, within the overlay's limits. */
function overlay(text: string | undefined): { overlayBytesMax?: number } {
  if (text === undefined) return {};
  const bytes = size(text, "--overlay-max");
  const { blockBytesDefault, overlayBytesMaxLimit } = overlayLimits;
  if (bytes < blockBytesDefault || bytes > overlayBytesMaxLimit || bytes % blockBytesDefault !== 0) {
    throw new UsageError(
      `Cannot use --overlay-max "${text}": it must be a multiple of ${formatBytes(blockBytesDefault)} ` +
        `from ${formatBytes(blockBytesDefault)} to ${formatBytes(overlayBytesMaxLimit)}`,
      { flag: "--overlay-max" },
    );
  }
  return { overlayBytesMax: bytes };
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
