/**
 * The management API's JSON, as zod schemas: requests are validated with them (a failure is a
 * 400 naming the field) and `/openapi.json` is generated from the same schemas, so the
 * document cannot drift from what the API accepts. Response schemas restate the shapes of
 * `control_plane.ts` (SPEC.md, "HTTP management API") for the document; responses are not
 * re-validated at run time.
 *
 * Request bodies are strict objects: an unknown field (`writeable` for `writable`) is a 400,
 * not silently ignored.
 *
 * @example
 * ```ts
 * import { imageBodySchema } from "./schemas.ts";
 *
 * imageBodySchema.parse({ at: "snap:before-upgrade" }); // { at: "snap:before-upgrade", writable: false }
 * ```
 *
 * @module
 */
import { z } from "@hono/zod-openapi";
import { SNAPSHOT_NAME_PATTERN } from "../core/point.ts";
import { apiLimits } from "./api_limits.ts";

// ---- Building blocks ----

const pointTextSchema = z
  .string()
  .min(1)
  .max(apiLimits.pointTextBytesMax)
  .openapi({
    description: "A POINT: `now`, `head`, `seq:N`, `snap:NAME`, `-90s`/`-5m`/`-2h`/`-1d`, or an ISO-8601 time with a zone.",
    example: "snap:before-upgrade",
  });

const snapshotNameSchema = z
  .string()
  .min(1)
  .max(apiLimits.snapshotNameBytesMax)
  .regex(SNAPSHOT_NAME_PATTERN, "use letters, digits, '.', '_', ':' or '-', not starting with '-'")
  .openapi({ example: "before-upgrade" });

const volumeNameSchema = z.string().min(1).max(apiLimits.volumeNameBytesMax);

// ---- Path parameters and queries ----

export const volumeParamsSchema = z.object({
  vol: volumeNameSchema.openapi({ param: { name: "vol", in: "path" }, example: "db" }),
});

export const snapshotParamsSchema = z.object({
  vol: volumeNameSchema.openapi({ param: { name: "vol", in: "path" }, example: "db" }),
  name: z
    .string()
    .min(1)
    .max(apiLimits.snapshotNameBytesMax)
    .openapi({ param: { name: "name", in: "path" }, example: "before-upgrade" }),
});

export const jobParamsSchema = z.object({
  id: z.string().min(1).max(apiLimits.jobIdBytesMax).openapi({ param: { name: "id", in: "path" }, example: "job-1" }),
});

const limitQuerySchema = z
  .string()
  .regex(/^\d+$/, "expected a whole number")
  .transform(Number)
  .pipe(z.number().int().min(1).max(apiLimits.timelineEntriesMax));

export const timelineQuerySchema = z.object({
  from: pointTextSchema.optional().openapi({ param: { name: "from", in: "query" } }),
  to: pointTextSchema.optional().openapi({ param: { name: "to", in: "query" } }),
  limit: limitQuerySchema
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      type: "integer",
      minimum: 1,
      maximum: apiLimits.timelineEntriesMax,
      description: `Most entries to return (1 to ${apiLimits.timelineEntriesMax}).`,
    }),
});

export const diffQuerySchema = z.object({
  from: pointTextSchema.openapi({ param: { name: "from", in: "query" } }),
  to: pointTextSchema.openapi({ param: { name: "to", in: "query" } }),
});

// ---- Request bodies ----

export const snapshotBodySchema = z.strictObject({ name: snapshotNameSchema }).openapi("SnapshotRequest");

const retentionTextSchema = z.string().min(1).max(apiLimits.retentionTextBytesMax);

export const retentionBodySchema = z
  .strictObject({
    window: retentionTextSchema.optional().openapi({ description: "The any-point window.", example: "48h" }),
    keep: z
      .string()
      .max(apiLimits.retentionTextBytesMax)
      .optional()
      .openapi({ description: "Retained points beyond the window, `\"\"` for none.", example: "24x1h,14x1d,8x1w" }),
  })
  .openapi("RetentionRequest");

export const imageBodySchema = z
  .strictObject({
    at: pointTextSchema,
    writable: z.boolean().default(false).openapi({ description: "A throw-away overlay takes the image's writes." }),
  })
  .openapi("ImageRequest");

export const restoreBodySchema = z
  .strictObject({
    at: pointTextSchema,
    instant: z.boolean().default(false).openapi({ description: "The primary serves POINT at once; data moves behind." }),
    full: z.boolean().optional().openapi({ description: "Copy every region, not only those that differ." }),
    force: z.boolean().optional().openapi({ description: "Restore even while host I/O or another job is active." }),
  })
  .openapi("RestoreRequest");

export const resyncBodySchema = z
  .strictObject({
    full: z.boolean().default(false).openapi({ description: "Re-baseline: compare every region, not only dirty ones." }),
  })
  .openapi("ResyncRequest");

// ---- Responses ----

const pointSchema = z
  .object({
    seq: z.number().int().min(0),
    time: z.string().openapi({ description: "ISO-8601 UTC, up to microsecond digits.", example: "2026-11-22T10:14:03.123456Z" }),
  })
  .openapi("Point");

const resolvedPointSchema = pointSchema
  .extend({ landedOn: z.string().openapi({ example: "write" }) })
  .openapi("ResolvedPoint");

const intervalSchema = z
  .object({ from: pointSchema, to: pointSchema, reason: z.string().optional() })
  .openapi("Interval");

const windowSchema = z.object({ from: pointSchema, to: pointSchema });

export const volumeStatusSchema = z
  .object({
    name: z.string(),
    size: z.number().openapi({ description: "Bytes." }),
    state: z.enum(["protecting", "marking", "resyncing", "restoring", "initializing", "stopped"]),
    head: pointSchema,
    window: windowSchema,
    lagSeconds: z.number().openapi({ description: "Current RPO; exactly 0 when nothing is pending." }),
    journalBytes: z.number(),
    suspect: z.array(intervalSchema).readonly(),
    gaps: z.array(intervalSchema).readonly(),
    writesIngested: z.number().optional(),
    bytesIngested: z.number().optional(),
    regionSize: z.number().optional(),
    dirtyRegions: z.number().optional(),
    snapshots: z.number().optional(),
    linked: z.boolean().optional(),
  })
  .openapi("VolumeStatus");

export const volumeListSchema = z.object({ volumes: z.array(volumeStatusSchema).readonly() }).openapi("VolumeList");

const timelineEntrySchema = pointSchema
  .extend({
    kind: z.string().openapi({ example: "snapshot" }),
    detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  })
  .openapi("TimelineEntry");

export const timelineSchema = z
  .object({ volume: z.string(), window: windowSchema, entries: z.array(timelineEntrySchema).readonly() })
  .openapi("Timeline");

export const snapshotSchema = pointSchema.extend({ name: z.string() }).openapi("Snapshot");

export const snapshotListSchema = z
  .object({ volume: z.string(), snapshots: z.array(snapshotSchema).readonly() })
  .openapi("SnapshotList");

export const retentionSchema = z
  .object({ window: z.string().openapi({ example: "48h" }), keep: z.string().openapi({ example: "24x1h,14x1d,8x1w" }) })
  .openapi("Retention");

export const imageSchema = z
  .object({
    uri: z.string().openapi({ example: "nbd://127.0.0.1:10809/db@seq:812" }),
    export: z.string().openapi({ example: "db@seq:812" }),
    point: resolvedPointSchema,
    suspect: z.boolean(),
    writable: z.boolean(),
    warning: z.string().optional(),
  })
  .openapi("Image");

export const diffSchema = z
  .object({
    from: resolvedPointSchema,
    to: resolvedPointSchema,
    extents: z.array(z.object({ offset: z.number(), length: z.number() })).readonly(),
    changedBytes: z.number(),
  })
  .openapi("Diff");

export const jobSchema = z
  .object({
    id: z.string(),
    kind: z.enum(["restore", "resync"]),
    volume: z.string(),
    state: z.enum(["queued", "running", "done", "failed", "cancelled"]),
    progress: z.number().min(0).max(1),
    bytesMoved: z.number(),
    bytesTotal: z.number(),
    rateBytesPerSecond: z.number(),
    etaSeconds: z.number().optional(),
    startedAt: z.string(),
    endedAt: z.string().optional(),
    point: resolvedPointSchema.optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  })
  .openapi("Job");

export const jobListSchema = z.object({ jobs: z.array(jobSchema).readonly() }).openapi("JobList");

export const processSchema = z
  .object({
    role: z.enum(["serve", "appliance", "switch"]),
    version: z.string(),
    runtime: z.string(),
    startedAt: z.string(),
    nbd: z.string().optional(),
    link: z.string().optional(),
  })
  .openapi("Process");

export const healthSchema = z.object({ ok: z.literal(true) }).openapi("Health");

export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "not_found" }),
      message: z.string().openapi({ example: 'Volume "db" does not exist' }),
      field: z.string().optional().openapi({ description: "Validation failures: the field at fault." }),
      available: z
        .object({ from: z.string(), to: z.string() })
        .optional()
        .openapi({ description: "Point unavailable: the range that is available." }),
    }),
  })
  .openapi("Error");
