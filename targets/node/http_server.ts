/**
 * The Node target's HTTP server: serves a Web-standard app (the management API of
 * `src/api/app.ts`, or anything with a `fetch`) on `HOST:PORT` through `@hono/node-server`.
 * Listening on port 0 takes a free port, which `address` shows.
 *
 * `close()` is clean: the listener stops at once, idle keep-alive connections are closed,
 * requests in flight may finish; a request still unanswered after `closeLingerMs` is
 * answered 503 (`unavailable`, the API's JSON error, through `InFlightRequests`), and a
 * connection still open another `closeLingerMs` later (a response body still streaming) is
 * destroyed.
 * `@hono/node-server` is told not to replace the global `Request` and `Response` (the
 * process shares them with everything else it runs).
 *
 * @example
 * ```ts
 * import { createApp } from "../../src/api/app.ts";
 * import { HttpServer } from "./http_server.ts";
 *
 * const server = await HttpServer.listen(createApp({ controlPlane, token }), "127.0.0.1:7380");
 * console.log(`API on http://${server.address}`);
 * await server.close();
 * ```
 *
 * @module
 */
import type { AddressInfo } from "node:net";
import type { Server, ServerResponse } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { InFlightRequests } from "../../src/api/in_flight_requests.ts";
import { formatTcpAddress, parseTcpAddress } from "../../src/io/transport.ts";

/** Default time `close()` lets requests in flight finish before they are answered 503. */
export const HTTP_CLOSE_LINGER_MS_DEFAULT = 5_000;

/** What the server serves: a Hono app, or anything with a Web-standard `fetch`. */
export interface HttpHandler {
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/** Options of {@link HttpServer.listen}. */
export interface HttpServerOptions {
  /** How long `close()` waits for requests in flight (default 5 s). */
  closeLingerMs?: number;
}

/** An HTTP server listening on a TCP address. */
export class HttpServer {
  /** Where it listens, `HOST:PORT` (the real port when asked for port 0). */
  readonly address: string;
  readonly #server: Server;
  readonly #closeLingerMs: number;
  readonly #inFlight: InFlightRequests;
  #closed: Promise<void> | undefined;

  private constructor(server: Server, inFlight: InFlightRequests, address: string, closeLingerMs: number) {
    this.#server = server;
    this.#inFlight = inFlight;
    this.address = address;
    this.#closeLingerMs = closeLingerMs;
    // Node closes the connections idle when close() is called, but a keep-alive connection
    // whose request finishes later would stay open until its keep-alive timeout: close it as
    // soon as its response is written.
    server.on("request", (_request, response: ServerResponse) => {
      response.once("finish", () => {
        if (this.#closed !== undefined) setImmediate(() => server.closeIdleConnections());
      });
    });
  }

  /**
   * Listens on `address` (`HOST:PORT`, `[IPV6]:PORT`) and serves `handler`.
   *
   * @throws {SyntaxError} when the address does not parse.
   * @throws when the address cannot be bound (in use, not local), with Node's error.
   */
  static async listen(handler: HttpHandler, address: string, options: HttpServerOptions = {}): Promise<HttpServer> {
    const { hostname, port } = parseTcpAddress(address);
    const closeLingerMs = options.closeLingerMs ?? HTTP_CLOSE_LINGER_MS_DEFAULT;
    if (!(Number.isSafeInteger(closeLingerMs) && closeLingerMs >= 0)) {
      throw new RangeError(`Cannot use closeLingerMs ${closeLingerMs}: use a whole number of milliseconds`);
    }
    const inFlight = new InFlightRequests();
    const server = createAdaptorServer({
      fetch: (request, env) => inFlight.run(handler.fetch(request, env)),
      overrideGlobalObjects: false,
    }) as Server;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      server.once("error", fail);
      server.listen({ host: hostname, port }, () => {
        server.off("error", fail);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    return new HttpServer(server, inFlight, formatTcpAddress(bound.address, bound.port), closeLingerMs);
  }

  /** Stops listening and closes every connection (requests in flight get `closeLingerMs`). */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve, reject) => {
      // First the requests still unanswered get their 503 (each connection closes once it is
      // written); a connection still open another linger later (a body still streaming) is cut.
      let forceTimer: ReturnType<typeof setTimeout> | undefined;
      const lingerTimer = setTimeout(() => {
        this.#inFlight.end();
        forceTimer = setTimeout(() => this.#server.closeAllConnections(), this.#closeLingerMs);
      }, this.#closeLingerMs);
      this.#server.close((error) => {
        clearTimeout(lingerTimer);
        clearTimeout(forceTimer);
        if (error === undefined) resolve();
        else reject(error);
      });
      this.#server.closeIdleConnections();
    });
    return this.#closed;
  }
}
