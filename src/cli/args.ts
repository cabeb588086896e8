/**
 * A small argument parser for Anytime's commands: `--flag value`, `--flag=value`, boolean
 * flags, repeated flags (`--volume a --volume b`), positionals and `--` to end the flags.
 * No I/O and no dependency: the command table (`commands.ts`) says which flags exist, this
 * file turns `argv` into values or a {@link UsageError} that names the flag.
 *
 * A string flag takes the next argument as its value even when it starts with a single `-`,
 * because relative POINTs do (`--at -5m`); a next argument starting with `--` is a missing
 * value instead (`--at --json`).
 *
 * @module
 */
import { cliLimits } from "./cli_limits.ts";

/**
 * A command line the user got wrong (unknown command or flag, missing argument, bad value).
 * The CLI exits with code 2 on it.
 *
 * @example
 * ```ts
 * const error = new UsageError('Unknown flag "--fulll"', { flag: "--fulll" });
 * error.flag; // "--fulll"
 * ```
 */
export class UsageError extends Error {
  override name = "UsageError";
  /** The flag at fault, as typed (`--at`), when one is. */
  readonly flag?: string;
  /** The command whose usage to show, when known. */
  readonly command?: string;

  constructor(message: string, options: { flag?: string; command?: string } = {}) {
    super(message);
    this.flag = options.flag;
    this.command = options.command;
  }
}

/** `string`: takes a value once; `list`: takes a value, may repeat; `boolean`: no value. */
export type FlagKind = "string" | "list" | "boolean";

/** One flag a command accepts. */
export interface FlagSpec {
  readonly kind: FlagKind;
  /** A one-letter alias (`h` for `-h`). */
  readonly short?: string;
  /** What the value is, for usage text (`POINT`, `URL`). */
  readonly valueName?: string;
  /** One line for usage text. */
  readonly summary?: string;
  /** A `string` flag the command cannot do without (`image --at POINT`). */
  readonly required?: boolean;
}

/** Flags by long name, without the dashes (`"no-wait"`). */
export type FlagSpecs = { readonly [name: string]: FlagSpec };

/** The value type of each flag: `string | undefined`, `string[]` or `boolean`. */
export type FlagValues<S extends FlagSpecs> = {
  -readonly [K in keyof S]: S[K]["kind"] extends "boolean" ? boolean
    : S[K]["kind"] extends "list" ? string[]
    : S[K] extends { readonly required: true } ? string
    : string | undefined;
};

/** What {@link parseArgs} returns. */
export interface ParsedArgs<S extends FlagSpecs> {
  readonly flags: FlagValues<S>;
  readonly positionals: string[];
}

/**
 * Parses `argv` (without the program and command names) against the flags a command accepts.
 *
 * @example
 * ```ts
 * const specs = { at: { kind: "string" }, writable: { kind: "boolean" }, volume: { kind: "list" } } as const;
 * const { flags, positionals } = parseArgs(["db", "--at", "-5m", "--writable"], specs);
 * flags.at;       // "-5m"
 * flags.writable; // true
 * flags.volume;   // []
 * positionals;    // ["db"]
 * ```
 * @throws {UsageError} naming the flag: unknown, missing its value, given twice, required and
 * absent, or a boolean given a value other than `true` or `false`.
 */
export function parseArgs<S extends FlagSpecs>(argv: readonly string[], specs: S): ParsedArgs<S> {
  if (argv.length > cliLimits.argumentsMax) {
    throw new UsageError(`Too many arguments: ${argv.length}, at most ${cliLimits.argumentsMax}`);
  }
  const values: Record<string, string | string[] | boolean | undefined> = initialValues(specs);
  const seen = new Set<string>();
  const positionals: string[] = [];
  let index = 0;
  while (index < argv.length) {
    const token = argv[index];
    if (token.length > cliLimits.argumentCharsMax) {
      throw new UsageError(`Argument of ${token.length} characters is too long: at most ${cliLimits.argumentCharsMax}`);
    }
    index++;
    if (token === "--") {
      positionals.push(...argv.slice(index));
      break;
    }
    if (!isFlagToken(token)) {
      positionals.push(token);
      continue;
    }
    const { name, typed, inlineValue } = splitFlag(token, specs);
    const spec = specs[name];
    if (spec.kind === "boolean") {
      values[name] = inlineValue === undefined ? true : parseBooleanValue(typed, inlineValue);
      continue;
    }
    let value = inlineValue;
    if (value === undefined) {
      const next = argv[index];
      if (next === undefined || next.startsWith("--")) {
        const got = next === undefined ? "" : ` (got "${next}")`;
        throw new UsageError(`Flag ${typed} needs a value${spec.valueName ? ` ${spec.valueName}` : ""}${got}`, {
          flag: typed,
        });
      }
      value = next;
      index++;
    }
    if (spec.kind === "list") {
      (values[name] as string[]).push(value);
    } else {
      if (seen.has(name)) throw new UsageError(`Flag ${typed} is given twice`, { flag: typed });
      values[name] = value;
    }
    seen.add(name);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.required === true && values[name] === undefined) {
      throw new UsageError(`Missing flag --${name}${spec.valueName ? ` ${spec.valueName}` : ""}`, { flag: `--${name}` });
    }
  }
  return { flags: values as FlagValues<S>, positionals };
}

/** `--x`, `-x`; not `-` alone and not `-5m` (a relative POINT or a negative number). */
function isFlagToken(token: string): boolean {
  return token.startsWith("--") || /^-[A-Za-z]/.test(token);
}

function initialValues(specs: FlagSpecs): Record<string, string | string[] | boolean | undefined> {
  const values: Record<string, string | string[] | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    values[name] = spec.kind === "boolean" ? false : spec.kind === "list" ? [] : undefined;
  }
  return values;
}

function splitFlag(token: string, specs: FlagSpecs): { name: string; typed: string; inlineValue?: string } {
  const equals = token.indexOf("=");
  const typed = equals === -1 ? token : token.slice(0, equals);
  const inlineValue = equals === -1 ? undefined : token.slice(equals + 1);
  const name = typed.startsWith("--") ? typed.slice(2) : shortToLong(typed.slice(1), specs);
  if (name === undefined || !Object.hasOwn(specs, name)) {
    const suggestion = closest(typed.replace(/^-+/, ""), Object.keys(specs));
    throw new UsageError(
      `Unknown flag "${typed}"${suggestion === undefined ? "" : `: did you mean --${suggestion}?`}`,
      { flag: typed },
    );
  }
  return { name, typed, inlineValue };
}

function shortToLong(short: string, specs: FlagSpecs): string | undefined {
  return Object.entries(specs).find(([, spec]) => spec.short === short)?.[0];
}

function parseBooleanValue(typed: string, text: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw new UsageError(`Flag ${typed} takes no value or true or false, not "${text}"`, { flag: typed });
}

/**
 * The candidate nearest to `word` by edit distance, when it is near enough to be a typo
 * (at most a third of the word's letters, at least one).
 *
 * @example
 * ```ts
 * closest("snapshto", ["snapshot", "snapshots", "status"]); // "snapshot"
 * closest("xyz", ["status"]);                               // undefined
 * ```
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const distanceMax = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= distanceMax ? best : undefined;
}

/** Levenshtein distance, two rows. Words here are short (command and flag names). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}
