/**
 * Long operations (restore, resync) as jobs the API reports on (SPEC: `GET /v1/jobs/:id` →
 * `{id, kind, state, progress, bytesMoved, error?}`) and can cancel. A job's work is a function
 * given a {@link JobHandle} to report through; the registry keeps the newest
 * `serverLimits.jobsKeptMax` jobs (finished ones go first).
 *
 * Rate and ETA come from the bytes moved over the last seconds (a sliding pair of samples),
 * so a stall shows as a falling rate, not a frozen one.
 *
 * @example
 * ```ts
 * // const job = jobs.start({ kind: "restore", volume: "db" }, async (handle) => { handle.report({ bytesMoved, bytesTotal }); });
 * ```
 *
 * @module
 */
import { type JobJson, NotFoundError, type ResolvedPointJson } from "../api/control_plane.ts";
import { serverLimits } from "../core/limits.ts";
import { formatTimeUs } from "../core/units.ts";
import type { Clock } from "../io/clock.ts";

/** What a job's work reports through. */
export interface JobHandle {
  readonly id: string;
  report(progress: { bytesMoved: number; bytesTotal: number }): void;
  /** The exact point a restore puts the volume at (reported in the job). */
  setPoint(point: ResolvedPointJson): void;
  /** True once cancel was asked; the work stops at its next chance and returns. */
  readonly cancelRequested: boolean;
  /** True when the cancel comes from the process stopping (a restore then suspends, to resume at the next start). */
  readonly stopping: boolean;
  /** Called once when cancel is asked (the work's own stop). */
  onCancel(stop: () => void): void;
}

/** The outcome a job's work returns: `cancelled` when it stopped early on request. */
export type JobOutcome = "done" | "cancelled";

class Job implements JobHandle {
  readonly id: string;
  readonly kind: "restore" | "resync";
  readonly volume: string;
  readonly startedUs: number;
  state: JobJson["state"] = "running";
  bytesMoved = 0;
  bytesTotal = 0;
  endedUs: number | undefined;
  point: ResolvedPointJson | undefined;
  error: { code: string; message: string } | undefined;
  cancelRequested = false;
  stopping = false;
  #stop: (() => void) | null = null;
  /** Two samples for the rate: older and newer (µs, bytes). */
  #sample = { timeUs: 0, bytes: 0, previousTimeUs: 0, previousBytes: 0 };
  readonly #clock: Clock;

  constructor(clock: Clock, id: string, kind: "restore" | "resync", volume: string) {
    this.#clock = clock;
    this.id = id;
    this.kind = kind;
    this.volume = volume;
    this.startedUs = clock.nowUs();
    this.#sample = { timeUs: this.startedUs, bytes: 0, previousTimeUs: this.startedUs, previousBytes: 0 };
  }

  report(progress: { bytesMoved: number; bytesTotal: number }): void {
    this.bytesMoved = progress.bytesMoved;
    this.bytesTotal = progress.bytesTotal;
    const nowUs = this.#clock.nowUs();
    if (nowUs - this.#sample.timeUs >= serverLimits.jobRateWindowUs) {
      this.#sample = { previousTimeUs: this.#sample.timeUs, previousBytes: this.#sample.bytes, timeUs: nowUs, bytes: progress.bytesMoved };
    }
  }

  setPoint(point: ResolvedPointJson): void {
    this.point = point;
  }

  onCancel(stop: () => void): void {
    this.#stop = stop;
    if (this.cancelRequested) stop();
  }

  requestCancel(stopping = false): void {
    if (this.state !== "running" && this.state !== "queued") return;
    this.cancelRequested = true;
    this.stopping = stopping;
    this.#stop?.();
  }

  json(): JobJson {
    const nowUs = this.#clock.nowUs();
    const running = this.state === "running";
    const spanUs = nowUs - this.#sample.previousTimeUs;
    const rate = running && spanUs > 0 ? (this.bytesMoved - this.#sample.previousBytes) / (spanUs / 1e6) : 0;
    const remaining = this.bytesTotal - this.bytesMoved;
    const progress = this.state === "done" ? 1 : this.bytesTotal === 0 ? 0 : Math.min(1, this.bytesMoved / this.bytesTotal);
    return {
      id: this.id,
      kind: this.kind,
      volume: this.volume,
      state: this.state,
      progress,
      bytesMoved: this.bytesMoved,
      bytesTotal: this.bytesTotal,
      rateBytesPerSecond: Math.max(0, rate),
      ...(running && rate > 0 ? { etaSeconds: remaining / rate } : {}),
      startedAt: formatTimeUs(this.startedUs),
      ...(this.endedUs !== undefined ? { endedAt: formatTimeUs(this.endedUs) } : {}),
      ...(this.point !== undefined ? { point: this.point } : {}),
      ...(this.error !== undefined ? { error: this.error } : {}),
    };
  }
}

/** The jobs one process runs. */
export class Jobs {
  readonly #clock: Clock;
  readonly #jobs = new Map<string, Job>();
  #counter = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /**
   * Starts `work` as a job and returns it as JSON once `ready` (the work's first phase, which
   * may refuse: then the job is not kept and the error is thrown to the caller).
   */
  async start(
    what: { kind: "restore" | "resync"; volume: string },
    work: (handle: JobHandle, ready: () => void) => Promise<JobOutcome>,
  ): Promise<JobJson> {
    this.#counter++;
    const job = new Job(this.#clock, `${what.kind}-${this.#counter}`, what.kind, what.volume);
    let markReady!: () => void;
    const readyPromise = new Promise<void>((resolve) => (markReady = resolve));
    const running = work(job, markReady);
    // A refusal before `ready` rejects here: the caller's error, and no job is kept.
    await Promise.race([readyPromise, running]);
    this.#keep(job);
    running.then(
      (outcome) => {
        job.state = outcome === "cancelled" ? "cancelled" : "done";
        job.endedUs = this.#clock.nowUs();
      },
      (error) => {
        job.state = "failed";
        job.endedUs = this.#clock.nowUs();
        job.error = { code: (error as Error).name ?? "Error", message: (error as Error).message ?? String(error) };
      },
    );
    return job.json();
  }

  list(): JobJson[] {
    return [...this.#jobs.values()].map((job) => job.json());
  }

  get(id: string): JobJson {
    return this.#job(id).json();
  }

  /** Asks a job to stop; returns it as it is now. */
  cancel(id: string): JobJson {
    const job = this.#job(id);
    job.requestCancel();
    return job.json();
  }

  /** Whether a job of a volume is running (one restore or resync per volume at a time). */
  runningFor(volume: string): JobJson | undefined {
    for (const job of this.#jobs.values()) if (job.volume === volume && job.state === "running") return job.json();
    return undefined;
  }

  /** Cancels every running job (as the process stopping: restores suspend) and waits until each has ended. */
  async stopAll(): Promise<void> {
    const running = [...this.#jobs.values()].filter((job) => job.state === "running");
    for (const job of running) job.requestCancel(true);
    for (let turn = 0; turn < 1000 && running.some((job) => job.state === "running"); turn++) await this.#clock.sleep(10);
  }

  #job(id: string): Job {
    const job = this.#jobs.get(id);
    if (job === undefined) throw new NotFoundError(`Job "${id}" does not exist; jobs: ${[...this.#jobs.keys()].join(", ") || "none"}`);
    return job;
  }

  #keep(job: Job): void {
    this.#jobs.set(job.id, job);
    while (this.#jobs.size > serverLimits.jobsKeptMax) {
      const oldestEnded = [...this.#jobs.values()].find((j) => j.state !== "running");
      if (oldestEnded === undefined) break;
      this.#jobs.delete(oldestEnded.id);
    }
  }
}
