/**
 * Proves `InFlightRequests` (`src/api/in_flight_requests.ts`), which gives an HTTP server's
 * close an end: a response passes through unchanged and leaves nothing behind; `end()`
 * answers every pending request, and every later one, with the 503 JSON error; a rejected
 * handler still rejects.
 */
import { describe, expect, it } from "vitest";
import { InFlightRequests } from "../../src/api/in_flight_requests.ts";

describe("InFlightRequests", () => {
  it("passes responses through and keeps no entry once they settle", async () => {
    const inFlight = new InFlightRequests();
    for (let index = 0; index < 100; index++) {
      expect(await (await inFlight.run(Promise.resolve(new Response(`r${index}`)))).text()).toBe(`r${index}`);
    }
    expect(await (await inFlight.run(new Response("sync"))).text()).toBe("sync");
    await expect(inFlight.run(Promise.reject(new Error("handler failed")))).rejects.toThrow("handler failed");
    expect(inFlight.size).toBe(0);
  });

  it("end() answers pending and later requests with a 503", async () => {
    const inFlight = new InFlightRequests();
    const pending = [inFlight.run(new Promise<Response>(() => {})), inFlight.run(new Promise<Response>(() => {}))];
    expect(inFlight.size).toBe(2);
    inFlight.end();
    expect(inFlight.size).toBe(0);
    for (const response of [...(await Promise.all(pending)), await inFlight.run(new Response("late"))]) {
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ error: { code: "unavailable", message: "The server is closing" } });
    }
  });
});
