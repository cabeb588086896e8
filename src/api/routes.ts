/**
 * Every route of the management API (SPEC.md, "HTTP management API"), declared once with
 * `createRoute`: the method, path, validated inputs and documented answers. `app.ts` attaches
 * a handler to each; `/openapi.json` is generated from this table.
 *
 * @example
 * ```ts
 * import { routes } from "./routes.ts";
 * routes.getVolume.path; // "/v1/volumes/{vol}"
 * ```
 *
 * @module
 */
import { createRoute, type RouteConfig, z } from "@hono/zod-openapi";
import {
  diffQuerySchema,
  diffSchema,
  errorBodySchema,
  healthSchema,
  imageBodySchema,
  imageSchema,
  jobListSchema,
  jobParamsSchema,
  jobSchema,
  processSchema,
  restoreBodySchema,
  resyncBodySchema,
  retentionBodySchema,
  retentionSchema,
  snapshotBodySchema,
  snapshotListSchema,
  snapshotParamsSchema,
  snapshotSchema,
  timelineQuerySchema,
  timelineSchema,
  volumeListSchema,
  volumeParamsSchema,
  volumeStatusSchema,
} from "./schemas.ts";

type Responses = RouteConfig["responses"];

const errorStatusDescriptions = {
  400: "Bad request: a field failed validation, or a POINT does not parse.",
  401: "Missing or invalid bearer token.",
  404: "No such volume, snapshot or job.",
  409: "Conflicts with the current state (name in use, job already running).",
  413: "Request body too large.",
  415: "Request body not JSON.",
  422: "The POINT is outside what is retained (`error.available` says what is).",
  501: "Filled by a later release.",
  503: "The switch or appliance this needs is not connected.",
} as const;

type ErrorStatus = keyof typeof errorStatusDescriptions;

function errors(...statuses: ErrorStatus[]): Responses {
  const responses: Responses = {};
  for (const status of [401, 503, ...statuses] as ErrorStatus[]) {
    responses[status] = {
      description: errorStatusDescriptions[status],
      content: { "application/json": { schema: errorBodySchema } },
    };
  }
  return responses;
}

function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } } as const;
}

function body<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } } as const;
}

/** Errors of every route that takes a JSON body (on top of {@link errors}). */
const bodyErrors = [400, 413, 415] as const;

export const routes = {
  health: createRoute({
    method: "get",
    path: "/healthz",
    summary: "Liveness (no authentication).",
    security: [],
    responses: { 200: json(healthSchema, "The process is up.") },
  }),
  openApi: createRoute({
    method: "get",
    path: "/openapi.json",
    summary: "This document.",
    responses: {
      200: { description: "OpenAPI 3.0 document.", content: { "application/json": { schema: z.object({}).passthrough() } } },
      ...errors(),
    },
  }),
  metrics: createRoute({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format 0.0.4).",
    responses: {
      200: { description: "Metrics.", content: { "text/plain; version=0.0.4": { schema: z.string() } } },
      ...errors(),
    },
  }),
  status: createRoute({
    method: "get",
    path: "/v1/status",
    summary: "What this process is and where it listens.",
    responses: { 200: json(processSchema, "This process: role, version, listeners."), ...errors() },
  }),
  listVolumes: createRoute({
    method: "get",
    path: "/v1/volumes",
    summary: "Every protected volume's status.",
    responses: { 200: json(volumeListSchema, "The volumes."), ...errors() },
  }),
  getVolume: createRoute({
    method: "get",
    path: "/v1/volumes/{vol}",
    summary: "One volume's state, window, lag (RPO), journal use, suspect intervals and gaps.",
    request: { params: volumeParamsSchema },
    responses: { 200: json(volumeStatusSchema, "The volume."), ...errors(400, 404) },
  }),
  getTimeline: createRoute({
    method: "get",
    path: "/v1/volumes/{vol}/timeline",
    summary: "Markers in the write stream (snapshots, gaps, restores...) between two points.",
    request: { params: volumeParamsSchema, query: timelineQuerySchema },
    responses: { 200: json(timelineSchema, "The timeline."), ...errors(400, 404, 422) },
  }),
  createSnapshot: createRoute({
    method: "post",
    path: "/v1/volumes/{vol}/snapshots",
    summary: "Marks a snapshot (no data moved); answers when the marker is durable.",
    request: { params: volumeParamsSchema, body: body(snapshotBodySchema) },
    responses: { 201: json(snapshotSchema, "The snapshot."), ...errors(...bodyErrors, 404, 409) },
  }),
  listSnapshots: createRoute({
    method: "get",
    path: "/v1/volumes/{vol}/snapshots",
    summary: "A volume's snapshots.",
    request: { params: volumeParamsSchema },
    responses: { 200: json(snapshotListSchema, "The snapshots."), ...errors(400, 404) },
  }),
  removeSnapshot: createRoute({
    method: "delete",
    path: "/v1/volumes/{vol}/snapshots/{name}",
    summary: "Removes a snapshot marker.",
    request: { params: snapshotParamsSchema },
    responses: { 204: { description: "Removed." }, ...errors(400, 404, 409) },
  }),
  getRetention: createRoute({
    method: "get",
    path: "/v1/volumes/{vol}/retention",
    summary: "A volume's retention policy.",
    request: { params: volumeParamsSchema },
    responses: { 200: json(retentionSchema, "The policy."), ...errors(400, 404) },
  }),
  setRetention: createRoute({
    method: "put",
    path: "/v1/volumes/{vol}/retention",
    summary: "Sets a volume's retention policy (fields left out stay as they are).",
    request: { params: volumeParamsSchema, body: body(retentionBodySchema) },
    responses: { 200: json(retentionSchema, "The policy now."), ...errors(...bodyErrors, 404, 409) },
  }),
  openImage: createRoute({
    method: "post",
    path: "/v1/volumes/{vol}/images",
    summary: "Resolves a POINT and returns an NBD export pinned to it (no data copied).",
    request: { params: volumeParamsSchema, body: body(imageBodySchema) },
    responses: { 200: json(imageSchema, "The image."), ...errors(...bodyErrors, 404, 422) },
  }),
  getDiff: createRoute({
    method: "get",
    path: "/v1/volumes/{vol}/diff",
    summary: "Extents that differ between two points.",
    request: { params: volumeParamsSchema, query: diffQuerySchema },
    responses: { 200: json(diffSchema, "The extents."), ...errors(400, 404, 422) },
  }),
  restore: createRoute({
    method: "post",
    path: "/v1/volumes/{vol}/restore",
    summary: "Starts putting the volume back to a POINT on the primary.",
    request: { params: volumeParamsSchema, body: body(restoreBodySchema) },
    responses: { 202: json(jobSchema, "The job started."), ...errors(...bodyErrors, 404, 409, 422, 501) },
  }),
  resync: createRoute({
    method: "post",
    path: "/v1/volumes/{vol}/resync",
    summary: "Starts a re-synchronization (DRL-guided) or, with `full`, a re-baseline.",
    request: { params: volumeParamsSchema, body: body(resyncBodySchema) },
    responses: { 202: json(jobSchema, "The job started."), ...errors(...bodyErrors, 404, 409, 501) },
  }),
  listJobs: createRoute({
    method: "get",
    path: "/v1/jobs",
    summary: "Restore and resync jobs.",
    responses: { 200: json(jobListSchema, "The jobs."), ...errors() },
  }),
  getJob: createRoute({
    method: "get",
    path: "/v1/jobs/{id}",
    summary: "One job's state and progress.",
    request: { params: jobParamsSchema },
    responses: { 200: json(jobSchema, "The job."), ...errors(400, 404) },
  }),
  cancelJob: createRoute({
    method: "delete",
    path: "/v1/jobs/{id}",
    summary: "Cancels a job; answers with its state after the cancel.",
    request: { params: jobParamsSchema },
    responses: { 200: json(jobSchema, "The job."), ...errors(400, 404, 409) },
  }),
} as const;
