/**
 * `ApiClient`: the management API (SPEC.md, "HTTP management API") as typed methods, over an
 * injected `fetch`. The runtime's `fetch` talks to a real `anytime serve`; tests pass Hono's
 * `app.request` or a fake, so the whole CLI runs without a socket.
 *
 * Every refusal becomes an {@link ApiError} carrying the server's `{error: {code, message}}`;
 * a server that cannot be reached is an `ApiError` with status 0 and code `unreachable`.
 *
 * @module
 */
import type {
  DiffJson,
  ImageJson,
  JobJson,
  ProcessJson,
  RetentionJson,
  SnapshotJson,
  TimelineJson,
  VolumeStatusJson,
} from "../api/control_plane.ts";
import { cliLimits } from "./cli_limits.ts";

/** What the client needs of `fetch`: the global one and Hono's `app.request` both fit. */
export type FetchLike = (input: string, init?: RequestInit) => Response | Promise<Response>;

/**
 * A request the API refused (status 400 to 503, the server's code and message), or could not
 * make (status 0, code `unreachable`).
 *
 * @example
 * ```ts
 * const error = new ApiError('Unknown volume "nope"', { status: 404, code: "not_found" });
 * error.status; // 404
 * ```
 */
export class ApiError extends Error {
  override name = "ApiError";
  /** HTTP status, 0 when the API could not be reached. */
  readonly status: number;
  /** The server's error code (`not_found`, `bad_point`...), `unreachable` or `bad_response`. */
  readonly code: string;
  /** For a point outside what is retained: the range that is available. */
  readonly available?: { readonly from: string; readonly to: string };

  constructor(
    message: string,
    options: { status: number; code: string; available?: { from: string; to: string }; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.code = options.code;
    this.available = options.available;
  }
}

/** `GET /v1/volumes`. */
export interface VolumeListJson {
  readonly volumes: readonly VolumeStatusJson[];
}

/** `GET /v1/volumes/:vol/snapshots`. */
export interface SnapshotListJson {
  readonly volume: string;
  readonly snapshots: readonly SnapshotJson[];
}

/** `GET /v1/jobs`. */
export interface JobListJson {
  readonly jobs: readonly JobJson[];
}

/** Where the API is and how to authenticate (see `api_connection.ts`). */
export interface ApiClientOptions {
  /** `http://127.0.0.1:7380`, without a trailing slash. */
  readonly baseUrl: string;
  /** Bearer token; absent sends no `Authorization` header (the server answers 401). */
  readonly token?: string;
}

/**
 * The management API as typed methods, named like `ControlPlane`'s.
 *
 * @example
 * ```ts
 * const client = new ApiClient({ fetch: globalThis.fetch }, { baseUrl: "http://127.0.0.1:7380", token: "secret" });
 * const volumes = await client.volumes();
 * const job = await client.restore("db", { at: "snap:before-upgrade", instant: false });
 * ```
 */
export class ApiClient {
  readonly #fetch: FetchLike;
  readonly baseUrl: string;
  readonly #token?: string;

  constructor(deps: { fetch: FetchLike }, options: ApiClientOptions) {
    this.#fetch = deps.fetch;
    this.baseUrl = options.baseUrl;
    this.#token = options.token;
  }

  /** `GET /v1/status`. */
  process(): Promise<ProcessJson> {
    return this.#request("GET", "/v1/status");
  }

  /** `GET /v1/volumes`. */
  async volumes(): Promise<VolumeListJson> {
    return listOf(await this.#request<unknown>("GET", "/v1/volumes"), "volumes", {});
  }

  /** `GET /v1/volumes/:vol`. */
  volume(name: string): Promise<VolumeStatusJson> {
    return this.#request("GET", `/v1/volumes/${segment(name)}`);
  }

  /** `GET /v1/volumes/:vol/timeline` (`from`, `to`, `limit` only when given). */
  timeline(name: string, options: { from?: string; to?: string; limit?: number } = {}): Promise<TimelineJson> {
    const query = new URLSearchParams();
    if (options.from !== undefined) query.set("from", options.from);
    if (options.to !== undefined) query.set("to", options.to);
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const suffix = query.toString() === "" ? "" : `?${query}`;
    return this.#request("GET", `/v1/volumes/${segment(name)}/timeline${suffix}`);
  }

  /** `GET /v1/volumes/:vol/snapshots`. */
  async snapshots(name: string): Promise<SnapshotListJson> {
    return listOf(await this.#request<unknown>("GET", `/v1/volumes/${segment(name)}/snapshots`), "snapshots", {
      volume: name,
    });
  }

  /** `POST /v1/volumes/:vol/snapshots {name}`. */
  createSnapshot(name: string, snapshotName: string): Promise<SnapshotJson> {
    return this.#request("POST", `/v1/volumes/${segment(name)}/snapshots`, { name: snapshotName });
  }

  /** `DELETE /v1/volumes/:vol/snapshots/:name`. */
  async removeSnapshot(name: string, snapshotName: string): Promise<void> {
    await this.#request<unknown>("DELETE", `/v1/volumes/${segment(name)}/snapshots/${segment(snapshotName)}`);
  }

  /** `GET /v1/volumes/:vol/retention`. */
  retention(name: string): Promise<RetentionJson> {
    return this.#request("GET", `/v1/volumes/${segment(name)}/retention`);
  }

  /** `PUT /v1/volumes/:vol/retention` with the fields given. */
  setRetention(name: string, policy: Partial<RetentionJson>): Promise<RetentionJson> {
    return this.#request("PUT", `/v1/volumes/${segment(name)}/retention`, policy);
  }

  /** `POST /v1/volumes/:vol/images {at, writable}`. */
  openImage(name: string, options: { at: string; writable: boolean }): Promise<ImageJson> {
    return this.#request("POST", `/v1/volumes/${segment(name)}/images`, { at: options.at, writable: options.writable });
  }

  /** `GET /v1/volumes/:vol/diff?from=&to=`. */
  diff(name: string, options: { from: string; to: string }): Promise<DiffJson> {
    const query = new URLSearchParams({ from: options.from, to: options.to });
    return this.#request("GET", `/v1/volumes/${segment(name)}/diff?${query}`);
  }

  /** `POST /v1/volumes/:vol/restore {at, instant, full, force}` → the job (202). */
  restore(name: string, options: { at: string; instant: boolean; full?: boolean; force?: boolean }): Promise<JobJson> {
    const body = { at: options.at, instant: options.instant, full: options.full ?? false, force: options.force ?? false };
    return this.#request("POST", `/v1/volumes/${segment(name)}/restore`, body);
  }

  /** `POST /v1/volumes/:vol/resync {full}` → the job (202). */
  resync(name: string, options: { full: boolean }): Promise<JobJson> {
    return this.#request("POST", `/v1/volumes/${segment(name)}/resync`, { full: options.full });
  }

  /** `GET /v1/jobs`. */
  async jobs(): Promise<JobListJson> {
    return listOf(await this.#request<unknown>("GET", "/v1/jobs"), "jobs", {});
  }

  /** `GET /v1/jobs/:id`. */
  job(id: string): Promise<JobJson> {
    return this.#request("GET", `/v1/jobs/${segment(id)}`);
  }

  /** `DELETE /v1/jobs/:id` → the job as it is after the cancel. */
  cancelJob(id: string): Promise<JobJson> {
    return this.#request("DELETE", `/v1/jobs/${segment(id)}`);
  }

  /** The JSON body of a successful answer (typed by the caller: the SPEC shapes), or a refusal. */
  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(
        `Cannot reach the Anytime API at ${this.baseUrl}: ${describeFailure(error)} — is \`anytime serve\` running?`,
        { status: 0, code: "unreachable", cause: error },
      );
    }
    const text = await readTextCapped(response, url);
    if (!response.ok) throw errorFromResponse(response.status, text, `${method} ${url}`);
    if (text.trim() === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new ApiError(
        `The API answered ${method} ${url} with a body that is not JSON: ${quoteBody(text)}`,
        { status: response.status, code: "bad_response", cause: error },
      );
    }
  }
}

/** A path segment: names may hold `:` and `.`, which stay readable; anything else is escaped. */
function segment(name: string): string {
  return encodeURIComponent(name);
}

/**
 * Lists come wrapped (`{volumes: [...]}`), as the API sends them and `--json` prints them; a
 * bare array (an older or simpler server) is wrapped the same way.
 */
function listOf<T>(body: unknown, key: string, extra: Record<string, string>): T {
  if (Array.isArray(body)) return { ...extra, [key]: body } as T;
  if (typeof body === "object" && body !== null && Array.isArray((body as Record<string, unknown>)[key])) {
    return body as T;
  }
  throw new ApiError(`The API answered a list of ${key} with something else: ${quoteBody(JSON.stringify(body))}`, {
    status: 200,
    code: "bad_response",
  });
}

/** Reads the body, stopping at `cliLimits.responseCharsMax` instead of buffering on. */
async function readTextCapped(response: Response, url: string): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (text.length > cliLimits.responseCharsMax) {
      await reader.cancel();
      throw new ApiError(`The API's answer to ${url} is longer than ${cliLimits.responseCharsMax} characters`, {
        status: response.status,
        code: "bad_response",
      });
    }
  }
  return text + decoder.decode();
}

/** SPEC: errors are `{error: {code, message}}`; anything else (a proxy's page) is quoted. */
function errorFromResponse(status: number, text: string, request: string): ApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined; // Not JSON: quoted below.
  }
  const error = typeof parsed === "object" && parsed !== null ? (parsed as { error?: unknown }).error : undefined;
  if (typeof error === "object" && error !== null) {
    const { code, message, available } = error as { code?: unknown; message?: unknown; available?: unknown };
    if (typeof message === "string") {
      return new ApiError(message, {
        status,
        code: typeof code === "string" ? code : `http_${status}`,
        available: isAvailable(available) ? available : undefined,
      });
    }
  }
  return new ApiError(`The API answered ${request} with HTTP ${status}: ${quoteBody(text)}`, {
    status,
    code: `http_${status}`,
  });
}

function isAvailable(value: unknown): value is { from: string; to: string } {
  if (typeof value !== "object" || value === null) return false;
  const { from, to } = value as { from?: unknown; to?: unknown };
  return typeof from === "string" && typeof to === "string";
}

function quoteBody(text: string): string {
  const trimmed = text.trim();
  if (trimmed === "") return "(empty body)";
  const cut = trimmed.length > cliLimits.quotedBodyCharsMax
    ? `${trimmed.slice(0, cliLimits.quotedBodyCharsMax)}...`
    : trimmed;
  return `"${cut}"`;
}

/**
 * What went wrong on the way: Node's `fetch failed` hides the reason in `cause`
 * (`connect ECONNREFUSED 127.0.0.1:7380`); Deno puts it in the message.
 */
function describeFailure(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause;
    if (cause instanceof Error && cause.message !== "") return cause.message;
    if (error.message !== "") return error.message;
  }
  return String(error);
}
