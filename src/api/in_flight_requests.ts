/**
 * The requests an HTTP server is answering, so that closing it has an end: the targets'
 * `HttpServer.close()` lets requests in flight finish for a while, then calls
 * {@link InFlightRequests.end}, which answers every one still pending (and any that arrives
 * after) with a 503 `unavailable` JSON error. Web-standard, shared by both targets.
 *
 * Each pending request holds one entry, removed when it settles: nothing grows with the
 * number of requests a server has answered.
 *
 * @example
 * ```ts
 * import { InFlightRequests } from "./in_flight_requests.ts";
 *
 * const inFlight = new InFlightRequests();
 * const fetch = (request: Request) => inFlight.run(app.fetch(request));
 * // ... when closing, after the linger:
 * inFlight.end();
 * ```
 *
 * @module
 */

/** Tracks pending responses; {@link end} settles them all with a 503. */
export class InFlightRequests {
  readonly #pending = new Set<(response: Response) => void>();
  #ended = false;

  /** Requests pending now. */
  get size(): number {
    return this.#pending.size;
  }

  /** The response of `work`, or the 503 if {@link end} comes first. */
  run(work: Response | Promise<Response>): Promise<Response> {
    if (this.#ended) return Promise.resolve(closingResponse());
    return new Promise<Response>((resolve, reject) => {
      this.#pending.add(resolve);
      Promise.resolve(work).then(
        (response) => {
          this.#pending.delete(resolve);
          resolve(response);
        },
        (error: unknown) => {
          this.#pending.delete(resolve);
          reject(error);
        },
      );
    });
  }

  /** Answers every pending request, and every later one, with the 503. */
  end(): void {
    this.#ended = true;
    for (const resolve of this.#pending) resolve(closingResponse());
    this.#pending.clear();
  }
}

function closingResponse(): Response {
  return Response.json(
    { error: { code: "unavailable", message: "The server is closing" } },
    { status: 503, headers: { Connection: "close" } },
  );
}
