/**
 * A fake of the management API for CLI tests: SPEC.md's routes on a small Hono app with two
 * realistic volumes (`db`, protecting; `logs`, marking with a suspect interval), bearer token
 * auth, POINTs parsed by the real parser (`src/core/point.ts`) and resolved against a linear
 * history, and jobs that advance one step per poll. Tests pass `fake.fetch` (Hono's
 * `app.request`) to `runCli`, so the client is exercised through real Request and Response
 * objects without a socket. Every request is logged for assertions.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type {
  DiffJson,
  ImageJson,
  JobJson,
  ProcessJson,
  ResolvedPointJson,
  RetentionJson,
  SnapshotJson,
  TimelineJson,
  VolumeStatusJson,
} from "../../src/api/control_plane.ts";
import { parsePoint } from "../../src/core/point.ts";
import { formatTimeUs, parseTimeUs } from "../../src/core/units.ts";

export const FAKE_TOKEN = "3f9a0c5e1b7d4a26e8c0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";

/** The process's answer to `GET /v1/status`. */
export const fakeProcess: ProcessJson = {
  role: "serve",
  version: "0.1.0",
  runtime: "node v22.11.0",
  startedAt: "2026-11-22T07:55:00.000000Z",
  nbd: "nbd://127.0.0.1:10809",
};

const windowFromUs = parseTimeUs("2026-11-22T08:00:00.000000Z");
/** Seconds between consecutive seqs in the fake history. */
const secondsPerSeq = 10;

function timeOfSeq(seq: number): string {
  return formatTimeUs(windowFromUs + (seq - 1) * secondsPerSeq * 1_000_000 + 123_456);
}

function point(seq: number): { seq: number; time: string } {
  return { seq, time: timeOfSeq(seq) };
}

function initialVolumes(): VolumeStatusJson[] {
  return [
    {
      name: "db",
      size: 1024 ** 3,
      state: "protecting",
      head: point(812),
      window: { from: point(1), to: point(812) },
      lagSeconds: 0,
      journalBytes: 1_288_490_188,
      suspect: [],
      gaps: [{ from: point(400), to: point(401), reason: "link down" }],
      writesIngested: 812,
      bytesIngested: 53_215_232,
      regionSize: 65_536,
      dirtyRegions: 3,
      snapshots: 2,
      linked: true,
    },
    {
      name: "logs",
      size: 256 * 1024 ** 2,
      state: "marking",
      head: point(90),
      window: { from: point(1), to: point(90) },
      lagSeconds: 12.5,
      journalBytes: 7_340_032,
      suspect: [{ from: point(50), to: point(60), reason: "marking mode" }],
      gaps: [{ from: point(50), to: point(60), reason: "marking mode" }],
      writesIngested: 90,
      bytesIngested: 368_640,
      regionSize: 65_536,
      dirtyRegions: 41,
      snapshots: 0,
      linked: false,
    },
  ];
}

/** How the fake behaves. */
export interface FakeApiOptions {
  /** Polls of `GET /v1/jobs/:id` from queued to done (default 4). */
  readonly jobPollsToFinish?: number;
  /** Restore jobs fail at this poll (default never). */
  readonly restoreFailsAtPoll?: number;
  /** Answer lists as bare arrays instead of `{volumes: [...]}` (as the real API does). */
  readonly bareLists?: boolean;
}

/** One request the fake received. */
export interface LoggedRequest {
  readonly method: string;
  readonly url: string;
  readonly path: string;
  readonly authorization: string | null;
  readonly body?: unknown;
}

class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 422,
    readonly code: string,
    message: string,
    readonly available?: { from: string; to: string },
  ) {
    super(message);
  }
}

/** The fake: `fetch` for `runCli`, and its state and request log for assertions. */
export interface FakeApi {
  readonly fetch: (input: string, init?: RequestInit) => Response | Promise<Response>;
  readonly requests: LoggedRequest[];
  readonly volumes: VolumeStatusJson[];
  readonly snapshots: Map<string, SnapshotJson[]>;
  readonly retention: Map<string, RetentionJson>;
  readonly jobs: Map<string, { job: JobJson; polls: number }>;
}

/**
 * Builds the fake.
 *
 * @example
 * ```ts
 * const fake = createFakeApi();
 * await runCli(["volumes", "--token", FAKE_TOKEN], { ...deps, fetch: fake.fetch });
 * ```
 */
export function createFakeApi(options: FakeApiOptions = {}): FakeApi {
  const jobPollsToFinish = options.jobPollsToFinish ?? 4;
  const volumes = initialVolumes();
  const snapshots = new Map<string, SnapshotJson[]>([
    ["db", [{ name: "nightly", ...point(120) }, { name: "before-upgrade", ...point(700) }]],
    ["logs", []],
  ]);
  const retention = new Map<string, RetentionJson>([
    ["db", { window: "48h", keep: "24x1h,14x1d,8x1w" }],
    ["logs", { window: "24h", keep: "" }],
  ]);
  const jobs = new Map<string, { job: JobJson; polls: number }>();
  const requests: LoggedRequest[] = [];
  const list = <T>(key: string, items: readonly T[], extra: Record<string, string> = {}) =>
    options.bareLists ? items : { ...extra, [key]: items };

  const findVolume = (name: string): VolumeStatusJson => {
    const found = volumes.find((volume) => volume.name === name);
    if (found === undefined) throw new HttpError(404, "not_found", `Unknown volume "${name}"`);
    return found;
  };

  const resolve = (volume: VolumeStatusJson, text: string): ResolvedPointJson => {
    let parsed;
    try {
      parsed = parsePoint(text);
    } catch (error) {
      throw new HttpError(400, "bad_point", (error as Error).message);
    }
    const available = { from: `seq:${volume.window.from.seq}`, to: `seq:${volume.window.to.seq}` };
    const headSeq = volume.head.seq;
    const seqAtTimeUs = (timeUs: number) => Math.floor((timeUs - windowFromUs) / (secondsPerSeq * 1_000_000)) + 1;
    let seq: number;
    switch (parsed.kind) {
      case "head":
        seq = headSeq;
        break;
      case "seq":
        seq = parsed.seq;
        break;
      case "snapshot": {
        const found = snapshots.get(volume.name)?.find((snapshot) => snapshot.name === parsed.name);
        if (found === undefined) {
          throw new HttpError(422, "point_unavailable", `No snapshot "${parsed.name}" of ${volume.name}`, available);
        }
        return { seq: found.seq, time: found.time, landedOn: "snapshot" };
      }
      case "relative":
        seq = seqAtTimeUs(parseTimeUs(volume.head.time) - parsed.agoUs);
        break;
      case "time":
        seq = seqAtTimeUs(parsed.timeUs);
        break;
    }
    if (seq < volume.window.from.seq || seq > headSeq) {
      throw new HttpError(
        422,
        "point_unavailable",
        `Point "${text}" is outside what is retained for ${volume.name}: available seq:${volume.window.from.seq} .. seq:${headSeq}`,
        available,
      );
    }
    return { ...point(seq), landedOn: "write" };
  };

  const newJob = (kind: "restore" | "resync", volume: string, extra: Partial<JobJson>): JobJson => {
    const job: JobJson = {
      id: `job-${jobs.size + 1}`,
      kind,
      volume,
      state: "queued",
      progress: 0,
      bytesMoved: 0,
      bytesTotal: 64 * 1024 * 1024,
      rateBytesPerSecond: 0,
      startedAt: "2026-11-22T10:20:00.000000Z",
      ...extra,
    };
    jobs.set(job.id, { job, polls: 0 });
    return job;
  };

  /** One poll moves a job one step: queued → running (1/n ... ) → done. */
  const advance = (entry: { job: JobJson; polls: number }): JobJson => {
    if (["done", "failed", "cancelled"].includes(entry.job.state)) return entry.job;
    entry.polls++;
    const job = entry.job;
    if (job.kind === "restore" && options.restoreFailsAtPoll === entry.polls) {
      entry.job = {
        ...job,
        state: "failed",
        rateBytesPerSecond: 0,
        endedAt: "2026-11-22T10:20:05.000000Z",
        error: { code: "primary_write_error", message: "Write to the primary failed at offset 1048576: EIO" },
      };
      return entry.job;
    }
    const progress = Math.min(1, entry.polls / jobPollsToFinish);
    const done = progress >= 1;
    entry.job = {
      ...job,
      state: done ? "done" : "running",
      progress,
      bytesMoved: Math.round(progress * job.bytesTotal),
      rateBytesPerSecond: done ? 0 : 32 * 1024 * 1024,
      etaSeconds: done ? undefined : ((1 - progress) * job.bytesTotal) / (32 * 1024 * 1024),
      endedAt: done ? "2026-11-22T10:20:02.000000Z" : undefined,
    };
    return entry.job;
  };

  const app = new Hono();

  app.use("*", async (c, next) => {
    const text = c.req.method === "GET" || c.req.method === "DELETE" ? "" : await c.req.raw.clone().text();
    requests.push({
      method: c.req.method,
      url: c.req.url,
      path: new URL(c.req.url).pathname + new URL(c.req.url).search,
      authorization: c.req.header("authorization") ?? null,
      body: text === "" ? undefined : JSON.parse(text),
    });
    await next();
  });

  app.get("/healthz", (c) => c.json({ ok: true }));

  app.use("/v1/*", async (c, next) => {
    if (c.req.header("authorization") !== `Bearer ${FAKE_TOKEN}`) {
      throw new HttpError(401, "unauthorized", "Missing or wrong bearer token");
    }
    await next();
  });

  app.get("/v1/status", (c) => c.json(fakeProcess));
  app.get("/v1/volumes", (c) => c.json(list("volumes", volumes)));
  app.get("/v1/volumes/:vol", (c) => c.json(findVolume(c.req.param("vol"))));

  app.get("/v1/volumes/:vol/timeline", (c) => {
    const volume = findVolume(c.req.param("vol"));
    const entries: TimelineJson["entries"][number][] = [
      { ...point(120), kind: "snapshot", detail: { name: "nightly" } },
      { ...point(400), kind: "gap", detail: { reason: "link down", writes: 0 } },
      { ...point(401), kind: "inSync", detail: {} },
      { ...point(700), kind: "snapshot", detail: { name: "before-upgrade" } },
    ];
    const limit = Number(c.req.query("limit") ?? entries.length);
    const body: TimelineJson = { volume: volume.name, window: volume.window, entries: entries.slice(0, limit) };
    return c.json(body);
  });

  app.get("/v1/volumes/:vol/snapshots", (c) => {
    const volume = findVolume(c.req.param("vol"));
    return c.json(list("snapshots", snapshots.get(volume.name) ?? [], { volume: volume.name }));
  });

  app.post("/v1/volumes/:vol/snapshots", async (c) => {
    const volume = findVolume(c.req.param("vol"));
    const { name } = await c.req.json<{ name: string }>();
    const existing = snapshots.get(volume.name) ?? [];
    if (existing.some((snapshot) => snapshot.name === name)) {
      throw new HttpError(409, "conflict", `Snapshot "${name}" of ${volume.name} exists`);
    }
    const created: SnapshotJson = { name, ...point(volume.head.seq + 1) };
    snapshots.set(volume.name, [...existing, created]);
    return c.json(created, 201);
  });

  app.delete("/v1/volumes/:vol/snapshots/:name", (c) => {
    const volume = findVolume(c.req.param("vol"));
    const name = c.req.param("name");
    const existing = snapshots.get(volume.name) ?? [];
    if (!existing.some((snapshot) => snapshot.name === name)) {
      throw new HttpError(404, "not_found", `No snapshot "${name}" of ${volume.name}`);
    }
    snapshots.set(volume.name, existing.filter((snapshot) => snapshot.name !== name));
    return c.body(null, 204);
  });

  app.get("/v1/volumes/:vol/retention", (c) => c.json(retention.get(findVolume(c.req.param("vol")).name)!));
  app.put("/v1/volumes/:vol/retention", async (c) => {
    const volume = findVolume(c.req.param("vol"));
    const change = await c.req.json<Partial<RetentionJson>>();
    if (change.window !== undefined && !/^\d+[smhdw]$/.test(change.window)) {
      throw new HttpError(400, "bad_request", `Cannot parse duration "${change.window}": expected a number and one of s, m, h, d, w`);
    }
    const next = { ...retention.get(volume.name)!, ...change };
    retention.set(volume.name, next);
    return c.json(next);
  });

  app.post("/v1/volumes/:vol/images", async (c) => {
    const volume = findVolume(c.req.param("vol"));
    const { at, writable } = await c.req.json<{ at: string; writable: boolean }>();
    const resolved = resolve(volume, at);
    const suspect = volume.suspect.some((interval) => resolved.seq >= interval.from.seq && resolved.seq <= interval.to.seq);
    const exportName = `${volume.name}@seq:${resolved.seq}${writable ? "+rw" : ""}`;
    const body: ImageJson = {
      uri: `nbd://127.0.0.1:10809/${exportName}`,
      export: exportName,
      point: resolved,
      suspect,
      writable,
      ...(suspect ? { warning: `seq:${resolved.seq} lies in a suspect interval (marking mode): data may be inconsistent` } : {}),
    };
    return c.json(body);
  });

  app.get("/v1/volumes/:vol/diff", (c) => {
    const volume = findVolume(c.req.param("vol"));
    const from = resolve(volume, c.req.query("from") ?? "");
    const to = resolve(volume, c.req.query("to") ?? "");
    const extents = Array.from({ length: 25 }, (_, index) => ({ offset: index * 1024 * 1024, length: 65_536 }));
    const body: DiffJson = { from, to, extents, changedBytes: extents.length * 65_536 };
    return c.json(body);
  });

  app.post("/v1/volumes/:vol/restore", async (c) => {
    const volume = findVolume(c.req.param("vol"));
    const { at } = await c.req.json<{ at: string; instant: boolean; full: boolean; force: boolean }>();
    const resolved = resolve(volume, at);
    return c.json(newJob("restore", volume.name, { point: resolved }), 202);
  });

  app.post("/v1/volumes/:vol/resync", async (c) => {
    const volume = findVolume(c.req.param("vol"));
    const { full } = await c.req.json<{ full: boolean }>();
    const bytesTotal = full ? volume.size : (volume.dirtyRegions ?? 0) * (volume.regionSize ?? 0);
    return c.json(newJob("resync", volume.name, { bytesTotal }), 202);
  });

  app.get("/v1/jobs", (c) => c.json(list("jobs", [...jobs.values()].map((entry) => entry.job))));

  const findJob = (c: Context) => {
    const entry = jobs.get(c.req.param("id") ?? "");
    if (entry === undefined) throw new HttpError(404, "not_found", `Unknown job "${c.req.param("id")}"`);
    return entry;
  };
  app.get("/v1/jobs/:id", (c) => c.json(advance(findJob(c))));
  app.delete("/v1/jobs/:id", (c) => {
    const entry = findJob(c);
    if (entry.job.state === "done" || entry.job.state === "failed") {
      throw new HttpError(409, "conflict", `Job "${entry.job.id}" has ended (${entry.job.state})`);
    }
    entry.job = { ...entry.job, state: "cancelled", rateBytesPerSecond: 0, endedAt: "2026-11-22T10:20:03.000000Z" };
    return c.json(entry.job);
  });

  app.onError((error, c) => {
    if (error instanceof HttpError) {
      const body = { error: { code: error.code, message: error.message, ...(error.available ? { available: error.available } : {}) } };
      return c.json(body, error.status);
    }
    return c.json({ error: { code: "internal", message: String(error) } }, 500);
  });

  return { fetch: app.request, requests, volumes, snapshots, retention, jobs };
}
