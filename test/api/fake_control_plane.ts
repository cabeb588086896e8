/**
 * An in-memory {@link ControlPlane} for the API tests: two volumes (`db`, linked, with a
 * snapshot, a gap and a suspect interval; `logs`, whose switch is not connected), a finished
 * resync job, and the error classes of control_plane.ts thrown where the real product would
 * throw them. POINTs parse with the core's `parsePoint` (so a malformed one is its
 * SyntaxError) and resolve against a window of seqs 100 to `head`.
 *
 * Every call is recorded in `calls`, so tests can check what the API passed on; `failNext`
 * makes the next call throw whatever a test wants (a plain Error for the 500 path).
 */
import {
  ConflictError,
  type ControlPlane,
  type DiffJson,
  type ImageJson,
  type JobJson,
  type MetricFamily,
  NotFoundError,
  NotImplementedError,
  PointUnavailableError,
  type ProcessJson,
  type ResolvedPointJson,
  type RetentionJson,
  type SnapshotJson,
  type TimelineEntryJson,
  type TimelineJson,
  UnavailableError,
  type VolumeStatusJson,
} from "../../src/api/control_plane.ts";
import { parsePoint } from "../../src/core/point.ts";
import { parseDurationUs } from "../../src/core/units.ts";

/** Seq `n` happened at this time plus n seconds. */
const epochMs = Date.parse("2026-11-22T10:00:00.000Z");

/** The time of seq `seq`, as the API reports it. */
export function timeOfSeq(seq: number): string {
  return new Date(epochMs + seq * 1000).toISOString();
}

interface FakeVolume {
  name: string;
  sizeBytes: number;
  head: number;
  windowFromSeq: number;
  linked: boolean;
  snapshots: Map<string, number>;
  retention: RetentionJson;
  /** Seqs inside a suspect interval (from, to]. */
  suspect: { fromSeq: number; toSeq: number };
}

/** A recorded call: the method's name and its arguments. */
export interface FakeCall {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** Options of {@link FakeControlPlane}. */
export interface FakeControlPlaneOptions {
  /** When false, restore throws NotImplementedError (the state of the product today). */
  restoreImplemented?: boolean;
}

export class FakeControlPlane implements ControlPlane {
  readonly calls: FakeCall[] = [];
  /** Thrown by the next call (then cleared). */
  failNext: unknown = undefined;
  readonly restoreImplemented: boolean;
  readonly #volumes = new Map<string, FakeVolume>();
  readonly #jobs = new Map<string, JobJson>();
  #jobsCreated = 1;

  constructor(options: FakeControlPlaneOptions = {}) {
    this.restoreImplemented = options.restoreImplemented ?? true;
    this.#volumes.set("db", {
      name: "db",
      sizeBytes: 1024 * 1024 * 1024,
      head: 812,
      windowFromSeq: 100,
      linked: true,
      snapshots: new Map([["before-upgrade", 500]]),
      retention: { window: "48h", keep: "24x1h,14x1d,8x1w" },
      suspect: { fromSeq: 300, toSeq: 320 },
    });
    this.#volumes.set("logs", {
      name: "logs",
      sizeBytes: 64 * 1024 * 1024,
      head: 150,
      windowFromSeq: 100,
      linked: false,
      snapshots: new Map(),
      retention: { window: "24h", keep: "" },
      suspect: { fromSeq: 0, toSeq: 0 },
    });
    this.#jobs.set("job-1", {
      id: "job-1",
      kind: "resync",
      volume: "db",
      state: "done",
      progress: 1,
      bytesMoved: 4096,
      bytesTotal: 4096,
      rateBytesPerSecond: 0,
      startedAt: timeOfSeq(10),
      endedAt: timeOfSeq(11),
    });
  }

  process(): ProcessJson {
    this.#enter("process", []);
    return {
      role: "serve",
      version: "0.1.0",
      runtime: "test",
      startedAt: timeOfSeq(0),
      nbd: "nbd://127.0.0.1:10809",
    };
  }

  volumes(): readonly VolumeStatusJson[] {
    this.#enter("volumes", []);
    return [...this.#volumes.values()].map((volume) => this.#status(volume));
  }

  volume(name: string): VolumeStatusJson {
    this.#enter("volume", [name]);
    return this.#status(this.#volume(name));
  }

  timeline(name: string, options: { from?: string; to?: string; limit?: number } = {}): TimelineJson {
    this.#enter("timeline", [name, options]);
    const volume = this.#volume(name);
    const from = options.from === undefined ? volume.windowFromSeq : this.#resolve(volume, options.from).seq;
    const to = options.to === undefined ? volume.head : this.#resolve(volume, options.to).seq;
    const markers: TimelineEntryJson[] = [
      { seq: 300, time: timeOfSeq(300), kind: "gap", detail: { reason: "link down" } },
      { seq: 320, time: timeOfSeq(320), kind: "inSync", detail: {} },
      ...[...volume.snapshots].map(([snapshot, seq]) => ({
        seq,
        time: timeOfSeq(seq),
        kind: "snapshot",
        detail: { name: snapshot },
      })),
    ];
    const entries = markers
      .filter((entry) => entry.seq >= from && entry.seq <= to)
      .sort((left, right) => left.seq - right.seq)
      .slice(0, options.limit ?? Number.POSITIVE_INFINITY);
    return { volume: name, window: this.#window(volume), entries };
  }

  snapshots(name: string): readonly SnapshotJson[] {
    this.#enter("snapshots", [name]);
    return [...this.#volume(name).snapshots].map(([snapshot, seq]) => ({ name: snapshot, seq, time: timeOfSeq(seq) }));
  }

  async createSnapshot(name: string, snapshotName: string): Promise<SnapshotJson> {
    this.#enter("createSnapshot", [name, snapshotName]);
    const volume = this.#volume(name);
    if (volume.snapshots.has(snapshotName)) {
      throw new ConflictError(`Snapshot "${snapshotName}" of volume "${name}" already exists`);
    }
    volume.head += 1;
    volume.snapshots.set(snapshotName, volume.head);
    return { name: snapshotName, seq: volume.head, time: timeOfSeq(volume.head) };
  }

  async removeSnapshot(name: string, snapshotName: string): Promise<void> {
    this.#enter("removeSnapshot", [name, snapshotName]);
    const volume = this.#volume(name);
    if (!volume.snapshots.delete(snapshotName)) {
      throw new NotFoundError(`Snapshot "${snapshotName}" of volume "${name}" does not exist`);
    }
  }

  retention(name: string): RetentionJson {
    this.#enter("retention", [name]);
    return this.#volume(name).retention;
  }

  async setRetention(name: string, policy: Partial<RetentionJson>): Promise<RetentionJson> {
    this.#enter("setRetention", [name, policy]);
    const volume = this.#volume(name);
    if (policy.window !== undefined) {
      try {
        parseDurationUs(policy.window);
      } catch {
        throw new SyntaxError(`Cannot parse window "${policy.window}": expected a duration such as 48h`);
      }
    }
    volume.retention = { ...volume.retention, ...policy };
    return volume.retention;
  }

  async openImage(name: string, options: { at: string; writable: boolean }): Promise<ImageJson> {
    this.#enter("openImage", [name, options]);
    const volume = this.#volume(name);
    const point = this.#resolve(volume, options.at);
    const exportName = `${name}@seq:${point.seq}${options.writable ? "+rw" : ""}`;
    const suspect = point.seq > volume.suspect.fromSeq && point.seq <= volume.suspect.toSeq;
    return {
      uri: `nbd://127.0.0.1:10809/${exportName}`,
      export: exportName,
      point,
      suspect,
      writable: options.writable,
      ...(suspect ? { warning: `Point "${options.at}" lies in a suspect interval` } : {}),
    };
  }

  diff(name: string, from: string, to: string): DiffJson {
    this.#enter("diff", [name, from, to]);
    const volume = this.#volume(name);
    const extents = [{ offset: 0, length: 4096 }, { offset: 1048576, length: 65536 }];
    return {
      from: this.#resolve(volume, from),
      to: this.#resolve(volume, to),
      extents,
      changedBytes: extents.reduce((sum, extent) => sum + extent.length, 0),
    };
  }

  async restore(
    name: string,
    options: { at: string; instant: boolean; full?: boolean; force?: boolean },
  ): Promise<JobJson> {
    this.#enter("restore", [name, options]);
    const volume = this.#volume(name);
    if (!this.restoreImplemented) throw new NotImplementedError("Restore is not implemented yet");
    const point = this.#resolve(volume, options.at);
    this.#refuseWhileRunning(name, options.force === true);
    return this.#startJob({ kind: "restore", volume: name, point });
  }

  async resync(name: string, options: { full: boolean }): Promise<JobJson> {
    this.#enter("resync", [name, options]);
    const volume = this.#volume(name);
    if (!volume.linked) throw new UnavailableError(`The switch of volume "${name}" is not connected`);
    this.#refuseWhileRunning(name, false);
    return this.#startJob({ kind: "resync", volume: name });
  }

  jobs(): readonly JobJson[] {
    this.#enter("jobs", []);
    return [...this.#jobs.values()];
  }

  job(id: string): JobJson {
    this.#enter("job", [id]);
    return this.#job(id);
  }

  async cancelJob(id: string): Promise<JobJson> {
    this.#enter("cancelJob", [id]);
    const job = this.#job(id);
    if (job.state !== "queued" && job.state !== "running") {
      throw new ConflictError(`Job "${id}" has already ended (${job.state})`);
    }
    const cancelled: JobJson = { ...job, state: "cancelled", rateBytesPerSecond: 0, endedAt: timeOfSeq(900) };
    this.#jobs.set(id, cancelled);
    return cancelled;
  }

  metrics(): readonly MetricFamily[] {
    this.#enter("metrics", []);
    const volumes = [...this.#volumes.values()];
    return [
      {
        name: "anytime_volume_head_seq",
        help: "Newest seq durable on the appliance.",
        type: "gauge",
        samples: volumes.map((volume) => ({ labels: { volume: volume.name }, value: volume.head })),
      },
      {
        name: "anytime_volume_writes_total",
        help: "Writes ingested.\nCounted at the appliance, \\ included.",
        type: "counter",
        samples: volumes.map((volume) => ({ labels: { volume: volume.name }, value: volume.head * 3 })),
      },
      {
        name: "anytime_test_escape",
        help: "Label values that need escaping.",
        type: "gauge",
        samples: [
          { labels: { value: 'a "quoted" \\ back\nslash' }, value: Number.POSITIVE_INFINITY },
          { labels: {}, value: Number.NaN },
        ],
      },
    ];
  }

  #enter(method: string, args: readonly unknown[]): void {
    this.calls.push({ method, args });
    const failure = this.failNext;
    if (failure !== undefined) {
      this.failNext = undefined;
      throw failure;
    }
  }

  #volume(name: string): FakeVolume {
    const volume = this.#volumes.get(name);
    if (volume === undefined) throw new NotFoundError(`Volume "${name}" does not exist`);
    return volume;
  }

  #job(id: string): JobJson {
    const job = this.#jobs.get(id);
    if (job === undefined) throw new NotFoundError(`Job "${id}" does not exist`);
    return job;
  }

  #status(volume: FakeVolume): VolumeStatusJson {
    return {
      name: volume.name,
      size: volume.sizeBytes,
      state: volume.linked ? "protecting" : "marking",
      head: { seq: volume.head, time: timeOfSeq(volume.head) },
      window: this.#window(volume),
      lagSeconds: 0,
      journalBytes: volume.head * 4096,
      suspect: volume.suspect.toSeq === 0 ? [] : [{
        from: { seq: volume.suspect.fromSeq, time: timeOfSeq(volume.suspect.fromSeq) },
        to: { seq: volume.suspect.toSeq, time: timeOfSeq(volume.suspect.toSeq) },
        reason: "link down",
      }],
      gaps: [],
      snapshots: volume.snapshots.size,
      linked: volume.linked,
    };
  }

  #window(volume: FakeVolume): TimelineJson["window"] {
    return {
      from: { seq: volume.windowFromSeq, time: timeOfSeq(volume.windowFromSeq) },
      to: { seq: volume.head, time: timeOfSeq(volume.head) },
    };
  }

  /** Resolves a POINT; a malformed one throws parsePoint's SyntaxError. */
  #resolve(volume: FakeVolume, text: string): ResolvedPointJson {
    const point = parsePoint(text);
    const available = { from: `seq:${volume.windowFromSeq}`, to: `seq:${volume.head}` };
    const unavailable = () =>
      new PointUnavailableError(
        `Point "${text}" of volume "${volume.name}" is outside what is retained (seq:${volume.windowFromSeq} to seq:${volume.head})`,
        available,
      );
    let seq: number;
    let landedOn = "write";
    switch (point.kind) {
      case "head":
      case "relative":
        seq = volume.head;
        break;
      case "seq":
        seq = point.seq;
        break;
      case "time":
        seq = Math.floor((point.timeUs / 1000 - epochMs) / 1000);
        break;
      case "snapshot": {
        const found = volume.snapshots.get(point.name);
        if (found === undefined) {
          throw new PointUnavailableError(`Snapshot "${point.name}" of volume "${volume.name}" does not exist`, available);
        }
        seq = found;
        landedOn = "snapshot";
        break;
      }
    }
    if (seq < volume.windowFromSeq || seq > volume.head) throw unavailable();
    return { seq, time: timeOfSeq(seq), landedOn };
  }

  #refuseWhileRunning(name: string, force: boolean): void {
    const running = [...this.#jobs.values()].find((job) =>
      job.volume === name && (job.state === "queued" || job.state === "running")
    );
    if (running !== undefined && !force) {
      throw new ConflictError(`Job "${running.id}" is already running on volume "${name}"`);
    }
  }

  #startJob(fields: Pick<JobJson, "kind" | "volume" | "point">): JobJson {
    this.#jobsCreated += 1;
    const job: JobJson = {
      id: `job-${this.#jobsCreated}`,
      ...fields,
      state: "running",
      progress: 0,
      bytesMoved: 0,
      bytesTotal: 1024 * 1024,
      rateBytesPerSecond: 0,
      startedAt: timeOfSeq(850),
    };
    this.#jobs.set(job.id, job);
    return job;
  }
}
