/**
 * The contract between the management surface (the Hono API in `app.ts`, and through it the
 * CLI) and whatever runs the product (`anytime serve`, `anytime appliance`, `anytime switch`,
 * or a test double). The JSON shapes are SPEC.md's ("HTTP management API"): scripts depend on
 * them, so every field here is documented and additions only ever add.
 *
 * Errors a control plane throws, and the HTTP status the API maps each to (one place:
 * `app.ts`'s `onError`):
 * - `SyntaxError`, `TypeError`, `RangeError` (bad argument, bad POINT) → 400
 * - {@link NotFoundError} (volume, snapshot, job) → 404
 * - {@link ConflictError} (name in use, job already running) → 409
 * - {@link PointUnavailableError} (outside the retained range, unknown snapshot) → 422
 * - {@link NotImplementedError} (a route a later release fills) → 501
 * - {@link UnavailableError} (the switch or appliance needed is not connected) → 503
 *
 * @module
 */
import { ConflictError, NotFoundError, PointUnavailableError } from "../appliance/errors.ts";

export { ConflictError, NotFoundError, PointUnavailableError };

/** A route or operation that exists but is filled by a later release. */
export class NotImplementedError extends Error {
  override name = "NotImplementedError";
}

/** The component the operation needs (switch, appliance, link) is not reachable now. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
}

/** A state of a volume as the API reports it (SPEC: `state`). */
export type VolumeState = "protecting" | "marking" | "resyncing" | "restoring" | "initializing" | "stopped";

/** A point in a volume's history: `time` is ISO-8601 UTC with up to microsecond digits. */
export interface PointJson {
  readonly seq: number;
  readonly time: string;
}

/** A resolved POINT as reported back to users: the exact record it landed on. */
export interface ResolvedPointJson extends PointJson {
  /** `write`, `baseline`, `snapshot`, `gap`, ... or `base` when only the base is included. */
  readonly landedOn: string;
}

/** An interval of the history (a gap, or a suspect interval). */
export interface IntervalJson {
  readonly from: PointJson;
  readonly to: PointJson;
  /** Why (a gap's reason: "marking mode", "switch restart", "link down"...). */
  readonly reason?: string;
}

/** `GET /v1/volumes/:vol` (and each element of `GET /v1/volumes`). */
export interface VolumeStatusJson {
  readonly name: string;
  /** Bytes. */
  readonly size: number;
  readonly state: VolumeState;
  /** The newest write durable on the appliance. */
  readonly head: PointJson;
  /** The range of points that open as images. */
  readonly window: { readonly from: PointJson; readonly to: PointJson };
  /**
   * Current RPO: age of the oldest write a host saw acknowledged that the appliance has not
   * made durable; exactly 0 when there is none.
   */
  readonly lagSeconds: number;
  readonly journalBytes: number;
  readonly suspect: readonly IntervalJson[];
  readonly gaps: readonly IntervalJson[];
  /** Additions (may be absent when the part that knows them is not in this process). */
  readonly writesIngested?: number;
  readonly bytesIngested?: number;
  readonly regionSize?: number;
  readonly dirtyRegions?: number;
  readonly snapshots?: number;
  /** True while the switch of the volume is connected to the appliance. */
  readonly linked?: boolean;
}

/** One entry of `GET /v1/volumes/:vol/timeline`: a marker in the write stream. */
export interface TimelineEntryJson extends PointJson {
  /** `snapshot`, `snapshotRemoved`, `gap`, `inSync`, `outOfSync`, `restore`, `primaryWriteError`, ... */
  readonly kind: string;
  /** The marker's details (`{name}` for a snapshot, `{reason, ...}` for a gap). */
  readonly detail: { readonly [key: string]: string | number | boolean | null };
}

/** `GET /v1/volumes/:vol/timeline`. */
export interface TimelineJson {
  readonly volume: string;
  readonly window: { readonly from: PointJson; readonly to: PointJson };
  readonly entries: readonly TimelineEntryJson[];
}

/** A snapshot (a marker; no data moved). */
export interface SnapshotJson extends PointJson {
  readonly name: string;
}

/** A retention policy (SPEC: `--window 48h --keep 24x1h,14x1d,8x1w`). */
export interface RetentionJson {
  /** The any-point window, as a duration (`48h`). */
  readonly window: string;
  /** The grid of retained points beyond it (`24x1h,14x1d,8x1w`), `""` for none. */
  readonly keep: string;
}

/** `POST /v1/volumes/:vol/images` → this. */
export interface ImageJson {
  /** `nbd://HOST:PORT/VOL@seq:N` (with `+rw` when writable): pinned to the resolved seq. */
  readonly uri: string;
  /** The NBD export name inside `uri`. */
  readonly export: string;
  readonly point: ResolvedPointJson;
  /** True when the point lies in a suspect interval: it opens, with a warning. */
  readonly suspect: boolean;
  readonly writable: boolean;
  /** A warning to show the user (suspect interval), absent when none. */
  readonly warning?: string;
}

/** An extent of the volume, bytes. */
export interface ExtentJson {
  readonly offset: number;
  readonly length: number;
}

/** `GET /v1/volumes/:vol/diff?from=&to=`. */
export interface DiffJson {
  readonly from: ResolvedPointJson;
  readonly to: ResolvedPointJson;
  readonly extents: readonly ExtentJson[];
  /** Sum of the extents' lengths. */
  readonly changedBytes: number;
}

/** Job states (SPEC). */
export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

/** `GET /v1/jobs/:id`. */
export interface JobJson {
  readonly id: string;
  readonly kind: "restore" | "resync";
  readonly volume: string;
  readonly state: JobState;
  /** 0 to 1. */
  readonly progress: number;
  readonly bytesMoved: number;
  /** Bytes the job expects to move in all (0 when not yet known). */
  readonly bytesTotal: number;
  /** Bytes per second over the last seconds, 0 when not running. */
  readonly rateBytesPerSecond: number;
  /** Seconds to go, absent when not known. */
  readonly etaSeconds?: number;
  readonly startedAt: string;
  readonly endedAt?: string;
  /** For a restore: the exact point restored to. */
  readonly point?: ResolvedPointJson;
  readonly error?: { readonly code: string; readonly message: string };
}

/** One Prometheus metric family. */
export interface MetricFamily {
  /** `anytime_volume_head_seq` (Prometheus naming: snake case, unit last). */
  readonly name: string;
  readonly help: string;
  readonly type: "gauge" | "counter";
  readonly samples: readonly { readonly labels: { readonly [key: string]: string }; readonly value: number }[];
}

/** What the process is and where it listens (`GET /v1/status` and the CLI's `status`). */
export interface ProcessJson {
  /** `serve`, `appliance` or `switch`. */
  readonly role: "serve" | "appliance" | "switch";
  readonly version: string;
  readonly runtime: string;
  readonly startedAt: string;
  /** `nbd://127.0.0.1:10809` when this process serves NBD. */
  readonly nbd?: string;
  /** Where switches connect (appliance), or the appliance connected to (switch). */
  readonly link?: string;
}

/** What the API asks of the running product. Every method may throw the errors above. */
export interface ControlPlane {
  process(): ProcessJson;
  volumes(): readonly VolumeStatusJson[];
  volume(name: string): VolumeStatusJson;
  timeline(name: string, options?: { from?: string; to?: string; limit?: number }): TimelineJson;
  snapshots(name: string): readonly SnapshotJson[];
  /** Resolves when the marker is durable on the appliance. */
  createSnapshot(name: string, snapshotName: string): Promise<SnapshotJson>;
  removeSnapshot(name: string, snapshotName: string): Promise<void>;
  retention(name: string): RetentionJson;
  setRetention(name: string, policy: Partial<RetentionJson>): Promise<RetentionJson>;
  /** Resolves the POINT now and returns an export pinned to it (no data copied). */
  openImage(name: string, options: { at: string; writable: boolean }): Promise<ImageJson>;
  diff(name: string, from: string, to: string): DiffJson;
  restore(name: string, options: { at: string; instant: boolean; full?: boolean; force?: boolean }): Promise<JobJson>;
  resync(name: string, options: { full: boolean }): Promise<JobJson>;
  jobs(): readonly JobJson[];
  job(id: string): JobJson;
  cancelJob(id: string): Promise<JobJson>;
  metrics(): readonly MetricFamily[];
}
