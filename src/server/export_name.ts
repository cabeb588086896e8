/**
 * NBD export names (SPEC.md, "NBD"): `VOL` is the protected volume itself, served read-write
 * by the switch; `VOL@POINT` is the read-only image of the volume at POINT; `VOL@POINT+rw` is
 * that image under a throw-away writable overlay. POINT is any form of SPEC.md "Points in
 * time" (`seq:N`, `snap:NAME`, an ISO-8601 time with a zone, `-5m`, `now` / `head`).
 *
 * The grammar is unambiguous because a volume name never holds `@` or `+`
 * ({@link checkVolumeName}) and a snapshot name never holds `@` or `+`; the one `+` a POINT
 * may hold is a time zone (`2026-11-22T10:14:03+01:00`), which is never followed by `rw`.
 * Parsing is pure: whether the volume exists and the point is retained is decided when the
 * export is opened.
 *
 * @example
 * ```ts
 * import { formatExportName, parseExportName } from "./export_name.ts";
 *
 * parseExportName("db");                        // { kind: "volume", volumeName: "db" }
 * parseExportName("db@snap:before-upgrade+rw"); // { kind: "image", volumeName: "db", point: { kind: "snapshot", ... }, writable: true, ... }
 * formatExportName({ volumeName: "db", point: "seq:12", writable: true }); // "db@seq:12+rw"
 * ```
 *
 * @module
 */
import { checkVolumeName } from "../appliance/appliance.ts";
import { formatPoint, parsePoint, type Point } from "../core/point.ts";
import { formatTimeUs } from "../core/units.ts";
import { nbdLimits } from "../nbd/nbd_limits.ts";

/** Separates the volume name from the POINT. */
export const EXPORT_POINT_SEPARATOR = "@";
/** Ends the name of a writable scratch image. */
export const EXPORT_WRITABLE_SUFFIX = "+rw";

/** A parsed export name. */
export type ExportName =
  | { readonly kind: "volume"; readonly volumeName: string }
  | {
    readonly kind: "image";
    readonly volumeName: string;
    readonly point: Point;
    /** The POINT as the client wrote it (for messages). */
    readonly pointText: string;
    /** `+rw`: a writable overlay over the read-only image. */
    readonly writable: boolean;
  };

/** What {@link formatExportName} builds a name from. */
export interface ExportNameParts {
  readonly volumeName: string;
  /** Absent: the volume itself. Text is checked with {@link parsePoint} and kept as written. */
  readonly point?: Point | string;
  readonly writable?: boolean;
}

/**
 * Parses an export name.
 *
 * @example
 * ```ts
 * import { parseExportName } from "./export_name.ts";
 *
 * const name = parseExportName("db@2026-11-22T10:14:03.123Z");
 * name.kind === "image" && name.point.kind === "time"; // true
 * ```
 * @throws {SyntaxError} quoting the name and saying what is wrong: empty or too long, white
 *   space or control characters, a bad volume name, an empty or bad POINT, `+rw` without a
 *   POINT, or a suffix other than `+rw`.
 */
export function parseExportName(text: string): ExportName {
  const fail = (why: string): never => {
    throw new SyntaxError(`Cannot parse export name "${text}": ${why}`);
  };
  if (text.length === 0) fail("it is empty; use VOL, VOL@POINT or VOL@POINT+rw");
  if (new TextEncoder().encode(text).length > nbdLimits.exportNameBytesMax) {
    fail(`it is longer than ${nbdLimits.exportNameBytesMax} bytes`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(text)) fail("it holds white space or a control character");
  const at = text.indexOf(EXPORT_POINT_SEPARATOR);
  const volumeName = at < 0 ? text : text.slice(0, at);
  if (at < 0 && text.endsWith(EXPORT_WRITABLE_SUFFIX)) {
    fail(`"${EXPORT_WRITABLE_SUFFIX}" needs a POINT (the volume itself is writable already); use VOL@POINT+rw`);
  }
  if (volumeName.length === 0) fail("the volume name before '@' is empty");
  try {
    checkVolumeName(volumeName);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    fail(error.message);
  }
  if (at < 0) return { kind: "volume", volumeName };

  let pointText = text.slice(at + 1);
  const writable = pointText.endsWith(EXPORT_WRITABLE_SUFFIX);
  if (writable) pointText = pointText.slice(0, -EXPORT_WRITABLE_SUFFIX.length);
  else {
    const suffix = /\+([A-Za-z][A-Za-z0-9]*)$/.exec(pointText);
    if (suffix !== null) fail(`unknown suffix "+${suffix[1]}"; the only suffix is "${EXPORT_WRITABLE_SUFFIX}"`);
  }
  if (pointText.length === 0) fail("the POINT after '@' is empty; use seq:N, snap:NAME, an ISO-8601 time, -5m or head");
  let point: Point;
  try {
    point = parsePoint(pointText);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return fail(error.message);
  }
  return { kind: "image", volumeName, point, pointText, writable };
}

/**
 * Formats an export name; the inverse of {@link parseExportName}.
 *
 * @example
 * ```ts
 * import { formatExportName } from "./export_name.ts";
 *
 * formatExportName({ volumeName: "db" });                                  // "db"
 * formatExportName({ volumeName: "db", point: { kind: "seq", seq: 42 } }); // "db@seq:42"
 * formatExportName({ volumeName: "db", point: "snap:nightly", writable: true }); // "db@snap:nightly+rw"
 * ```
 * @throws {SyntaxError} for a bad volume name or POINT text.
 * @throws {TypeError} for `writable` without a point.
 */
export function formatExportName(parts: ExportNameParts): string {
  checkVolumeName(parts.volumeName);
  if (parts.point === undefined) {
    if (parts.writable) {
      throw new TypeError(`Cannot name a writable image of volume "${parts.volumeName}" without a point`);
    }
    return parts.volumeName;
  }
  let pointText: string;
  if (typeof parts.point === "string") {
    parsePoint(parts.point); // throws a SyntaxError that quotes the text
    pointText = parts.point.trim();
  } else {
    pointText = canonicalPoint(parts.point);
  }
  const name = `${parts.volumeName}${EXPORT_POINT_SEPARATOR}${pointText}${parts.writable ? EXPORT_WRITABLE_SUFFIX : ""}`;
  parseExportName(name); // a name this module formats always parses back (length, spaces)
  return name;
}

/** A point's text; times keep their microseconds (`formatPoint` keeps milliseconds). */
function canonicalPoint(point: Point): string {
  return point.kind === "time" ? formatTimeUs(point.timeUs) : formatPoint(point);
}
