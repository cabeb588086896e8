/**
 * Bearer-token authentication (RFC 6750) for the management API, as Hono middleware. The
 * token is compared in constant time: both sides are hashed with SHA-256 first (so neither
 * the length nor a common prefix of the expected token shows in the time taken), then the
 * digests are compared without an early exit.
 *
 * A refused request throws {@link UnauthorizedError}; the app's one `onError` turns it into
 * the 401 JSON error with its `WWW-Authenticate` challenge.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bearerAuth } from "./bearer_auth.ts";
 *
 * const app = new Hono();
 * app.use("/v1/*", bearerAuth({ token: "s3cret" }));
 * ```
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { apiLimits } from "./api_limits.ts";

/** A request without valid credentials (→ 401 with `WWW-Authenticate`). */
export class UnauthorizedError extends Error {
  override name = "UnauthorizedError";
  /** The `WWW-Authenticate` header value to answer with. */
  readonly challenge: string;

  constructor(message: string, challenge: string) {
    super(message);
    this.challenge = challenge;
  }
}

/** Options of {@link bearerAuth}. */
export interface BearerAuthOptions {
  /** The one token that opens the API (non-empty). */
  readonly token: string;
  /** The realm named in the challenge (default `anytime`). */
  readonly realm?: string;
}

const schemePattern = /^Bearer(?: +(.*))?$/i;
const encoder = new TextEncoder();

/**
 * Middleware that lets a request through only with `Authorization: Bearer TOKEN`.
 *
 * @throws {TypeError} when the token is empty or longer than the API accepts.
 */
export function bearerAuth(options: BearerAuthOptions): MiddlewareHandler {
  const tokenBytes = encoder.encode(options.token);
  if (tokenBytes.length === 0 || tokenBytes.length > apiLimits.tokenBytesMax) {
    throw new TypeError(`Cannot use a bearer token of ${tokenBytes.length} bytes: use 1 to ${apiLimits.tokenBytesMax}`);
  }
  const realm = options.realm ?? "anytime";
  const expectedDigest = digest(tokenBytes);
  return async function bearerAuthMiddleware(c, next) {
    const header = c.req.header("authorization");
    if (header === undefined || header.trim() === "") {
      throw new UnauthorizedError(`Missing bearer token: send "Authorization: Bearer TOKEN"`, `Bearer realm="${realm}"`);
    }
    const match = schemePattern.exec(header.trim());
    if (match === null) {
      const scheme = header.trim().split(" ", 1)[0];
      throw new UnauthorizedError(
        `Unsupported authorization scheme "${scheme}": send "Authorization: Bearer TOKEN"`,
        `Bearer realm="${realm}"`,
      );
    }
    const presented = encoder.encode((match[1] ?? "").trim());
    const valid = presented.length <= apiLimits.tokenBytesMax &&
      equalInConstantTime(await digest(presented), await expectedDigest);
    if (!valid) {
      throw new UnauthorizedError("Invalid bearer token", `Bearer realm="${realm}", error="invalid_token"`);
    }
    await next();
  };
}

async function digest(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** Compares two digests of equal length touching every byte (no early exit). */
function equalInConstantTime(left: Uint8Array, right: Uint8Array): boolean {
  if (left.length !== right.length) return false;
  let difference = 0;
  for (let index = 0; index < left.length; index++) difference |= left[index] ^ right[index];
  return difference === 0;
}
