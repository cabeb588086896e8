/**
 * Proves the CLI's argument parser: every flag form (`--x v`, `--x=v`, booleans, repeated
 * lists), positionals and `--`, relative POINTs as values (`--at -5m`), and that every mistake
 * is a UsageError naming the flag (with a suggestion for a typo), never a silent default.
 */
import { describe, expect, it } from "vitest";
import { closest, parseArgs, UsageError } from "../../src/cli/args.ts";

const specs = {
  at: { kind: "string", valueName: "POINT" },
  api: { kind: "string" },
  writable: { kind: "boolean" },
  "no-wait": { kind: "boolean" },
  volume: { kind: "list" },
  help: { kind: "boolean", short: "h" },
} as const;

function usageErrorOf(run: () => unknown): UsageError {
  try {
    run();
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error("Expected a UsageError");
}

describe("parseArgs", () => {
  it("reads a value after the flag or after '='", () => {
    expect(parseArgs(["--at", "seq:12"], specs).flags.at).toBe("seq:12");
    expect(parseArgs(["--at=seq:12"], specs).flags.at).toBe("seq:12");
    expect(parseArgs(["--at=a=b"], specs).flags.at).toBe("a=b");
    expect(parseArgs(["--at="], specs).flags.at).toBe("");
  });

  it("takes a relative POINT starting with '-' as the flag's value", () => {
    expect(parseArgs(["--at", "-5m"], specs).flags.at).toBe("-5m");
    expect(parseArgs(["--at", "-1d", "db"], specs)).toEqual({
      flags: { at: "-1d", api: undefined, writable: false, "no-wait": false, volume: [], help: false },
      positionals: ["db"],
    });
  });

  it("sets booleans, also as --flag=true and --flag=false", () => {
    expect(parseArgs(["--writable"], specs).flags.writable).toBe(true);
    expect(parseArgs([], specs).flags.writable).toBe(false);
    expect(parseArgs(["--writable=false"], specs).flags.writable).toBe(false);
    expect(parseArgs(["--no-wait=true"], specs).flags["no-wait"]).toBe(true);
  });

  it("collects a repeated list flag in order", () => {
    const { flags } = parseArgs(["--volume", "db=/dev/sdb", "--volume=logs=/var/logs.img:1GiB"], specs);
    expect(flags.volume).toEqual(["db=/dev/sdb", "logs=/var/logs.img:1GiB"]);
  });

  it("keeps positionals in order around flags, and everything after '--'", () => {
    const { positionals, flags } = parseArgs(["db", "--writable", "nightly", "--", "--at", "-x"], specs);
    expect(positionals).toEqual(["db", "nightly", "--at", "-x"]);
    expect(flags.at).toBeUndefined();
  });

  it("takes '-' alone and negative numbers as positionals", () => {
    expect(parseArgs(["-", "-5"], specs).positionals).toEqual(["-", "-5"]);
  });

  it("knows short aliases", () => {
    expect(parseArgs(["-h"], specs).flags.help).toBe(true);
  });

  it("refuses an unknown flag, naming it and suggesting the near one", () => {
    const error = usageErrorOf(() => parseArgs(["--writeable"], specs));
    expect(error.flag).toBe("--writeable");
    expect(error.message).toBe('Unknown flag "--writeable": did you mean --writable?');
    expect(usageErrorOf(() => parseArgs(["--zzz"], specs)).message).toBe('Unknown flag "--zzz"');
    expect(usageErrorOf(() => parseArgs(["-x"], specs)).flag).toBe("-x");
  });

  it("refuses a missing value, also when the next argument is a flag", () => {
    expect(usageErrorOf(() => parseArgs(["--at"], specs)).message).toBe("Flag --at needs a value POINT");
    const error = usageErrorOf(() => parseArgs(["--at", "--writable"], specs));
    expect(error.message).toBe('Flag --at needs a value POINT (got "--writable")');
    expect(error.flag).toBe("--at");
  });

  it("refuses a single-value flag given twice", () => {
    expect(usageErrorOf(() => parseArgs(["--at", "a", "--at=b"], specs)).message).toBe("Flag --at is given twice");
  });

  it("refuses a boolean given a value other than true or false", () => {
    expect(usageErrorOf(() => parseArgs(["--writable=yes"], specs)).message).toBe(
      'Flag --writable takes no value or true or false, not "yes"',
    );
  });

  it("refuses a missing required flag", () => {
    const required = { at: { kind: "string", required: true, valueName: "POINT" } } as const;
    const error = usageErrorOf(() => parseArgs(["db"], required));
    expect(error.message).toBe("Missing flag --at POINT");
    expect(error.flag).toBe("--at");
    const parsed: string = parseArgs(["--at", "now"], required).flags.at;
    expect(parsed).toBe("now");
  });

  it("puts a limit on the number of arguments", () => {
    expect(() => parseArgs(Array.from({ length: 5000 }, () => "x"), specs)).toThrow(UsageError);
  });
});

describe("closest", () => {
  it("suggests a near word, not a far one", () => {
    expect(closest("snapshto", ["snapshot", "snapshots", "status"])).toBe("snapshot");
    expect(closest("restor", ["restore", "resync"])).toBe("restore");
    expect(closest("xyz", ["status"])).toBeUndefined();
  });
});
