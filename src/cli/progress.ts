/**
 * Progress of long jobs (restore, resync): {@link renderProgress} draws one line from a job
 * (pure), {@link followJob} polls `GET /v1/jobs/:id` until the job ends and redraws it: in
 * place with `\r` on a terminal, a new line every few seconds otherwise (logs, CI), so a
 * redirected restore neither floods the log nor goes silent.
 *
 * @module
 */
import type { JobJson, JobState } from "../api/control_plane.ts";
import { assert } from "../core/assert.ts";
import { ApiError } from "./api_client.ts";
import { cliLimits } from "./cli_limits.ts";
import { formatBytes, formatDuration, formatPercent, formatRate } from "./format.ts";

/** States after which a job changes no more. */
export const JOB_STATES_FINAL: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);

/** What {@link renderProgress} needs besides the job. */
export interface RenderProgressOptions {
  /**
   * Terminal width: the bar shrinks, then the line is cut, to one less so a redraw never wraps.
   * Absent (a log file): the full bar, nothing cut.
   */
  readonly columns?: number;
  /** Rate measured by the caller, used when the job reports none. */
  readonly measuredBytesPerSecond?: number;
}

/** The bar never shrinks below this (a narrower terminal loses the line's tail instead). */
const progressBarColumnsMin = 10;

/**
 * One line: `restore db [#########...........]  45.0%  0.90 GiB / 2.00 GiB  120 MiB/s  ETA 7s`.
 *
 * @example
 * ```ts
 * const job = { id: "7", kind: "restore", volume: "db", state: "running", progress: 0.5, bytesMoved: 512,
 *   bytesTotal: 1024, rateBytesPerSecond: 256, startedAt: "2026-11-22T10:00:00Z" } as const;
 * renderProgress(job, {}); // "restore db [###############...............]  50.0%  512 B / 1.00 KiB  256 B/s  ETA 2s"
 * ```
 */
export function renderProgress(job: JobJson, options: RenderProgressOptions): string {
  const label = `${job.kind} ${job.volume}`;
  if (job.state === "queued") return fit(`${label} queued`, options.columns);
  const progress = Math.min(1, Math.max(0, Number.isFinite(job.progress) ? job.progress : 0));
  const moved = job.bytesTotal > 0
    ? `${formatBytes(job.bytesMoved)} / ${formatBytes(job.bytesTotal)}`
    : formatBytes(job.bytesMoved);
  const tail = [formatPercent(progress), moved];
  if (job.state === "running") {
    const rate = job.rateBytesPerSecond > 0 ? job.rateBytesPerSecond : (options.measuredBytesPerSecond ?? 0);
    tail.push(rate > 0 ? formatRate(rate) : "-- B/s", `ETA ${etaText(job, rate)}`);
  } else {
    tail.push(job.state);
  }
  const tailText = tail.join("  ");
  // "label [bar]  tail": the bar takes what the terminal leaves, within its bounds.
  const room = options.columns === undefined ? Infinity : options.columns - 1 - label.length - tailText.length - 5;
  const barColumns = Math.max(progressBarColumnsMin, Math.min(cliLimits.progressBarColumns, room));
  const filled = Math.floor(progress * barColumns);
  const bar = `[${"#".repeat(filled)}${".".repeat(barColumns - filled)}]`;
  return fit(`${label} ${bar}  ${tailText}`, options.columns);
}

function fit(line: string, columns: number | undefined): string {
  if (columns === undefined) return line;
  const columnsMax = Math.max(20, columns - 1);
  return line.length > columnsMax ? line.slice(0, columnsMax) : line;
}

function etaText(job: JobJson, rateBytesPerSecond: number): string {
  if (job.etaSeconds !== undefined) return formatDuration(Math.ceil(job.etaSeconds));
  if (rateBytesPerSecond > 0 && job.bytesTotal > 0) {
    return formatDuration(Math.ceil(Math.max(0, job.bytesTotal - job.bytesMoved) / rateBytesPerSecond));
  }
  return "?";
}

/** What {@link followJob} is given. */
export interface FollowJobDeps {
  /** The API (only `job(id)` is used). */
  readonly client: { job(id: string): Promise<JobJson> };
  sleep(ms: number): Promise<void>;
  nowMs(): number;
  /** Where progress goes (the CLI's stderr, so stdout stays for results). */
  write(text: string): void | Promise<void>;
  /** Whether `write` goes to a terminal: redraw in place, else a line now and then. */
  readonly isTty: boolean;
  readonly columns?: number;
}

/** How {@link followJob} polls and prints. */
export interface FollowJobOptions {
  readonly pollIntervalMs?: number;
  readonly lineIntervalMs?: number;
}

/** Samples kept to measure the rate: the last few polls, so the rate follows changes. */
const rateSamplesMax = 10;

/**
 * Polls a job until it is done, failed or cancelled, drawing its progress; returns the final
 * job. A poll that cannot reach the API (status 0 or 503, such as `serve` restarting) is
 * retried up to `cliLimits.jobPollFailuresMax` times in a row; any other refusal is thrown.
 *
 * @example
 * ```ts
 * const job = await client.restore("db", { at: "snap:before-upgrade", instant: false });
 * const final = await followJob(
 *   { client, sleep, nowMs, write: (text) => stderr(text), isTty: true },
 *   job,
 * );
 * final.state; // "done"
 * ```
 */
export async function followJob(deps: FollowJobDeps, job: JobJson, options: FollowJobOptions = {}): Promise<JobJson> {
  const pollIntervalMs = options.pollIntervalMs ?? cliLimits.jobPollIntervalMs;
  const lineIntervalMs = options.lineIntervalMs ?? cliLimits.progressLineIntervalMs;
  assert(pollIntervalMs > 0 && lineIntervalMs > 0, "Polling needs positive intervals");
  // Only a redraw in place must fit the terminal; a log line may be as long as it is.
  const columns = deps.isTty ? (deps.columns ?? cliLimits.terminalColumnsDefault) : undefined;
  const samples: { nowMs: number; bytesMoved: number }[] = [];
  let current = job;
  let drawnChars = 0;
  let lastLineMs = -Infinity;
  let lastState: JobState | undefined;
  let failures = 0;
  while (true) {
    const nowMs = deps.nowMs();
    samples.push({ nowMs, bytesMoved: current.bytesMoved });
    if (samples.length > rateSamplesMax) samples.shift();
    const line = renderProgress(current, { columns, measuredBytesPerSecond: measuredRate(samples) });
    const final = JOB_STATES_FINAL.has(current.state);
    if (deps.isTty) {
      await deps.write(`\r${line.padEnd(drawnChars)}${final ? "\n" : ""}`);
      drawnChars = line.length;
    } else if (final || current.state !== lastState || nowMs - lastLineMs >= lineIntervalMs) {
      await deps.write(`${line}\n`);
      lastLineMs = nowMs;
    }
    lastState = current.state;
    if (final) return current;
    await deps.sleep(pollIntervalMs);
    try {
      const next = await deps.client.job(current.id);
      assert(next.id === current.id, `Polled job "${current.id}" and got job "${next.id}"`);
      current = next;
      failures = 0;
    } catch (error) {
      const transient = error instanceof ApiError && (error.status === 0 || error.status === 503);
      failures++;
      if (!transient || failures > cliLimits.jobPollFailuresMax) {
        if (deps.isTty && drawnChars > 0) await deps.write("\n");
        throw error;
      }
    }
  }
}

/** Bytes per second over the samples kept; undefined until two samples apart in time. */
function measuredRate(samples: readonly { nowMs: number; bytesMoved: number }[]): number | undefined {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || last.nowMs <= first.nowMs) return undefined;
  return Math.max(0, last.bytesMoved - first.bytesMoved) / ((last.nowMs - first.nowMs) / 1000);
}
