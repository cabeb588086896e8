/**
 * The one mapping from a thrown error to the API's JSON error (`{error: {code, message}}`)
 * and HTTP status (control_plane.ts lists them). `app.ts`'s `onError` is its only caller, so
 * every route, middleware and validator answers errors the same way.
 *
 * Never a stack trace: an error nobody expected answers 500 with "Internal error", and the
 * error itself goes to the app's log.
 *
 * @example
 * ```ts
 * import { NotFoundError } from "./control_plane.ts";
 * import { errorResponse } from "./error_response.ts";
 *
 * const { status, body } = errorResponse(new NotFoundError('Volume "db" does not exist'));
 * // status 404, body { error: { code: "not_found", message: 'Volume "db" does not exist' } }
 * ```
 *
 * @module
 */
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { UnauthorizedError } from "./bearer_auth.ts";
import {
  ConflictError,
  NotFoundError,
  NotImplementedError,
  PointUnavailableError,
  UnavailableError,
} from "./control_plane.ts";

/** Error codes of the API (`error.code`), by HTTP status. */
export const errorCodes = {
  badRequest: "bad_request",
  unauthorized: "unauthorized",
  notFound: "not_found",
  conflict: "conflict",
  payloadTooLarge: "payload_too_large",
  unsupportedMediaType: "unsupported_media_type",
  pointUnavailable: "point_unavailable",
  internalError: "internal_error",
  notImplemented: "not_implemented",
  unavailable: "unavailable",
} as const;

/** The body of every error response. */
export interface ErrorBodyJson {
  readonly error: {
    readonly code: string;
    readonly message: string;
    /** Validation failures: the request field at fault (`writable`, `limit`, `vol`). */
    readonly field?: string;
    /** Point unavailable: the range that is available, as POINT text. */
    readonly available?: { readonly from: string; readonly to: string };
  };
}

/** A request that fails validation (body, query or path): 400, naming the field. */
export class InvalidRequestError extends TypeError {
  override name = "InvalidRequestError";
  /** The field at fault, as a dotted path (`writable`, `policy.window`), or `""` for the whole body. */
  readonly field: string;

  constructor(message: string, field: string) {
    super(message);
    this.field = field;
  }
}

/** A validation issue as zod reports it (the fields this module reads). */
export interface ValidationIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** `unrecognized_keys`: the unknown keys. */
  readonly keys?: readonly string[];
}

/** Where a request field was: the JSON body, the query string or the path. */
export type RequestPart = "json" | "query" | "param" | string;

const partNames: { readonly [part: string]: string } = { json: "body field", query: "query parameter", param: "path parameter" };

/**
 * The {@link InvalidRequestError} for the first of a validation's issues: its message names
 * the field and says what was expected (`Invalid body field "writable": expected boolean,
 * received string`).
 */
export function invalidRequestOf(issues: readonly ValidationIssue[], part: RequestPart): InvalidRequestError {
  const issue = issues[0];
  const partName = partNames[part] ?? `${part} field`;
  if (issue === undefined) return new InvalidRequestError(`Invalid request ${partName}`, "");
  if (issue.code === "unrecognized_keys" && issue.keys !== undefined && issue.keys.length > 0) {
    const field = [...issue.path.map(String), issue.keys[0]].join(".");
    return new InvalidRequestError(`Unknown ${partName} "${field}"`, field);
  }
  const field = issue.path.map(String).join(".");
  const detail = issue.message.replace(/^[A-Z][a-z]+(?: [a-z]+)*: (?=expected)/, "");
  if (field === "") {
    const whole = part === "json" ? "request body" : `request ${partName}`;
    return new InvalidRequestError(`Invalid ${whole}: ${lowerFirst(detail)}`, "");
  }
  if (issue.code === "invalid_type" && / received undefined$/.test(issue.message)) {
    return new InvalidRequestError(`Missing ${partName} "${field}": ${lowerFirst(detail.replace(/, received undefined$/, ""))}`, field);
  }
  return new InvalidRequestError(`Invalid ${partName} "${field}": ${lowerFirst(detail)}`, field);
}

function lowerFirst(text: string): string {
  return text.length > 0 && /^[A-Z][a-z]/.test(text) ? text[0].toLowerCase() + text.slice(1) : text;
}

/** What {@link errorResponse} answers. */
export interface ErrorResponse {
  readonly status: ContentfulStatusCode;
  readonly body: ErrorBodyJson;
  readonly headers: { readonly [name: string]: string };
  /** True when the error was not one the API expects (a bug, or a control plane failure): log it. */
  readonly unexpected: boolean;
}

const httpExceptionCodes: { readonly [status: number]: string } = {
  400: errorCodes.badRequest,
  401: errorCodes.unauthorized,
  404: errorCodes.notFound,
  409: errorCodes.conflict,
  413: errorCodes.payloadTooLarge,
  415: errorCodes.unsupportedMediaType,
  422: errorCodes.pointUnavailable,
  501: errorCodes.notImplemented,
  503: errorCodes.unavailable,
};

/** Maps a thrown value to the status, JSON body and headers of its response. */
export function errorResponse(error: unknown): ErrorResponse {
  if (error instanceof InvalidRequestError) {
    return answer(400, { code: errorCodes.badRequest, message: error.message, field: error.field });
  }
  if (error instanceof UnauthorizedError) {
    return answer(401, { code: errorCodes.unauthorized, message: error.message }, { "WWW-Authenticate": error.challenge });
  }
  if (error instanceof NotFoundError) return answer(404, { code: errorCodes.notFound, message: error.message });
  if (error instanceof ConflictError) return answer(409, { code: errorCodes.conflict, message: error.message });
  if (error instanceof PointUnavailableError) {
    const available = { from: error.available.from, to: error.available.to };
    return answer(422, { code: errorCodes.pointUnavailable, message: error.message, available });
  }
  if (error instanceof NotImplementedError) {
    return answer(501, { code: errorCodes.notImplemented, message: error.message });
  }
  if (error instanceof UnavailableError) return answer(503, { code: errorCodes.unavailable, message: error.message });
  if (error instanceof SyntaxError || error instanceof TypeError || error instanceof RangeError) {
    return answer(400, { code: errorCodes.badRequest, message: error.message });
  }
  if (error instanceof HTTPException) return httpExceptionResponse(error);
  return { ...answer(500, { code: errorCodes.internalError, message: "Internal error" }), unexpected: true };
}

/** Hono's own exceptions: malformed JSON (400), body limit (413), media type (415). */
function httpExceptionResponse(error: HTTPException): ErrorResponse {
  const status = error.status as ContentfulStatusCode;
  const code = httpExceptionCodes[status] ?? (status >= 500 ? errorCodes.internalError : `http_${status}`);
  const message = status === 415
    ? 'Unsupported media type: send the body as JSON with "Content-Type: application/json"'
    : error.message === ""
    ? `Request failed with status ${status}`
    : error.message;
  return { ...answer(status, { code, message }), unexpected: status >= 500 };
}

function answer(
  status: ContentfulStatusCode,
  error: ErrorBodyJson["error"],
  headers: { readonly [name: string]: string } = {},
): ErrorResponse {
  return { status, body: { error }, headers, unexpected: false };
}
