/**
 * The request body limit (SPEC: 413), checked before a body is buffered: a declared
 * `Content-Length` over the limit is refused at once; a body without one (chunked) is read up
 * to the limit and refused the moment it passes it. Bodies are read only for the methods
 * that carry one here (POST, PUT, PATCH); others pass untouched.
 *
 * Why not `hono/body-limit`: it rebuilds the request as `new Request(c.req.raw, {body})`, and
 * on Node (`@hono/node-server` without replacing the global `Request`) that constructor does
 * not accept the adapter's request object — every chunked POST and every DELETE (whose empty
 * body the adapter still exposes as a stream) failed with a TypeError. This one rebuilds the
 * request from its URL, method and headers, which every runtime's `Request` accepts.
 *
 * @example
 * ```ts
 * // app.use("*", bodyLimit(64 * 1024));
 * ```
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";

const methodsWithBodies: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH"]);

/** A middleware refusing bodies over `bodyBytesMax` bytes with 413. */
export function bodyLimit(bodyBytesMax: number): MiddlewareHandler {
  const tooLarge = () => new HTTPException(413, { message: `Request body is larger than ${bodyBytesMax} bytes` });
  return async (c, next) => {
    const raw = c.req.raw;
    if (!methodsWithBodies.has(raw.method) || raw.body === null) return await next();
    const declared = raw.headers.get("content-length");
    if (declared !== null && !raw.headers.has("transfer-encoding")) {
      if (Number(declared) > bodyBytesMax) throw tooLarge();
      return await next();
    }
    const reader = raw.body.getReader();
    const chunks: Uint8Array[] = [];
    let sizeBytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      sizeBytes += value.length;
      if (sizeBytes > bodyBytesMax) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    const body = new Uint8Array(sizeBytes);
    let atBytes = 0;
    for (const chunk of chunks) {
      body.set(chunk, atBytes);
      atBytes += chunk.length;
    }
    const headers = new Headers(raw.headers);
    headers.delete("transfer-encoding");
    headers.set("content-length", String(sizeBytes));
    c.req.raw = new Request(raw.url, { method: raw.method, headers, body, signal: raw.signal });
    return await next();
  };
}
