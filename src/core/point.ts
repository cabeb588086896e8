/**
 * POINT: how users name a state of a volume (SPEC.md, "Points in time"). Parsing is pure;
 * resolving a point against a volume's history is the appliance's job.
 */
import { limits } from "./limits.ts";
import { parseDurationUs, parseTimeUs } from "./units.ts";

/** A parsed POINT, not yet resolved against a volume. */
export type Point =
  | { readonly kind: "head" }
  | { readonly kind: "seq"; readonly seq: number }
  | { readonly kind: "time"; readonly timeUs: number }
  | { readonly kind: "relative"; readonly agoUs: number }
  | { readonly kind: "snapshot"; readonly name: string };

/** A valid snapshot name: letters, digits and `._-:`, 1 to 200 bytes, not starting with `-`. */
export const SNAPSHOT_NAME_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.:-]*$/;

/**
 * Checks a snapshot name.
 *
 * @throws {SyntaxError} when the name is empty, too long or has other characters.
 */
export function checkSnapshotName(name: string): string {
  if (name.length === 0 || name.length > limits.snapshotNameBytesMax || !SNAPSHOT_NAME_PATTERN.test(name)) {
    throw new SyntaxError(
      `Cannot use snapshot name "${name}": use 1 to ${limits.snapshotNameBytesMax} letters, digits, '.', '_', ':' or '-'`,
    );
  }
  return name;
}

/**
 * Parses a POINT: `now`/`head`, `seq:N`, `snap:NAME`, `-90s`/`-5m`/`-2h`/`-1d`, or an
 * ISO-8601 time with a zone.
 *
 * @example
 * ```ts
 * parsePoint("seq:12345"); // { kind: "seq", seq: 12345 }
 * parsePoint("-5m");       // { kind: "relative", agoUs: 300000000 }
 * ```
 * @throws {SyntaxError} with a message that quotes the text and says what was expected.
 */
export function parsePoint(text: string): Point {
  const trimmed = text.trim();
  if (trimmed === "now" || trimmed === "head") return { kind: "head" };
  if (trimmed.startsWith("seq:")) {
    const digits = trimmed.slice(4);
    const seq = Number(digits);
    if (!/^\d+$/.test(digits) || !Number.isSafeInteger(seq)) {
      throw new SyntaxError(`Cannot parse point "${text}": "${digits}" is not a sequence number`);
    }
    return { kind: "seq", seq };
  }
  if (trimmed.startsWith("snap:")) {
    try {
      return { kind: "snapshot", name: checkSnapshotName(trimmed.slice(5)) };
    } catch (error) {
      throw new SyntaxError(`Cannot parse point "${text}": ${(error as Error).message}`);
    }
  }
  if (trimmed.startsWith("-")) {
    try {
      return { kind: "relative", agoUs: parseDurationUs(trimmed.slice(1)) };
    } catch {
      throw new SyntaxError(`Cannot parse point "${text}": expected a duration such as -90s, -5m, -2h or -1d`);
    }
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(trimmed)) {
    try {
      return { kind: "time", timeUs: parseTimeUs(trimmed) };
    } catch (error) {
      throw new SyntaxError(`Cannot parse point "${text}": ${(error as Error).message}`);
    }
  }
  throw new SyntaxError(
    `Cannot parse point "${text}": expected now, head, seq:N, snap:NAME, -5m or an ISO-8601 time with a zone`,
  );
}

/** Formats a parsed point back to its canonical text. */
export function formatPoint(point: Point): string {
  switch (point.kind) {
    case "head":
      return "head";
    case "seq":
      return `seq:${point.seq}`;
    case "snapshot":
      return `snap:${point.name}`;
    case "relative":
      return `-${point.agoUs / 1_000_000}s`;
    case "time":
      return new Date(point.timeUs / 1000).toISOString();
  }
}
