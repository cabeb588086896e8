/**
 * Parsing and formatting of the units users type: sizes (`1GiB`), durations (`90s`, `48h`)
 * and times (ISO-8601 with microseconds). Pure functions, no I/O.
 */

const sizeUnits: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  K: 1024,
  KB: 1000,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1000 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1000 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1000 ** 4,
  TIB: 1024 ** 4,
};

/**
 * Parses a size such as `64MiB`, `1GiB`, `512`, `1.5G` into bytes.
 *
 * @example
 * ```ts
 * parseSizeBytes("64MiB"); // 67108864
 * ```
 * @throws {SyntaxError} when the text is not a size.
 */
export function parseSizeBytes(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match === null ? undefined : sizeUnits[match[2].toUpperCase()];
  if (match === null || unit === undefined) {
    throw new SyntaxError(`Cannot parse size "${text}": expected a number and a unit such as 64MiB or 1GiB`);
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`Cannot use size "${text}": too large`);
  return bytes;
}

/** Formats bytes for people: `1.5 GiB`, `512 B`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

const durationUnitsUs: Readonly<Record<string, number>> = {
  us: 1,
  ms: 1_000,
  s: 1_000_000,
  m: 60_000_000,
  h: 3_600_000_000,
  d: 86_400_000_000,
  w: 604_800_000_000,
};

/**
 * Parses a duration such as `90s`, `5m`, `48h`, `1d`, `2w` into microseconds.
 *
 * @example
 * ```ts
 * parseDurationUs("5m"); // 300000000
 * ```
 * @throws {SyntaxError} when the text is not a duration.
 */
export function parseDurationUs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)$/.exec(text.trim());
  if (match === null) {
    throw new SyntaxError(`Cannot parse duration "${text}": expected a number and one of us, ms, s, m, h, d, w`);
  }
  return Math.round(Number(match[1]) * durationUnitsUs[match[2]]);
}

/**
 * Parses an ISO-8601 time with a zone into microseconds since the epoch, keeping up to six
 * fractional digits (Date.parse keeps only milliseconds).
 *
 * @example
 * ```ts
 * parseTimeUs("2026-11-22T10:14:03.123456Z"); // 1795342443123456
 * ```
 * @throws {SyntaxError} when the text is not an ISO-8601 time with a zone.
 */
export function parseTimeUs(text: string): number {
  const match =
    /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/i.exec(text.trim());
  if (match === null) {
    throw new SyntaxError(
      `Cannot parse time "${text}": expected ISO-8601 with a zone, such as 2026-11-22T10:14:03.123Z`,
    );
  }
  const wholeMs = Date.parse(`${match[1]}${match[3].toUpperCase()}`);
  if (Number.isNaN(wholeMs)) throw new SyntaxError(`Cannot parse time "${text}": not a valid date`);
  const fractionUs = match[2] === undefined ? 0 : Math.floor(Number(`0.${match[2]}`) * 1_000_000 + 1e-6);
  return wholeMs * 1000 + fractionUs;
}

/**
 * Formats microseconds since the epoch as ISO-8601 UTC with microsecond digits
 * (`2026-11-22T10:14:03.123456Z`).
 */
export function formatTimeUs(timeUs: number): string {
  const wholeMs = Math.floor(timeUs / 1000);
  const iso = new Date(wholeMs).toISOString(); // ...SS.mmmZ
  const microDigits = String(Math.floor(timeUs - wholeMs * 1000)).padStart(3, "0");
  return `${iso.slice(0, -1)}${microDigits}Z`;
}
