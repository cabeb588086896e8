/**
 * The client commands (SPEC.md, "Command line"): what each accepts and what it does. Each
 * command is one leaf: it calls the API, then prints either the API's JSON (`--json`) or the
 * human form from `format.ts`. `main.ts` does the parsing, the connection and the exit codes.
 *
 * Output contract: results go to stdout, notes and progress to stderr, so `$(anytime image
 * ...)` and `$(anytime restore ... --no-wait)` capture only the URI or the job id.
 *
 * @module
 */
import type { JobJson, RetentionJson } from "../api/control_plane.ts";
import type { ApiClient } from "./api_client.ts";
import { type FlagSpecs, type FlagValues, UsageError } from "./args.ts";
import { cliLimits } from "./cli_limits.ts";
import {
  formatBytes,
  formatDiff,
  formatImageNote,
  formatJob,
  formatJobLine,
  formatJobsTable,
  formatPointAt,
  formatProcess,
  formatRetention,
  formatSnapshotsTable,
  formatTimeline,
  formatVolumesTable,
  formatVolumeStatus,
  type FormatOptions,
} from "./format.ts";
import { followJob } from "./progress.ts";

/** Flags every client command takes. */
export const globalFlags = {
  json: { kind: "boolean", summary: "print the API's JSON (parseable) instead of text" },
  api: { kind: "string", valueName: "URL", summary: "the API (default ANYTIME_API or http://127.0.0.1:7380)" },
  token: { kind: "string", valueName: "TOKEN", summary: "bearer token (default ANYTIME_TOKEN)" },
  "token-file": { kind: "string", valueName: "F", summary: "read the bearer token from F (default ANYTIME_TOKEN_FILE)" },
  help: { kind: "boolean", short: "h", summary: "show this command's usage" },
} as const satisfies FlagSpecs;

/** What a command's `run` gets. */
export interface CommandContext<S extends FlagSpecs> {
  readonly client: ApiClient;
  readonly flags: FlagValues<S & typeof globalFlags>;
  /** The positionals, checked against the command's `arguments`. */
  readonly positionals: readonly string[];
  readonly format: FormatOptions;
  out(text: string): Promise<void>;
  err(text: string): Promise<void>;
  /** For waiting on jobs. */
  readonly sleep: (ms: number) => Promise<void>;
  readonly nowMs: () => number;
  readonly isTty: boolean;
  readonly columns?: number;
}

/** A client command. */
export interface Command<S extends FlagSpecs = FlagSpecs> {
  /** `snapshot`, or `snapshot rm` for a subcommand. */
  readonly name: string;
  /** Positionals in order; a trailing `?` marks an optional one (`VOL?`). */
  readonly arguments: readonly string[];
  /** Flags besides {@link globalFlags}. */
  readonly flags: S;
  /** One line for `anytime help`. */
  readonly summary: string;
  /** The exit code. */
  run(context: CommandContext<S>): Promise<number>;
}

function command<S extends FlagSpecs>(spec: Command<S>): Command {
  return spec as unknown as Command;
}

/** JSON for `--json`: indented, one trailing newline. */
function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function limitFlag(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value > cliLimits.listLimitMax) {
    throw new UsageError(`Cannot use --limit "${text}": expected a whole number from 0 to ${cliLimits.listLimitMax}`, {
      flag: "--limit",
    });
  }
  return value;
}

const status = command({
  name: "status",
  arguments: ["VOL?"],
  flags: {},
  summary: "state, protected window, lag (RPO), journal use, gaps and suspect intervals",
  async run({ client, positionals, flags, format, out }) {
    const volume = positionals[0];
    if (volume !== undefined) {
      const status = await client.volume(volume);
      await out(flags.json ? json(status) : formatVolumeStatus(status, format));
      return 0;
    }
    const [processInfo, list] = await Promise.all([client.process(), client.volumes()]);
    await out(
      flags.json
        ? json({ process: processInfo, volumes: list.volumes })
        : `${formatProcess(processInfo, format)}\n${formatVolumesTable(list.volumes, format)}`,
    );
    return 0;
  },
});

const volumes = command({
  name: "volumes",
  arguments: [],
  flags: {},
  summary: "the protected volumes: state, size, window, lag, journal",
  async run({ client, flags, format, out }) {
    const list = await client.volumes();
    await out(flags.json ? json(list) : formatVolumesTable(list.volumes, format));
    return 0;
  },
});

const snapshot = command({
  name: "snapshot",
  arguments: ["VOL", "NAME"],
  flags: {},
  summary: "marks the current point as NAME (no data moved)",
  async run({ client, positionals: [volume, name], flags, format, out }) {
    const created = await client.createSnapshot(volume, name);
    await out(
      flags.json ? json(created) : `Snapshot "${created.name}" of ${volume}: ${formatPointAt(created, format)}\n` +
        `Open it with: anytime image ${volume} --at snap:${created.name}\n`,
    );
    return 0;
  },
});

const snapshotRemove = command({
  name: "snapshot rm",
  arguments: ["VOL", "NAME"],
  flags: {},
  summary: "removes the snapshot marker NAME (the journal keeps the point while it is retained)",
  async run({ client, positionals: [volume, name], flags, out }) {
    await client.removeSnapshot(volume, name);
    await out(flags.json ? json({ volume, name, removed: true }) : `Removed snapshot "${name}" of ${volume}.\n`);
    return 0;
  },
});

const snapshots = command({
  name: "snapshots",
  arguments: ["VOL"],
  flags: {},
  summary: "lists the snapshots of VOL",
  async run({ client, positionals: [volume], flags, format, out }) {
    const list = await client.snapshots(volume);
    await out(flags.json ? json(list) : formatSnapshotsTable(volume, list.snapshots, format));
    return 0;
  },
});

const image = command({
  name: "image",
  arguments: ["VOL"],
  flags: {
    at: { kind: "string", required: true, valueName: "POINT", summary: "the point (seq:N, snap:NAME, -5m, ISO time, now)" },
    writable: { kind: "boolean", summary: "a scratch image whose writes go to a throw-away overlay" },
  },
  summary: "prints an nbd:// URI serving VOL as it was at POINT (stdout: the URI only)",
  async run({ client, positionals: [volume], flags, format, out, err }) {
    const opened = await client.openImage(volume, { at: flags.at, writable: flags.writable });
    if (flags.json) {
      await out(json(opened));
      return 0;
    }
    await out(`${opened.uri}\n`);
    await err(formatImageNote(volume, opened, format));
    return 0;
  },
});

const diff = command({
  name: "diff",
  arguments: ["VOL"],
  flags: {
    from: { kind: "string", required: true, valueName: "POINT", summary: "the older point" },
    to: { kind: "string", required: true, valueName: "POINT", summary: "the newer point" },
    limit: { kind: "string", valueName: "N", summary: `extents to list (default ${cliLimits.diffExtentsShownDefault})` },
  },
  summary: "extents that differ between two points",
  async run({ client, positionals: [volume], flags, format, out }) {
    const extentsShownMax = limitFlag(flags.limit, cliLimits.diffExtentsShownDefault);
    const result = await client.diff(volume, { from: flags.from, to: flags.to });
    await out(flags.json ? json(result) : formatDiff(volume, result, { ...format, extentsShownMax }));
    return 0;
  },
});

const restore = command({
  name: "restore",
  arguments: ["VOL"],
  flags: {
    at: { kind: "string", required: true, valueName: "POINT", summary: "the point to put the volume back to" },
    instant: { kind: "boolean", summary: "serve the volume at POINT at once, copy in the background" },
    "no-wait": { kind: "boolean", summary: "print the job id and return; follow with `anytime job ID`" },
    full: { kind: "boolean", summary: "copy every block (a replaced primary), not only those written since POINT" },
    force: { kind: "boolean", summary: "go ahead where the appliance would refuse the restore as unsafe" },
  },
  summary: "puts VOL back to POINT on the primary, with a progress bar",
  async run(context) {
    const { client, positionals: [volume], flags } = context;
    const at = flags.at;
    const job = await client.restore(volume, { at, instant: flags.instant, full: flags.full, force: flags.force });
    const target = (current: JobJson) =>
      current.point === undefined ? `"${at}"` : formatPointAt(current.point, context.format);
    return await startedJob(context, job, {
      noWait: flags["no-wait"],
      startedText: `Restoring ${volume} to ${target(job)}`,
      doneText: (final) => `Restored ${volume} to ${target(final)}\n`,
    });
  },
});

const resync = command({
  name: "resync",
  arguments: ["VOL"],
  flags: {
    full: { kind: "boolean", summary: "re-baseline: copy the whole volume, not only dirty regions" },
    "no-wait": { kind: "boolean", summary: "print the job id and return; follow with `anytime job ID`" },
  },
  summary: "re-synchronization (DRL-guided) or, with --full, re-baseline",
  async run(context) {
    const { client, positionals: [volume], flags } = context;
    const job = await client.resync(volume, { full: flags.full });
    const what = flags.full ? "Re-baselin" : "Resynchroniz";
    return await startedJob(context, job, {
      noWait: flags["no-wait"],
      startedText: `${what}ing ${volume}`,
      doneText: (final) => `${what}ed ${volume}: ${formatBytes(final.bytesMoved)} copied\n`,
    });
  },
});

/**
 * After a restore or resync started: return at once (`--no-wait`: the job id on stdout), or
 * follow the job with progress on stderr and say how it ended.
 */
async function startedJob(
  context: CommandContext<{ json: { kind: "boolean" } }>,
  job: JobJson,
  texts: { noWait: boolean; startedText: string; doneText: (final: JobJson) => string },
): Promise<number> {
  const { flags, out, err } = context;
  if (texts.noWait) {
    await out(flags.json ? json(job) : `${job.id}\n`);
    if (!flags.json) await err(`${texts.startedText}: job ${job.id}. Follow it with: anytime job ${job.id}\n`);
    return 0;
  }
  if (!flags.json) {
    await err(`${texts.startedText}: job ${job.id}; Ctrl-C stops watching, not the job (anytime job cancel ${job.id})\n`);
  }
  const final = await followJob({
    client: context.client,
    sleep: context.sleep,
    nowMs: context.nowMs,
    write: flags.json ? () => {} : err,
    isTty: context.isTty,
    columns: context.columns,
  }, job);
  if (flags.json) await out(json(final));
  if (final.state === "done") {
    if (!flags.json) await out(texts.doneText(final));
    return 0;
  }
  const reason = final.state === "failed"
    ? `failed: ${final.error?.message ?? "no reason given"}${final.error === undefined ? "" : ` (${final.error.code})`}`
    : "was cancelled";
  await err(`anytime: ${final.kind} job ${final.id} of ${final.volume} ${reason}\n`);
  return 1;
}

const retention = command({
  name: "retention",
  arguments: ["VOL"],
  flags: {
    window: { kind: "string", valueName: "DURATION", summary: "the any-point window (48h)" },
    keep: { kind: "string", valueName: "GRID", summary: 'retained points beyond it (24x1h,14x1d,8x1w; "" for none)' },
  },
  summary: "shows the retention policy, or sets it with --window and --keep",
  async run({ client, positionals: [volume], flags, out }) {
    const change: { -readonly [K in keyof RetentionJson]?: string } = {};
    if (flags.window !== undefined) change.window = flags.window;
    if (flags.keep !== undefined) change.keep = flags.keep;
    const changing = Object.keys(change).length > 0;
    const policy = changing ? await client.setRetention(volume, change) : await client.retention(volume);
    await out(flags.json ? json(policy) : `${changing ? "Set. " : ""}${formatRetention(volume, policy)}`);
    return 0;
  },
});

const timeline = command({
  name: "timeline",
  arguments: ["VOL"],
  flags: {
    from: { kind: "string", valueName: "POINT", summary: "entries from this point" },
    to: { kind: "string", valueName: "POINT", summary: "entries up to this point" },
    limit: { kind: "string", valueName: "N", summary: "entries at most (default: the server's)" },
  },
  summary: "markers in the write stream: snapshots, gaps, restores, sync changes",
  async run({ client, positionals: [volume], flags, format, out }) {
    const limit = flags.limit === undefined ? undefined : limitFlag(flags.limit, 0);
    const result = await client.timeline(volume, { from: flags.from, to: flags.to, limit });
    await out(flags.json ? json(result) : formatTimeline(result, format));
    return 0;
  },
});

const jobs = command({
  name: "jobs",
  arguments: [],
  flags: {},
  summary: "restore and resync jobs",
  async run({ client, flags, format, out }) {
    const list = await client.jobs();
    await out(flags.json ? json(list) : formatJobsTable(list.jobs, format));
    return 0;
  },
});

const job = command({
  name: "job",
  arguments: ["ID"],
  flags: {},
  summary: "one job in full",
  async run({ client, positionals: [id], flags, format, out }) {
    const found = await client.job(id);
    await out(flags.json ? json(found) : formatJob(found, format));
    return 0;
  },
});

const jobCancel = command({
  name: "job cancel",
  arguments: ["ID"],
  flags: {},
  summary: "cancels a job",
  async run({ client, positionals: [id], flags, format, out }) {
    const cancelled = await client.cancelJob(id);
    await out(flags.json ? json(cancelled) : `Cancel requested: ${formatJobLine(cancelled, format)}\n`);
    return 0;
  },
});

/** Every client command, in the order `anytime help` lists them. */
export const commands: readonly Command[] = [
  status,
  volumes,
  snapshot,
  snapshots,
  snapshotRemove,
  image,
  diff,
  restore,
  resync,
  retention,
  timeline,
  jobs,
  job,
  jobCancel,
];
