/**
 * Proves the runtime's HTTP server (`targets/node/http_server.ts` on Node,
 * `targets/deno/http_server.ts` on Deno, picked by `test/support/runtime.ts`) over a real
 * socket: the management API answers `fetch` on a free port as it answers `app.request()`
 * (auth, JSON, 201, 413 for a real `Content-Length` and for a chunked body past the limit, a
 * chunked body within it, DELETE with no body); `close()` returns with an idle
 * keep-alive connection still open, waits for a request in flight, and answers 503 to one
 * that outlives `closeLingerMs`; nothing answers after it; a bad or taken address is refused.
 */
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { FakeControlPlane } from "./fake_control_plane.ts";

const token = "socket-test-token";
const authorization = { Authorization: `Bearer ${token}` };

describe("HTTP server of the runtime's target", () => {
  it("serves the API over a socket, then closes with an idle keep-alive connection open", async () => {
    const target = await runtimeTarget();
    const app = createApp({ controlPlane: new FakeControlPlane(), token, bodyBytesMax: 1024 });
    // A linger far over the test's timeout: close() must not wait for it.
    const server = await target.HttpServer.listen(app, "127.0.0.1:0", { closeLingerMs: 600_000 });
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(server.address).not.toBe("127.0.0.1:0");
    const base = `http://${server.address}`;
    try {
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ ok: true });

      const refused = await fetch(`${base}/v1/volumes`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get("www-authenticate")).toBe('Bearer realm="anytime"');
      expect((await refused.json()).error.code).toBe("unauthorized");

      const volumes = await fetch(`${base}/v1/volumes`, { headers: authorization });
      expect(volumes.status).toBe(200);
      expect(volumes.headers.get("content-type")).toMatch(/^application\/json/);
      expect((await volumes.json()).volumes).toHaveLength(2);

      const created = await fetch(`${base}/v1/volumes/db/snapshots`, {
        method: "POST",
        headers: { ...authorization, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "over-the-socket" }),
      });
      expect(created.status).toBe(201);
      expect(await created.json()).toMatchObject({ name: "over-the-socket" });

      const oversize = await fetch(`${base}/v1/volumes/db/snapshots`, {
        method: "POST",
        headers: { ...authorization, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "x", pad: " ".repeat(4096) }),
      });
      expect(oversize.status).toBe(413);
      expect((await oversize.json()).error.code).toBe("payload_too_large");

      // A body without Content-Length (chunked) is read up to the limit, and refused past it.
      const chunked = (text: string) =>
        fetch(`${base}/v1/volumes/db/snapshots`, {
          method: "POST",
          headers: { ...authorization, "Content-Type": "application/json" },
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(text));
              controller.close();
            },
          }),
          duplex: "half",
        } as RequestInit);
      const streamed = await chunked(JSON.stringify({ name: "chunked" }));
      expect(streamed.status).toBe(201);
      expect(await streamed.json()).toMatchObject({ name: "chunked" });
      const streamedOversize = await chunked(JSON.stringify({ name: "x", pad: " ".repeat(4096) }));
      expect(streamedOversize.status).toBe(413);
      await streamedOversize.body?.cancel();

      // DELETE carries no body: it reaches the route (204), over a real socket as through app.request().
      const removed = await fetch(`${base}/v1/volumes/db/snapshots/chunked`, { method: "DELETE", headers: authorization });
      expect(removed.status).toBe(204);
    } finally {
      await server.close();
    }
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    await server.close(); // a second close is a no-op
  }, 30_000);

  it("close() waits for a request in flight", async () => {
    const target = await runtimeTarget();
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let started: () => void = () => {};
    const requestStarted = new Promise<void>((resolve) => (started = resolve));
    const server = await target.HttpServer.listen({
      fetch: async () => {
        started();
        await released;
        return new Response("done");
      },
    }, "127.0.0.1:0", { closeLingerMs: 600_000 });
    const answer = fetch(`http://${server.address}/`).then(async (response) => await response.text());
    await requestStarted;
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    release();
    expect(await answer).toBe("done");
    await closing;
    expect(closed).toBe(true);
  }, 30_000);

  it("close() answers 503 to a request that outlives closeLingerMs", async () => {
    const target = await runtimeTarget();
    let started: () => void = () => {};
    const requestStarted = new Promise<void>((resolve) => (started = resolve));
    const server = await target.HttpServer.listen({
      fetch: () => {
        started();
        return new Promise<Response>(() => {});
      },
    }, "127.0.0.1:0", { closeLingerMs: 100 });
    const answer = fetch(`http://${server.address}/`);
    await requestStarted;
    await server.close();
    const response = await answer;
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: { code: "unavailable", message: "The server is closing" } });
  }, 30_000);

  it("refuses a malformed address and one already taken", async () => {
    const target = await runtimeTarget();
    const app = createApp({ controlPlane: new FakeControlPlane(), token });
    await expect(target.HttpServer.listen(app, "no-port")).rejects.toThrow(SyntaxError);
    const first = await target.HttpServer.listen(app, "127.0.0.1:0");
    try {
      await expect(target.HttpServer.listen(app, first.address)).rejects.toThrow();
    } finally {
      await first.close();
    }
  }, 30_000);
});
