/**
 * Every limit of the management API in one place (TigerBeetle: "put a limit on everything").
 * Relations between them are asserted at load.
 *
 * @example
 * ```ts
 * import { apiLimits } from "./api_limits.ts";
 * const bodyBytesMax = apiLimits.bodyBytesMaxDefault; // 64 KiB
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";

export const apiLimits = {
  /**
   * Request body bytes, by default: every body the API takes is a small JSON object (the
   * largest, a retention policy, is well under 1 KiB). Checked against `Content-Length`
   * before anything is read, and counted while a body without one streams in.
   */
  bodyBytesMaxDefault: 64 * 1024,
  /** The most a caller of `createApp` may raise the body limit to. */
  bodyBytesMaxCeiling: 16 * 1024 * 1024,
  /** Volume names in paths (a volume's name is also its NBD export name, at most 4096 bytes). */
  volumeNameBytesMax: 4096,
  /** Snapshot names, as the engine accepts them. */
  snapshotNameBytesMax: limits.snapshotNameBytesMax,
  /** Job identifiers in paths. */
  jobIdBytesMax: 256,
  /** POINT text (`seq:N`, `snap:NAME`, an ISO-8601 time, `-5m`...). */
  pointTextBytesMax: 512,
  /** Retention fields (`48h`, `24x1h,14x1d,8x1w`). */
  retentionTextBytesMax: 1024,
  /** Entries one timeline request may ask for. */
  timelineEntriesMax: limits.timelineMarkersMax,
  /** Bearer token bytes accepted in an `Authorization` header (longer is refused unread). */
  tokenBytesMax: 1024,
} as const;

assert(apiLimits.bodyBytesMaxDefault <= apiLimits.bodyBytesMaxCeiling, "The default body limit is under the ceiling");
assert(
  apiLimits.bodyBytesMaxDefault >= 4 * (apiLimits.pointTextBytesMax + apiLimits.retentionTextBytesMax),
  "The largest valid body fits the default body limit",
);
assert(apiLimits.snapshotNameBytesMax + 5 <= apiLimits.pointTextBytesMax, "A snap:NAME point fits the point limit");
