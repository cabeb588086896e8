/**
 * The Deno target's HTTP server: serves a Web-standard app (the management API of
 * `src/api/app.ts`, or anything with a `fetch`) on `HOST:PORT` with `Deno.serve`. Listening
 * on port 0 takes a free port, which `address` shows.
 *
 * `close()` is clean: `shutdown()` stops the listener and lets requests in flight finish;
 * a request still unanswered after `closeLingerMs` is answered 503 (`unavailable`, the API's
 * JSON error, through `InFlightRequests`), so the shutdown completes. (Aborting `Deno.serve`'s signal while a shutdown
 * waits throws `BadResource` from inside Deno, so the signal is not used.)
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
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #inFlight: InFlightRequests;
  readonly #closeLingerMs: number;
  #closed: Promise<void> | undefined;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, inFlight: InFlightRequests, closeLingerMs: number) {
    this.#server = server;
    this.#inFlight = inFlight;
    this.#closeLingerMs = closeLingerMs;
    this.address = formatTcpAddress(server.addr.hostname, server.addr.port);
  }

  /**
   * Listens on `address` (`HOST:PORT`, `[IPV6]:PORT`) and serves `handler`.
   *
   * @throws {SyntaxError} when the address does not parse.
   * @throws {Deno.errors.AddrInUse} (and the like) when the address cannot be bound.
   */
  static listen(handler: HttpHandler, address: string, options: HttpServerOptions = {}): Promise<HttpServer> {
    try {
      const { hostname, port } = parseTcpAddress(address);
      const closeLingerMs = options.closeLingerMs ?? HTTP_CLOSE_LINGER_MS_DEFAULT;
      if (!(Number.isSafeInteger(closeLingerMs) && closeLingerMs >= 0)) {
        throw new RangeError(`Cannot use closeLingerMs ${closeLingerMs}: use a whole number of milliseconds`);
      }
      const inFlight = new InFlightRequests();
      const server = Deno.serve(
        // onListen given, so Deno prints nothing of its own.
        { hostname, port, onListen: () => {} },
        (request, info) => inFlight.run(handler.fetch(request, info)),
      );
      return Promise.resolve(new HttpServer(server, inFlight, closeLingerMs));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stops listening and closes every connection (requests in flight get `closeLingerMs`). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const timer = setTimeout(() => this.#inFlight.end(), this.#closeLingerMs);
      try {
        await this.#server.shutdown();
        await this.#server.finished;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.#closed;
  }
}
