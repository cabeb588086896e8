/**
 * Usage text: `anytime help` lists every command (the ones that run the product and the ones
 * that talk to it); `anytime help COMMAND` and `anytime COMMAND --help` show one, with its
 * flags. Built from the command table so a new flag cannot be missing from the help.
 *
 * @module
 */
import type { FlagSpecs } from "./args.ts";
import type { ProcessCommandName } from "./cli_deps.ts";
import { processCommandFlags } from "./process_flags.ts";
import { type Command, commands, globalFlags } from "./commands.ts";
import { CLI_VERSION } from "./version.ts";

/** The commands that run the product (dispatched to the runtime target), as SPEC writes them. */
export const processCommandUsages: readonly { name: ProcessCommandName; synopsis: string; summary: string }[] = [
  {
    name: "serve",
    synopsis:
      "serve --data DIR --volume NAME=PATH[:SIZE] [--volume ...] [--nbd HOST:PORT] [--http HOST:PORT] [--no-initial-copy]" +
      " [--buffer SIZE] [--region SIZE] [--on-full mark|wait] [--token-file F] [--secret-file F]",
    summary: "all-in-one: switch and appliance in one process; creates PATH of SIZE if missing",
  },
  {
    name: "appliance",
    synopsis: "appliance --data DIR [--listen HOST:PORT] [--http HOST:PORT] [--nbd HOST:PORT] [--token-file F] [--secret-file F]",
    summary: "the data protection server (journal, snapshots, images, restore)",
  },
  {
    name: "switch",
    synopsis:
      "switch --state DIR --appliance HOST:PORT --volume NAME=PATH[:SIZE] [--volume ...] [--nbd HOST:PORT] [--http HOST:PORT]" +
      " [--buffer SIZE] [--region SIZE] [--on-full mark|wait] [--token-file F] [--secret-file F]",
    summary: "the splitter: serves volumes over NBD, copies each write to the appliance",
  },
  {
    name: "demo",
    synopsis: "demo [--keep]",
    summary: "a scripted tour: writes, snapshot, simulated corruption, finding and restoring the last good point",
  },
];

/**
 * A command's one-line synopsis, from its arguments and flags.
 *
 * @example
 * ```ts
 * commandSynopsis(commands.find((command) => command.name === "image")!); // "image VOL --at POINT [--writable]"
 * ```
 */
export function commandSynopsis(command: Command): string {
  const positionals = command.arguments.map((name) => name.endsWith("?") ? `[${name.slice(0, -1)}]` : name);
  const flags = Object.entries(command.flags as FlagSpecs).map(([name, spec]) => {
    const text = spec.kind === "boolean" ? `--${name}` : `--${name} ${spec.valueName ?? "VALUE"}`;
    return spec.required === true ? text : `[${text}]`;
  });
  return [command.name, ...positionals, ...flags].join(" ");
}

/**
 * The full help: every command, POINT forms, exit codes, environment.
 *
 * @example
 * ```ts
 * usageText().includes("anytime restore VOL --at POINT"); // true
 * ```
 */
export function usageText(): string {
  const lines = [
    `anytime ${CLI_VERSION}: continuous data protection for block volumes`,
    "",
    "Run the product:",
    ...processCommandUsages.flatMap((usage) => [`  anytime ${usage.synopsis}`, `      ${usage.summary}`]),
    "",
    "Talk to it (each takes --json, --api URL, --token F, --token-file F):",
    ...commands.flatMap((command) => [`  anytime ${commandSynopsis(command)}`, `      ${command.summary}`]),
    "  anytime help [COMMAND]",
    "      this text, or one command's flags",
    "  anytime --version",
    "",
    "POINT: seq:N | snap:NAME | -90s, -5m, -2h, -1d | ISO-8601 time with zone | now, head",
    "Exit codes: 0 success, 1 request refused (the message says why), 2 usage error.",
    "Environment: ANYTIME_API (default http://127.0.0.1:7380), ANYTIME_TOKEN, ANYTIME_TOKEN_FILE.",
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * One command's usage with its flags and the global ones; `undefined` for an unknown name.
 *
 * @example
 * ```ts
 * commandUsageText("image")?.startsWith("Usage: anytime image VOL --at POINT"); // true
 * ```
 */
export function commandUsageText(name: string): string | undefined {
  const flagLines = (specs: FlagSpecs) =>
    Object.entries(specs).map(([flag, spec]) => {
      const left = spec.kind === "boolean" ? `--${flag}` : `--${flag} ${spec.valueName ?? "VALUE"}`;
      return `  ${left.padEnd(22)} ${spec.summary ?? ""}`.trimEnd();
    });
  const processUsage = processCommandUsages.find((usage) => usage.name === name);
  if (processUsage !== undefined) {
    const specs: FlagSpecs | undefined = (processCommandFlags as Partial<Record<ProcessCommandName, FlagSpecs>>)[processUsage.name];
    const lines = specs === undefined ? [] : ["", "Flags:", ...flagLines(specs)];
    return [`Usage: anytime ${processUsage.synopsis}`, `  ${processUsage.summary}`, ...lines, ""].join("\n");
  }
  const command = commands.find((candidate) => candidate.name === name);
  if (command === undefined) return undefined;
  const own = flagLines(command.flags);
  return [
    `Usage: anytime ${commandSynopsis(command)}`,
    `  ${command.summary}`,
    ...(own.length === 0 ? [] : ["", "Flags:", ...own]),
    "",
    "Common flags:",
    ...flagLines(globalFlags),
    "",
  ].join("\n");
}
