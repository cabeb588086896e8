/**
 * The management API (SPEC.md, "HTTP management API"): a Web-standard Hono app over a
 * {@link ControlPlane}. It opens no socket; a target serves it (`targets/node/http_server.ts`,
 * `targets/deno/http_server.ts`) and tests call `app.request()`.
 *
 * What every request goes through, in order:
 * 1. Bearer-token authentication (`bearer_auth.ts`, constant time), on everything but
 *    `/healthz`.
 * 2. The body limit: a `Content-Length` over `bodyBytesMax` is refused before anything is
 *    read; a body without one is counted as it streams in and refused at the limit.
 * 3. Validation of path, query and body against the zod schemas of `schemas.ts` (the same
 *    schemas generate `/openapi.json`); a failure is a 400 naming the field.
 * 4. The handler: one call to the control plane, its answer as JSON.
 *
 * Whatever is thrown on the way (by a middleware, a validator, the control plane) becomes a
 * response in the one `onError`, through `error_response.ts`: `{error: {code, message}}`
 * with the status control_plane.ts lists, never a stack trace.
 *
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 *
 * const app = createApp({ controlPlane, token: "s3cret" });
 * const response = await app.request("/v1/volumes/db", { headers: { Authorization: "Bearer s3cret" } });
 * const status = await response.json(); // { name: "db", size: ..., state: "protecting", ... }
 * ```
 *
 * @module
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { apiLimits } from "./api_limits.ts";
import { bearerAuth } from "./bearer_auth.ts";
import { bodyLimit } from "./body_limit.ts";
import type { ControlPlane } from "./control_plane.ts";
import { NotFoundError } from "./control_plane.ts";
import { errorResponse, invalidRequestOf } from "./error_response.ts";
import { formatMetricsText, METRICS_CONTENT_TYPE } from "./metrics_text.ts";
import { type MemoryUsage, processMemoryMetrics } from "./process_metrics.ts";
import { routes } from "./routes.ts";

/** One line for the operator's log: an error the API did not expect (its stack stays here). */
export interface ApiLogEntry {
  readonly level: "error";
  readonly message: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly error: unknown;
}

/** What {@link createApp} needs. */
export interface AppOptions {
  /** The running product the API reports on and commands. */
  readonly controlPlane: ControlPlane;
  /** The bearer token every route but `/healthz` requires. */
  readonly token: string;
  /** Largest request body, bytes (default {@link apiLimits.bodyBytesMaxDefault}). */
  readonly bodyBytesMax?: number;
  /** The process's memory, for `/metrics` (the target passes its runtime's `memoryUsage`). */
  readonly memoryUsage?: () => MemoryUsage;
  /** Where unexpected errors go (default: nowhere; the response never carries them). */
  readonly log?: (entry: ApiLogEntry) => void;
}

/** The document's `info`. */
const openApiInfo = {
  title: "Anytime management API",
  version: "1",
  description: "Continuous data protection for block volumes: status, snapshots, images at any point, restore.",
} as const;

/**
 * Builds the management API app.
 *
 * @throws {TypeError} when the token is empty or too long.
 * @throws {RangeError} when `bodyBytesMax` is not a whole number from 1 to the ceiling.
 */
export function createApp(options: AppOptions): OpenAPIHono {
  const bodyBytesMax = options.bodyBytesMax ?? apiLimits.bodyBytesMaxDefault;
  if (!Number.isSafeInteger(bodyBytesMax) || bodyBytesMax < 1 || bodyBytesMax > apiLimits.bodyBytesMaxCeiling) {
    throw new RangeError(`Cannot use bodyBytesMax ${bodyBytesMax}: use 1 to ${apiLimits.bodyBytesMaxCeiling}`);
  }
  const controlPlane = options.controlPlane;
  const log = options.log;
  const authenticate = bearerAuth({ token: options.token });

  const app = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) throw invalidRequestOf(result.error.issues, result.target);
    },
  });

  app.onError((error, c) => {
    const answer = errorResponse(error);
    if (answer.unexpected && log !== undefined) {
      log({ level: "error", message: "Request failed", method: c.req.method, path: c.req.path, status: answer.status, error });
    }
    return c.json(answer.body, answer.status, answer.headers);
  });
  app.notFound((c) => {
    throw new NotFoundError(`No route for ${c.req.method} "${c.req.path}"`);
  });

  // Hono hands only Error instances to onError; anything else thrown (a bug) is wrapped, so
  // it too answers a JSON 500 rather than escaping the app.
  app.use("*", async (_c, next) => {
    try {
      await next();
    } catch (error) {
      throw error instanceof Error ? error : new Error("A non-Error value was thrown", { cause: error });
    }
  });
  app.use("*", async (c, next) => {
    if (c.req.path === routes.health.path) return next();
    return authenticate(c, next);
  });
  app.use("*", bodyLimit(bodyBytesMax));

  app.openapi(routes.health, (c) => c.json({ ok: true as const }, 200));

  let openApiDocument: unknown;
  app.openapi(routes.openApi, (c) => {
    openApiDocument ??= app.getOpenAPIDocument({
      openapi: "3.0.3",
      info: openApiInfo,
      security: [{ bearer: [] }],
    });
    return c.json(openApiDocument as Record<string, unknown>, 200);
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });

  app.openapi(routes.metrics, (c) => {
    const families = [...controlPlane.metrics()];
    if (options.memoryUsage !== undefined) families.push(...processMemoryMetrics(options.memoryUsage()));
    return c.text(formatMetricsText(families), 200, { "Content-Type": METRICS_CONTENT_TYPE });
  });

  app.openapi(routes.status, (c) => c.json(controlPlane.process(), 200));

  app.openapi(routes.listVolumes, (c) => c.json({ volumes: controlPlane.volumes() }, 200));

  app.openapi(routes.getVolume, (c) => c.json(controlPlane.volume(c.req.valid("param").vol), 200));

  app.openapi(routes.getTimeline, (c) => {
    const { vol } = c.req.valid("param");
    const query = c.req.valid("query");
    return c.json(controlPlane.timeline(vol, definedOnly({ from: query.from, to: query.to, limit: query.limit })), 200);
  });

  app.openapi(routes.createSnapshot, async (c) => {
    const { vol } = c.req.valid("param");
    const snapshot = await controlPlane.createSnapshot(vol, c.req.valid("json").name);
    const location = `/v1/volumes/${encodeURIComponent(vol)}/snapshots/${encodeURIComponent(snapshot.name)}`;
    return c.json(snapshot, 201, { Location: location });
  });

  app.openapi(routes.listSnapshots, (c) => {
    const { vol } = c.req.valid("param");
    return c.json({ volume: vol, snapshots: controlPlane.snapshots(vol) }, 200);
  });

  app.openapi(routes.removeSnapshot, async (c) => {
    const { vol, name } = c.req.valid("param");
    await controlPlane.removeSnapshot(vol, name);
    return c.body(null, 204);
  });

  app.openapi(routes.getRetention, (c) => c.json(controlPlane.retention(c.req.valid("param").vol), 200));

  app.openapi(routes.setRetention, async (c) => {
    const { vol } = c.req.valid("param");
    const policy = c.req.valid("json");
    return c.json(await controlPlane.setRetention(vol, definedOnly({ window: policy.window, keep: policy.keep })), 200);
  });

  app.openapi(routes.openImage, async (c) => {
    const { vol } = c.req.valid("param");
    const { at, writable } = c.req.valid("json");
    return c.json(await controlPlane.openImage(vol, { at, writable }), 200);
  });

  app.openapi(routes.getDiff, (c) => {
    const { vol } = c.req.valid("param");
    const { from, to } = c.req.valid("query");
    return c.json(controlPlane.diff(vol, from, to), 200);
  });

  app.openapi(routes.restore, async (c) => {
    const { vol } = c.req.valid("param");
    const request = c.req.valid("json");
    const job = await controlPlane.restore(
      vol,
      definedOnly({ at: request.at, instant: request.instant, full: request.full, force: request.force }),
    );
    return c.json(job, 202, { Location: `/v1/jobs/${encodeURIComponent(job.id)}` });
  });

  app.openapi(routes.resync, async (c) => {
    const { vol } = c.req.valid("param");
    const job = await controlPlane.resync(vol, { full: c.req.valid("json").full });
    return c.json(job, 202, { Location: `/v1/jobs/${encodeURIComponent(job.id)}` });
  });

  app.openapi(routes.listJobs, (c) => c.json({ jobs: controlPlane.jobs() }, 200));

  app.openapi(routes.getJob, (c) => c.json(controlPlane.job(c.req.valid("param").id), 200));

  app.openapi(routes.cancelJob, async (c) => c.json(await controlPlane.cancelJob(c.req.valid("param").id), 200));

  return app;
}

/** A copy of `fields` without its undefined ones (so the control plane sees only what was sent). */
function definedOnly<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as T;
}
