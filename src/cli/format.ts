/**
 * Human output of the CLI: tables and one-screen summaries of the API's JSON that read well in
 * a terminal. Pure functions of the JSON and a time zone (injected, so tests are
 * deterministic); every time is shown in local time and, in brackets, as the exact UTC string
 * the API gave, which can be pasted back as a POINT.
 *
 * @module
 */
import type {
  DiffJson,
  ImageJson,
  IntervalJson,
  JobJson,
  PointJson,
  ProcessJson,
  RetentionJson,
  SnapshotJson,
  TimelineJson,
  VolumeStatusJson,
} from "../api/control_plane.ts";
import { formatBytes, parseTimeUs } from "../core/units.ts";

export { formatBytes };

/** Options every formatter with times takes. */
export interface FormatOptions {
  /** IANA time zone for local times (`Europe/Berlin`, `UTC`). */
  readonly timeZone: string;
}

/**
 * A duration for people: `0s`, `250ms`, `45s`, `2m 5s`, `2h 5m`, `3d 4h`.
 *
 * @example
 * ```ts
 * formatDuration(7500); // "2h 5m"
 * formatDuration(0.25); // "250ms"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 0) return `-${formatDuration(-seconds)}`;
  if (seconds === 0) return "0s";
  if (seconds < 1) return `${Math.max(1, Math.round(seconds * 1000))}ms`;
  if (seconds < 10 && !Number.isInteger(seconds)) return `${(Math.floor(seconds * 10) / 10).toFixed(1)}s`;
  const whole = Math.floor(seconds);
  const steps: readonly [number, string, number, string][] = [
    [86_400, "d", 3_600, "h"],
    [3_600, "h", 60, "m"],
    [60, "m", 1, "s"],
  ];
  for (const [bigSeconds, bigUnit, smallSeconds, smallUnit] of steps) {
    if (whole >= bigSeconds) {
      const big = Math.floor(whole / bigSeconds);
      const small = Math.floor((whole % bigSeconds) / smallSeconds);
      return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`;
    }
  }
  return `${whole}s`;
}

/**
 * A rate for people.
 *
 * @example
 * ```ts
 * formatRate(120 * 1024 * 1024); // "120 MiB/s"
 * ```
 */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

// One formatter per time zone: building an Intl.DateTimeFormat costs far more than using one.
const localFormatters = new Map<string, Intl.DateTimeFormat>();
const localFormattersMax = 16;

function localFormatter(timeZone: string): Intl.DateTimeFormat {
  let formatter = localFormatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "longOffset",
    });
    if (localFormatters.size >= localFormattersMax) localFormatters.clear();
    localFormatters.set(timeZone, formatter);
  }
  return formatter;
}

/**
 * An API time (ISO-8601 UTC) in local time with its offset: `2026-11-22 11:14:03 +01:00`.
 * Text that is not a time comes back as it is.
 *
 * @example
 * ```ts
 * formatLocalTime("2026-11-22T10:14:03.123456Z", { timeZone: "Europe/Berlin" }); // "2026-11-22 11:14:03 +01:00"
 * ```
 */
export function formatLocalTime(iso: string, options: FormatOptions): string {
  const timeUs = timeUsOf(iso);
  if (timeUs === undefined) return iso;
  const parts: Record<string, string> = {};
  for (const part of localFormatter(options.timeZone).formatToParts(new Date(Math.floor(timeUs / 1000)))) {
    parts[part.type] = part.value;
  }
  const offset = parts.timeZoneName === "GMT" ? "+00:00" : (parts.timeZoneName ?? "").replace(/^GMT/, "");
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${offset}`;
}

/**
 * Local time and the exact UTC time: `2026-11-22 11:14:03 +01:00 (2026-11-22T10:14:03.123456Z)`.
 *
 * @example
 * ```ts
 * formatTime("2026-11-22T10:14:03Z", { timeZone: "UTC" }); // "2026-11-22 10:14:03 +00:00 (2026-11-22T10:14:03Z)"
 * ```
 */
export function formatTime(iso: string, options: FormatOptions): string {
  return `${formatLocalTime(iso, options)} (${iso})`;
}

/**
 * A point as users paste it back, with its time: `seq:812 at 2026-11-22 11:14:03 +01:00 (...Z)`.
 *
 * @example
 * ```ts
 * formatPointAt({ seq: 812, time: "2026-11-22T10:14:03Z" }, { timeZone: "UTC" });
 * // "seq:812 at 2026-11-22 10:14:03 +00:00 (2026-11-22T10:14:03Z)"
 * ```
 */
export function formatPointAt(point: PointJson, options: FormatOptions): string {
  return `seq:${point.seq} at ${formatTime(point.time, options)}`;
}

/**
 * Columns padded to their widest cell, two spaces apart, no trailing spaces.
 *
 * @example
 * ```ts
 * renderTable(["NAME", "STATE"], [["db", "protecting"]]); // "NAME  STATE\ndb    protecting\n"
 * ```
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]))).join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].map((text) => `${text}\n`).join("");
}

/**
 * Label/value lines, labels padded to the widest. A field whose label is `""` is a line of its
 * own, indented under the one before (the intervals under "Gaps").
 */
function renderFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) =>
    label === "" ? `    ${value}\n` : `  ${label.padEnd(width)}  ${value}`.trimEnd() + "\n"
  ).join("");
}

/**
 * `GET /v1/volumes` as a table: name, state, size, window from → to, lag, journal, notes.
 *
 * @example
 * ```ts
 * formatVolumesTable([], { timeZone: "UTC" }); // "No volumes are protected.\n"
 * ```
 */
export function formatVolumesTable(volumes: readonly VolumeStatusJson[], options: FormatOptions): string {
  if (volumes.length === 0) return "No volumes are protected.\n";
  const rows = volumes.map((volume) => [
    volume.name,
    volume.state,
    formatBytes(volume.size),
    formatWindowShort(volume.window, options),
    formatDuration(volume.lagSeconds),
    formatBytes(volume.journalBytes),
    volumeNotes(volume),
  ]);
  return renderTable(["NAME", "STATE", "SIZE", `WINDOW (${options.timeZone})`, "LAG", "JOURNAL", "NOTES"], rows);
}

/** `2026-11-22 09:00:00 → 11:14:03 (2h 14m)`: the date once when both ends share it. */
function formatWindowShort(window: VolumeStatusJson["window"], options: FormatOptions): string {
  const from = formatLocalTime(window.from.time, options);
  const to = formatLocalTime(window.to.time, options);
  const sameDay = from.slice(0, 10) === to.slice(0, 10) && from.slice(19) === to.slice(19);
  const fromShort = from.slice(0, 19);
  const toShort = sameDay ? to.slice(11, 19) : to.slice(0, 19);
  return `${fromShort} → ${toShort} (${formatSpan(window.from.time, window.to.time)})`;
}

function volumeNotes(volume: VolumeStatusJson): string {
  const notes: string[] = [];
  if (volume.linked === false) notes.push("switch not linked");
  if (volume.gaps.length > 0) notes.push(plural(volume.gaps.length, "gap"));
  if (volume.suspect.length > 0) notes.push(`${plural(volume.suspect.length, "suspect interval")}`);
  if (volume.dirtyRegions !== undefined && volume.dirtyRegions > 0) {
    notes.push(`${plural(volume.dirtyRegions, "dirty region")}`);
  }
  return notes.join(", ");
}

/**
 * One screen about a volume: state, protected window (local and UTC), lag (RPO), journal use,
 * snapshots, dirty region log, gaps and suspect intervals.
 *
 * @example
 * ```ts
 * const text = formatVolumeStatus(volume, { timeZone: "Europe/Berlin" });
 * ```
 */
export function formatVolumeStatus(volume: VolumeStatusJson, options: FormatOptions): string {
  const linked = volume.linked === undefined ? "" : volume.linked ? ", switch linked" : ", switch NOT linked";
  const zone = isUtc(options.timeZone) ? "Times in UTC." : `Times in ${options.timeZone}, UTC in brackets.`;
  const header = `Volume ${volume.name}: ${volume.state}, ${formatBytes(volume.size)}${linked}\n${zone}\n\n`;
  const fields: [string, string][] = [
    ["Head", pointCell(volume.head, options)],
    ["Window from", pointCell(volume.window.from, options)],
    ["Window to", pointCell(volume.window.to, options)],
    ["Window span", formatSpan(volume.window.from.time, volume.window.to.time)],
    ["Lag (RPO)", volume.lagSeconds === 0 ? "0s (every acknowledged write is durable)" : `${formatDuration(volume.lagSeconds)} behind`],
    ["Journal", journalText(volume)],
    ["Snapshots", volume.snapshots === undefined ? "not known here" : String(volume.snapshots)],
    ["DRL dirty", dirtyText(volume)],
    ["Gaps", volume.gaps.length === 0 ? "none" : String(volume.gaps.length)],
    ...intervalFields(volume.gaps, options),
    ["Suspect", volume.suspect.length === 0 ? "none" : `${volume.suspect.length} (images inside open with a warning)`],
    ...intervalFields(volume.suspect, options),
  ];
  return header + renderFields(fields);
}

function isUtc(timeZone: string): boolean {
  return ["UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu"].includes(timeZone);
}

function pointCell(point: PointJson, options: FormatOptions): string {
  return `${`seq:${point.seq}`.padEnd(12)}${formatTime(point.time, options)}`;
}

function journalText(volume: VolumeStatusJson): string {
  const details: string[] = [];
  if (volume.writesIngested !== undefined) details.push(plural(volume.writesIngested, "write"));
  if (volume.bytesIngested !== undefined) details.push(`${formatBytes(volume.bytesIngested)} written`);
  return details.length === 0 ? formatBytes(volume.journalBytes) : `${formatBytes(volume.journalBytes)} (${details.join(", ")})`;
}

function dirtyText(volume: VolumeStatusJson): string {
  if (volume.dirtyRegions === undefined) return "not known here (the switch reports it)";
  if (volume.regionSize === undefined) return plural(volume.dirtyRegions, "region");
  const bytes = volume.dirtyRegions * volume.regionSize;
  return `${plural(volume.dirtyRegions, "region")} of ${formatBytes(volume.regionSize)} (${formatBytes(bytes)} to resync)`;
}

function intervalFields(intervals: readonly IntervalJson[], options: FormatOptions): [string, string][] {
  return intervals.map((interval) => {
    const reason = interval.reason === undefined ? "" : `  ${interval.reason}`;
    return ["", `seq:${interval.from.seq} .. seq:${interval.to.seq}  ` +
      `${formatLocalTime(interval.from.time, options)} → ${formatLocalTime(interval.to.time, options)}  ` +
      `(${formatSpan(interval.from.time, interval.to.time)})${reason}`];
  });
}

/**
 * What the process is: `GET /v1/status`.
 *
 * @example
 * ```ts
 * formatProcess({ role: "serve", version: "0.1.0", runtime: "node 22", startedAt: "2026-11-22T10:00:00Z" }, { timeZone: "UTC" });
 * ```
 */
export function formatProcess(info: ProcessJson, options: FormatOptions): string {
  const listens = [info.nbd === undefined ? "" : `NBD ${info.nbd}`, info.link === undefined ? "" : `link ${info.link}`]
    .filter((text) => text !== "").join(", ");
  return `anytime ${info.role} ${info.version} on ${info.runtime}, up since ${formatTime(info.startedAt, options)}` +
    `${listens === "" ? "" : `\n${listens}`}\n`;
}

/**
 * `GET /v1/volumes/:vol/snapshots` as a table.
 *
 * @example
 * ```ts
 * formatSnapshotsTable("db", [{ name: "nightly", seq: 12, time: "2026-11-22T10:00:00Z" }], { timeZone: "UTC" });
 * ```
 */
export function formatSnapshotsTable(volume: string, snapshots: readonly SnapshotJson[], options: FormatOptions): string {
  if (snapshots.length === 0) return `No snapshots of ${volume}.\n`;
  const rows = snapshots.map((snapshot) => [
    snapshot.name,
    `seq:${snapshot.seq}`,
    formatLocalTime(snapshot.time, options),
    snapshot.time,
  ]);
  return renderTable(["NAME", "SEQ", `TIME (${options.timeZone})`, "UTC"], rows);
}

/**
 * `GET /v1/volumes/:vol/diff` as a summary and the first extents.
 *
 * @example
 * ```ts
 * formatDiff("db", diff, { timeZone: "UTC", extentsShownMax: 20 });
 * ```
 */
export function formatDiff(volume: string, diff: DiffJson, options: FormatOptions & { extentsShownMax: number }): string {
  let text = `${volume}: ${plural(diff.extents.length, "extent")} differ, ${formatBytes(diff.changedBytes)} changed\n` +
    `  from ${formatPointAt(diff.from, options)}\n` +
    `  to   ${formatPointAt(diff.to, options)}\n`;
  if (diff.extents.length === 0) return text;
  const shown = diff.extents.slice(0, options.extentsShownMax);
  text += "\n" + renderTable(
    ["OFFSET", "LENGTH", "OFFSET (HUMAN)", "LENGTH (HUMAN)"],
    shown.map((extent) => [String(extent.offset), String(extent.length), formatBytes(extent.offset), formatBytes(extent.length)]),
  );
  const hidden = diff.extents.length - shown.length;
  if (hidden > 0) text += `... and ${plural(hidden, "more extent")} (--limit N shows more, --json all)\n`;
  return text;
}

/**
 * `GET /v1/volumes/:vol/timeline`: the window, then each marker.
 *
 * @example
 * ```ts
 * formatTimeline(timeline, { timeZone: "Europe/Berlin" });
 * ```
 */
export function formatTimeline(timeline: TimelineJson, options: FormatOptions): string {
  const window = timeline.window;
  let text = `Timeline of ${timeline.volume}: window seq:${window.from.seq} → seq:${window.to.seq}` +
    ` (${formatSpan(window.from.time, window.to.time)})\n`;
  if (timeline.entries.length === 0) return `${text}No markers in the window.\n`;
  const rows = timeline.entries.map((entry) => [
    `seq:${entry.seq}`,
    formatLocalTime(entry.time, options),
    entry.time,
    entry.kind,
    formatDetail(entry.detail),
  ]);
  return text + "\n" + renderTable(["SEQ", `TIME (${options.timeZone})`, "UTC", "KIND", "DETAIL"], rows);
}

function formatDetail(detail: TimelineJson["entries"][number]["detail"]): string {
  return Object.entries(detail ?? {}).map(([key, value]) => {
    const shown = typeof value === "string" && /^[\w.:@+-]+$/.test(value) ? value : JSON.stringify(value);
    return `${key}=${shown}`;
  }).join(" ");
}

/**
 * A retention policy.
 *
 * @example
 * ```ts
 * formatRetention("db", { window: "48h", keep: "24x1h,14x1d" });
 * // "Retention of db:\n  Any point  48h\n  Keep       24 x 1h, 14 x 1d\n"
 * ```
 */
export function formatRetention(volume: string, retention: RetentionJson): string {
  const keep = retention.keep === "" ? "nothing beyond the window" : retention.keep.split(",").map((entry) => entry.replace("x", " x ")).join(", ");
  return `Retention of ${volume}:\n` + renderFields([["Any point", retention.window], ["Keep", keep]]);
}

/**
 * What `image` says on stderr: the exact point and any warning (the URI goes to stdout alone).
 *
 * @example
 * ```ts
 * formatImageNote("db", image, { timeZone: "UTC" });
 * ```
 */
export function formatImageNote(volume: string, image: ImageJson, options: FormatOptions): string {
  const mode = image.writable ? "writable scratch image (writes go to a throw-away overlay)" : "read-only image";
  let text = `${volume} as of ${formatPointAt(image.point, options)}, ${mode}\n`;
  if (image.suspect) text += `Warning: ${image.warning ?? "the point lies in a suspect interval: data may be inconsistent"}\n`;
  else if (image.warning !== undefined) text += `Warning: ${image.warning}\n`;
  return text;
}

/**
 * One line about a job: `job 7: restore db, running 45% (0.90 GiB of 2.00 GiB)`.
 *
 * @example
 * ```ts
 * formatJobLine(job, { timeZone: "UTC" });
 * ```
 */
export function formatJobLine(job: JobJson, options: FormatOptions): string {
  const head = `job ${job.id}: ${job.kind} ${job.volume}, ${job.state}`;
  const target = job.point === undefined ? "" : ` to ${formatPointAt(job.point, options)}`;
  switch (job.state) {
    case "queued":
      return `${head}${target}`;
    case "running": {
      const total = job.bytesTotal > 0 ? ` of ${formatBytes(job.bytesTotal)}` : "";
      return `${head} ${formatPercent(job.progress)} (${formatBytes(job.bytesMoved)}${total})${target}`;
    }
    case "done":
      return `${head}, ${formatBytes(job.bytesMoved)} moved${elapsedText(job)}${target}`;
    case "failed":
      return `${head}: ${job.error?.message ?? "no reason given"}${job.error === undefined ? "" : ` (${job.error.code})`}`;
    case "cancelled":
      return `${head} after ${formatBytes(job.bytesMoved)}`;
  }
}

function elapsedText(job: JobJson): string {
  if (job.endedAt === undefined) return "";
  const started = timeUsOf(job.startedAt);
  const ended = timeUsOf(job.endedAt);
  return started === undefined || ended === undefined ? "" : ` in ${formatDuration((ended - started) / 1e6)}`;
}

/**
 * `GET /v1/jobs` as a table.
 *
 * @example
 * ```ts
 * formatJobsTable([], { timeZone: "UTC" }); // "No jobs.\n"
 * ```
 */
export function formatJobsTable(jobs: readonly JobJson[], options: FormatOptions): string {
  if (jobs.length === 0) return "No jobs.\n";
  const rows = jobs.map((job) => [
    job.id,
    job.kind,
    job.volume,
    job.state,
    formatPercent(job.progress),
    formatBytes(job.bytesMoved),
    formatLocalTime(job.startedAt, options),
    job.state === "failed" ? (job.error?.message ?? "") : job.point === undefined ? "" : `to seq:${job.point.seq}`,
  ]);
  return renderTable(["ID", "KIND", "VOLUME", "STATE", "DONE", "MOVED", `STARTED (${options.timeZone})`, "NOTE"], rows);
}

/**
 * A job in full (`anytime job ID`).
 *
 * @example
 * ```ts
 * formatJob(job, { timeZone: "Europe/Berlin" });
 * ```
 */
export function formatJob(job: JobJson, options: FormatOptions): string {
  const fields: [string, string][] = [
    ["State", job.state],
    ["Progress", `${formatPercent(job.progress)} (${formatBytes(job.bytesMoved)}${job.bytesTotal > 0 ? ` of ${formatBytes(job.bytesTotal)}` : ""})`],
  ];
  if (job.state === "running") {
    fields.push(["Rate", formatRate(job.rateBytesPerSecond)]);
    if (job.etaSeconds !== undefined) fields.push(["ETA", formatDuration(job.etaSeconds)]);
  }
  if (job.point !== undefined) fields.push(["Point", formatPointAt(job.point, options)]);
  fields.push(["Started", formatTime(job.startedAt, options)]);
  if (job.endedAt !== undefined) fields.push(["Ended", formatTime(job.endedAt, options)]);
  if (job.error !== undefined) fields.push(["Error", `${job.error.message} (${job.error.code})`]);
  return `Job ${job.id}: ${job.kind} of ${job.volume}\n` + renderFields(fields);
}

/**
 * A job's progress (0 to 1) as a percentage; never 100% before the job says 1.
 *
 * @example
 * ```ts
 * formatPercent(0.9999); // "99.9%"
 * ```
 */
export function formatPercent(progress: number): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(progress) ? progress : 0));
  const tenths = clamped < 1 ? Math.min(999, Math.floor(clamped * 1000)) : 1000;
  return `${(tenths / 10).toFixed(1)}%`;
}

/** `2h 14m` between two API times; `?` when one is not a time. */
function formatSpan(fromIso: string, toIso: string): string {
  const from = timeUsOf(fromIso);
  const to = timeUsOf(toIso);
  return from === undefined || to === undefined ? "?" : formatDuration((to - from) / 1e6);
}

function timeUsOf(iso: string): number | undefined {
  try {
    return parseTimeUs(iso);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
