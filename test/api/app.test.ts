/**
 * Proves the management API (`src/api/app.ts`) route by route through `app.request()`, no
 * socket, over the in-memory control plane of `fake_control_plane.ts`: every route answers
 * its success status with the control plane's JSON; each error class of control_plane.ts
 * comes back as `{error: {code, message}}` with its status (400, 404, 409, 422, 501, 503),
 * and never as a stack trace (500); validation failures are 400s that name the field;
 * authentication refuses a missing, wrong or non-bearer token with 401 and a challenge,
 * everywhere but `/healthz`; oversize bodies are 413 whether or not they announce a length,
 * and an announced one is refused unread; `/metrics` parses back as Prometheus text; and
 * `/openapi.json` is a coherent OpenAPI 3 document that lists every route.
 */
import { describe, expect, it } from "vitest";
import { apiLimits } from "../../src/api/api_limits.ts";
import { type ApiLogEntry, createApp } from "../../src/api/app.ts";
import { PointUnavailableError } from "../../src/api/control_plane.ts";
import { METRICS_CONTENT_TYPE } from "../../src/api/metrics_text.ts";
import { routes } from "../../src/api/routes.ts";
import { FakeControlPlane, timeOfSeq } from "./fake_control_plane.ts";
import { parsePrometheusText } from "./prometheus_text.ts";

const token = "test-token-0123456789abcdef";

interface CallOptions {
  method?: string;
  /** Sent as JSON (a string is sent as is). */
  body?: unknown;
  /** `null` sends no Authorization header. */
  token?: string | null;
  headers?: Record<string, string>;
}

function setup(options: { restoreImplemented?: boolean; bodyBytesMax?: number } = {}) {
  const controlPlane = new FakeControlPlane({ restoreImplemented: options.restoreImplemented });
  const logged: ApiLogEntry[] = [];
  const app = createApp({
    controlPlane,
    token,
    bodyBytesMax: options.bodyBytesMax,
    memoryUsage: () => ({ rss: 50_000_000, heapTotal: 20_000_000, heapUsed: 12_000_000, external: 3_000_000 }),
    log: (entry) => logged.push(entry),
  });
  async function call(path: string, callOptions: CallOptions = {}) {
    const headers: Record<string, string> = { ...callOptions.headers };
    const bearer = callOptions.token === undefined ? token : callOptions.token;
    if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
    let body: string | undefined;
    if (callOptions.body !== undefined) {
      body = typeof callOptions.body === "string" ? callOptions.body : JSON.stringify(callOptions.body);
      headers["Content-Type"] ??= "application/json";
    }
    const response = await app.request(path, { method: callOptions.method ?? "GET", headers, body });
    const text = await response.text();
    const isJson = (response.headers.get("content-type") ?? "").startsWith("application/json");
    return { status: response.status, headers: response.headers, text, json: isJson ? JSON.parse(text) : undefined };
  }
  return { app, controlPlane, logged, call };
}

/** Checks an error answer: its status, code, and that no stack trace leaks. */
function expectError(
  answer: { status: number; json: unknown; text: string },
  status: number,
  code: string,
): { code: string; message: string; field?: string; available?: { from: string; to: string } } {
  expect({ status: answer.status, code: (answer.json as { error?: { code?: string } })?.error?.code }).toEqual({
    status,
    code,
  });
  const error = (answer.json as { error: { code: string; message: string } }).error;
  expect(typeof error.message).toBe("string");
  expect(error.message.length).toBeGreaterThan(0);
  expect(answer.text).not.toMatch(/\n\s+at |\.ts:\d+/);
  return error;
}

describe("API health and authentication", () => {
  it("GET /healthz answers without a token", async () => {
    const { call } = setup();
    const answer = await call("/healthz", { token: null });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ ok: true });
  });

  it("a request without a token is a 401 with a Bearer challenge and a JSON error", async () => {
    const { call, controlPlane } = setup();
    for (const path of ["/v1/volumes", "/v1/status", "/metrics", "/openapi.json", "/v1/no-such-route"]) {
      const answer = await call(path, { token: null });
      const error = expectError(answer, 401, "unauthorized");
      expect(error.message).toContain("Authorization: Bearer TOKEN");
      expect(answer.headers.get("www-authenticate")).toBe('Bearer realm="anytime"');
    }
    expect(controlPlane.calls).toEqual([]);
  });

  it("a wrong token is a 401 invalid_token, whatever its length", async () => {
    const { call, controlPlane } = setup();
    for (const wrong of ["x", `${token}x`, token.slice(0, -1), "y".repeat(apiLimits.tokenBytesMax + 1)]) {
      const answer = await call("/v1/volumes", { token: wrong });
      expect(expectError(answer, 401, "unauthorized").message).toBe("Invalid bearer token");
      expect(answer.headers.get("www-authenticate")).toBe('Bearer realm="anytime", error="invalid_token"');
    }
    expect(controlPlane.calls).toEqual([]);
  });

  it("another scheme or an empty bearer is a 401", async () => {
    const { call } = setup();
    const basic = await call("/v1/volumes", { token: null, headers: { Authorization: `Basic ${btoa("a:b")}` } });
    expect(expectError(basic, 401, "unauthorized").message).toContain('"Basic"');
    const empty = await call("/v1/volumes", { token: null, headers: { Authorization: "Bearer " } });
    expectError(empty, 401, "unauthorized");
  });

  it("the bearer scheme is case-insensitive", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes", { token: null, headers: { Authorization: `bearer ${token}` } });
    expect(answer.status).toBe(200);
  });

  it("an unknown route with a token is a JSON 404", async () => {
    const { call } = setup();
    const error = expectError(await call("/v1/nope"), 404, "not_found");
    expect(error.message).toBe('No route for GET "/v1/nope"');
    expectError(await call("/v1/volumes", { method: "PATCH" }), 404, "not_found");
  });

  it("createApp refuses an empty token and a body limit out of range", () => {
    const controlPlane = new FakeControlPlane();
    expect(() => createApp({ controlPlane, token: "" })).toThrow(TypeError);
    expect(() => createApp({ controlPlane, token, bodyBytesMax: 0 })).toThrow(RangeError);
    expect(() => createApp({ controlPlane, token, bodyBytesMax: apiLimits.bodyBytesMaxCeiling + 1 })).toThrow(
      RangeError,
    );
  });
});

describe("API volumes", () => {
  it("GET /v1/volumes lists every volume's status", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes");
    expect(answer.status).toBe(200);
    expect(answer.json.volumes.map((volume: { name: string }) => volume.name)).toEqual(["db", "logs"]);
  });

  it("GET /v1/volumes/:vol answers the SPEC's fields", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db");
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      name: "db",
      size: 1024 * 1024 * 1024,
      state: "protecting",
      head: { seq: 812, time: timeOfSeq(812) },
      window: { from: { seq: 100, time: timeOfSeq(100) }, to: { seq: 812, time: timeOfSeq(812) } },
      lagSeconds: 0,
      journalBytes: 812 * 4096,
      gaps: [],
    });
    expect(answer.json.suspect).toHaveLength(1);
  });

  it("an unknown volume is a 404 that quotes it", async () => {
    const { call } = setup();
    expect(expectError(await call("/v1/volumes/nope"), 404, "not_found").message).toBe('Volume "nope" does not exist');
  });

  it("a volume name is decoded from the path and limited in length", async () => {
    const { call, controlPlane } = setup();
    expectError(await call("/v1/volumes/a%20b"), 404, "not_found");
    expect(controlPlane.calls.at(-1)).toEqual({ method: "volume", args: ["a b"] });
    const long = "v".repeat(apiLimits.volumeNameBytesMax + 1);
    expect(expectError(await call(`/v1/volumes/${long}`), 400, "bad_request").field).toBe("vol");
  });

  it("GET /v1/status answers the process", async () => {
    const { call } = setup();
    const answer = await call("/v1/status");
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ role: "serve", version: "0.1.0", nbd: "nbd://127.0.0.1:10809" });
  });
});

describe("API timeline", () => {
  it("passes from, to and limit on, limit as a number", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/timeline?from=seq:200&to=head&limit=2");
    expect(answer.status).toBe(200);
    expect(controlPlane.calls.at(-1)).toEqual({ method: "timeline", args: ["db", { from: "seq:200", to: "head", limit: 2 }] });
    expect(answer.json.entries.map((entry: { kind: string }) => entry.kind)).toEqual(["gap", "inSync"]);
  });

  it("without a query passes no options", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/timeline");
    expect(answer.status).toBe(200);
    expect(controlPlane.calls.at(-1)).toEqual({ method: "timeline", args: ["db", {}] });
    expect(answer.json).toMatchObject({ volume: "db", window: { from: { seq: 100 }, to: { seq: 812 } } });
    expect(answer.json.entries).toHaveLength(3);
  });

  it("a bad limit is a 400 naming limit", async () => {
    const { call, controlPlane } = setup();
    for (const limit of ["0", "abc", "-1", "1.5", String(apiLimits.timelineEntriesMax + 1)]) {
      const error = expectError(await call(`/v1/volumes/db/timeline?limit=${limit}`), 400, "bad_request");
      expect(error.field).toBe("limit");
      expect(error.message).toMatch(/^Invalid query parameter "limit": /);
    }
    expect(controlPlane.calls).toEqual([]);
  });

  it("a malformed POINT is the control plane's SyntaxError as a 400", async () => {
    const { call } = setup();
    const error = expectError(await call("/v1/volumes/db/timeline?from=seq:x"), 400, "bad_request");
    expect(error.message).toBe('Cannot parse point "seq:x": "x" is not a sequence number');
  });

  it("a point outside the window is a 422 with the available range", async () => {
    const { call } = setup();
    const error = expectError(await call("/v1/volumes/db/timeline?from=seq:5"), 422, "point_unavailable");
    expect(error.available).toEqual({ from: "seq:100", to: "seq:812" });
  });
});

describe("API snapshots", () => {
  it("POST creates one: 201 with a Location", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/snapshots", { method: "POST", body: { name: "nightly.1" } });
    expect(answer.status).toBe(201);
    expect(answer.json).toEqual({ name: "nightly.1", seq: 813, time: timeOfSeq(813) });
    expect(answer.headers.get("location")).toBe("/v1/volumes/db/snapshots/nightly.1");
    expect(controlPlane.calls.at(-1)).toEqual({ method: "createSnapshot", args: ["db", "nightly.1"] });
  });

  it("a name in use is a 409", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/snapshots", { method: "POST", body: { name: "before-upgrade" } });
    expect(expectError(answer, 409, "conflict").message).toBe('Snapshot "before-upgrade" of volume "db" already exists');
  });

  it("on an unknown volume is a 404", async () => {
    const { call } = setup();
    expectError(await call("/v1/volumes/nope/snapshots", { method: "POST", body: { name: "a" } }), 404, "not_found");
  });

  it("a bad, missing or unknown field is a 400 naming it, and calls nothing", async () => {
    const { call, controlPlane } = setup();
    const post = (body: unknown) => call("/v1/volumes/db/snapshots", { method: "POST", body });
    const badName = expectError(await post({ name: "-starts-with-dash" }), 400, "bad_request");
    expect(badName).toMatchObject({ field: "name" });
    expect(badName.message).toMatch(/^Invalid body field "name": /);
    expect(expectError(await post({ name: "x".repeat(201) }), 400, "bad_request").field).toBe("name");
    expect(expectError(await post({ name: 7 }), 400, "bad_request").message).toBe(
      'Invalid body field "name": expected string, received number',
    );
    expect(expectError(await post({}), 400, "bad_request").message).toBe('Missing body field "name": expected string');
    expect(expectError(await post({ name: "a", extra: 1 }), 400, "bad_request")).toMatchObject({
      field: "extra",
      message: 'Unknown body field "extra"',
    });
    expect(expectError(await post([1]), 400, "bad_request").message).toBe(
      "Invalid request body: expected object, received array",
    );
    expect(controlPlane.calls).toEqual([]);
  });

  it("malformed JSON is a 400", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/snapshots", { method: "POST", body: '{"name": ' });
    expect(expectError(answer, 400, "bad_request").message).toBe("Malformed JSON in request body");
  });

  it("a body that is not JSON is a 415", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/snapshots", {
      method: "POST",
      body: "name=a",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    expectError(answer, 415, "unsupported_media_type");
  });

  it("GET lists them", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/snapshots");
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ volume: "db", snapshots: [{ name: "before-upgrade", seq: 500, time: timeOfSeq(500) }] });
    expectError(await call("/v1/volumes/nope/snapshots"), 404, "not_found");
  });

  it("DELETE removes one: 204, then 404", async () => {
    const { call } = setup();
    const removed = await call("/v1/volumes/db/snapshots/before-upgrade", { method: "DELETE" });
    expect(removed.status).toBe(204);
    expect(removed.text).toBe("");
    const again = await call("/v1/volumes/db/snapshots/before-upgrade", { method: "DELETE" });
    expect(expectError(again, 404, "not_found").message).toBe('Snapshot "before-upgrade" of volume "db" does not exist');
  });
});

describe("API retention", () => {
  it("GET answers the policy", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/retention");
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ window: "48h", keep: "24x1h,14x1d,8x1w" });
    expectError(await call("/v1/volumes/nope/retention"), 404, "not_found");
  });

  it("PUT passes only the fields sent and answers the policy now", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/retention", { method: "PUT", body: { window: "72h" } });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ window: "72h", keep: "24x1h,14x1d,8x1w" });
    expect(controlPlane.calls.at(-1)).toEqual({ method: "setRetention", args: ["db", { window: "72h" }] });
    expect((await call("/v1/volumes/db/retention")).json.window).toBe("72h");
    const none = await call("/v1/volumes/db/retention", { method: "PUT", body: { keep: "" } });
    expect(none.json).toEqual({ window: "72h", keep: "" });
  });

  it("PUT with a bad field is a 400 naming it; a policy the control plane refuses is a 400 too", async () => {
    const { call } = setup();
    const badType = await call("/v1/volumes/db/retention", { method: "PUT", body: { window: 48 } });
    expect(expectError(badType, 400, "bad_request").field).toBe("window");
    const refused = await call("/v1/volumes/db/retention", { method: "PUT", body: { window: "forever" } });
    expect(expectError(refused, 400, "bad_request").message).toBe('Cannot parse window "forever": expected a duration such as 48h');
  });
});

describe("API images", () => {
  it("POST resolves the point and answers the URI, read-only by default", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/images", { method: "POST", body: { at: "snap:before-upgrade" } });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      uri: "nbd://127.0.0.1:10809/db@seq:500",
      export: "db@seq:500",
      point: { seq: 500, time: timeOfSeq(500), landedOn: "snapshot" },
      suspect: false,
      writable: false,
    });
    expect(controlPlane.calls.at(-1)).toEqual({ method: "openImage", args: ["db", { at: "snap:before-upgrade", writable: false }] });
  });

  it("writable gives a +rw export; a suspect point opens with a warning", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/db/images", { method: "POST", body: { at: "seq:310", writable: true } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ uri: "nbd://127.0.0.1:10809/db@seq:310+rw", suspect: true, writable: true });
    expect(answer.json.warning).toContain("suspect");
  });

  it("a bad POINT is a 400, an unretained one a 422 with the range", async () => {
    const { call } = setup();
    const post = (body: unknown) => call("/v1/volumes/db/images", { method: "POST", body });
    expect(expectError(await post({ at: "yesterday" }), 400, "bad_request").message).toMatch(/^Cannot parse point "yesterday"/);
    expect(expectError(await post({ at: "seq:9999" }), 422, "point_unavailable").available).toEqual({
      from: "seq:100",
      to: "seq:812",
    });
    expect(expectError(await post({ at: "snap:gone" }), 422, "point_unavailable").message).toBe(
      'Snapshot "gone" of volume "db" does not exist',
    );
    expect(expectError(await post({ at: "head", writable: "yes" }), 400, "bad_request").field).toBe("writable");
    expect(expectError(await post({ writable: true }), 400, "bad_request").field).toBe("at");
    expect(expectError(await post({ at: "" }), 400, "bad_request").field).toBe("at");
  });
});

describe("API diff", () => {
  it("GET answers the extents between two points", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/diff?from=snap:before-upgrade&to=now");
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      from: { seq: 500, landedOn: "snapshot" },
      to: { seq: 812 },
      extents: [{ offset: 0, length: 4096 }, { offset: 1048576, length: 65536 }],
      changedBytes: 4096 + 65536,
    });
    expect(controlPlane.calls.at(-1)).toEqual({ method: "diff", args: ["db", "snap:before-upgrade", "now"] });
  });

  it("a missing point is a 400 naming it; an unretained one a 422", async () => {
    const { call } = setup();
    expect(expectError(await call("/v1/volumes/db/diff?from=seq:100"), 400, "bad_request")).toMatchObject({
      field: "to",
      message: 'Missing query parameter "to": expected string',
    });
    expectError(await call("/v1/volumes/db/diff?from=seq:1&to=now"), 422, "point_unavailable");
    expectError(await call("/v1/volumes/nope/diff?from=seq:1&to=now"), 404, "not_found");
  });
});

describe("API restore and resync", () => {
  it("POST restore starts a job: 202 with a Location, instant false by default", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/restore", { method: "POST", body: { at: "snap:before-upgrade" } });
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ id: "job-2", kind: "restore", volume: "db", state: "running", progress: 0 });
    expect(answer.json.point).toEqual({ seq: 500, time: timeOfSeq(500), landedOn: "snapshot" });
    expect(answer.headers.get("location")).toBe("/v1/jobs/job-2");
    expect(controlPlane.calls.at(-1)).toEqual({ method: "restore", args: ["db", { at: "snap:before-upgrade", instant: false }] });
  });

  it("passes instant, full and force when sent; a second job on the volume is a 409", async () => {
    const { call, controlPlane } = setup();
    const body = { at: "seq:700", instant: true, full: true, force: false };
    expect((await call("/v1/volumes/db/restore", { method: "POST", body })).status).toBe(202);
    expect(controlPlane.calls.at(-1)).toEqual({ method: "restore", args: ["db", body] });
    const again = await call("/v1/volumes/db/restore", { method: "POST", body });
    expect(expectError(again, 409, "conflict").message).toBe('Job "job-2" is already running on volume "db"');
  });

  it("restore answers 501 while the control plane does not implement it", async () => {
    const { call } = setup({ restoreImplemented: false });
    const answer = await call("/v1/volumes/db/restore", { method: "POST", body: { at: "now" } });
    expect(expectError(answer, 501, "not_implemented").message).toBe("Restore is not implemented yet");
  });

  it("restore validates its body and its point", async () => {
    const { call } = setup();
    const post = (body: unknown) => call("/v1/volumes/db/restore", { method: "POST", body });
    expect(expectError(await post({ at: "now", instant: "no" }), 400, "bad_request").field).toBe("instant");
    expect(expectError(await post({}), 400, "bad_request").field).toBe("at");
    expectError(await post({ at: "seq:x" }), 400, "bad_request");
    expectError(await post({ at: "seq:1" }), 422, "point_unavailable");
    expectError(await call("/v1/volumes/nope/restore", { method: "POST", body: { at: "now" } }), 404, "not_found");
  });

  it("POST resync starts a job: 202; full false by default", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/v1/volumes/db/resync", { method: "POST", body: {} });
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ kind: "resync", volume: "db", state: "running" });
    expect(answer.headers.get("location")).toBe(`/v1/jobs/${answer.json.id}`);
    expect(controlPlane.calls.at(-1)).toEqual({ method: "resync", args: ["db", { full: false }] });
  });

  it("resync of a volume whose switch is not connected is a 503", async () => {
    const { call } = setup();
    const answer = await call("/v1/volumes/logs/resync", { method: "POST", body: { full: true } });
    expect(expectError(answer, 503, "unavailable").message).toBe('The switch of volume "logs" is not connected');
    expect(expectError(await call("/v1/volumes/db/resync", { method: "POST", body: { full: 1 } }), 400, "bad_request").field)
      .toBe("full");
  });
});

describe("API jobs", () => {
  it("GET /v1/jobs lists them, GET /v1/jobs/:id answers one", async () => {
    const { call } = setup();
    const list = await call("/v1/jobs");
    expect(list.status).toBe(200);
    expect(list.json.jobs.map((job: { id: string }) => job.id)).toEqual(["job-1"]);
    const one = await call("/v1/jobs/job-1");
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ id: "job-1", kind: "resync", state: "done", progress: 1, bytesMoved: 4096 });
    expect(expectError(await call("/v1/jobs/job-9"), 404, "not_found").message).toBe('Job "job-9" does not exist');
  });

  it("DELETE cancels a running job; an ended one is a 409, an unknown one a 404", async () => {
    const { call } = setup();
    const started = await call("/v1/volumes/db/resync", { method: "POST", body: {} });
    const cancelled = await call(`/v1/jobs/${started.json.id}`, { method: "DELETE" });
    expect(cancelled.status).toBe(200);
    expect(cancelled.json).toMatchObject({ id: started.json.id, state: "cancelled" });
    expect((await call(`/v1/jobs/${started.json.id}`)).json.state).toBe("cancelled");
    expectError(await call("/v1/jobs/job-1", { method: "DELETE" }), 409, "conflict");
    expectError(await call("/v1/jobs/job-9", { method: "DELETE" }), 404, "not_found");
  });
});

describe("API body limit", () => {
  const bodyBytesMax = 1024;

  it("a Content-Length over the limit is a 413 and the body is never read", async () => {
    const { app, controlPlane } = setup({ bodyBytesMax });
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(bodyBytesMax * 2));
        controller.close();
      },
    }, { highWaterMark: 0 });
    const response = await app.request("/v1/volumes/db/snapshots", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${token}`,
        "Content-Type": "application/json",
        "Content-Length": String(bodyBytesMax * 2),
      },
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    const json = await response.json();
    expect(json).toEqual({ error: { code: "payload_too_large", message: `Request body is larger than ${bodyBytesMax} bytes` } });
    expect(pulled).toBe(0);
    expect(controlPlane.calls).toEqual([]);
  });

  it("a body without a length is counted as it streams and refused at the limit", async () => {
    const { app, controlPlane } = setup({ bodyBytesMax });
    let chunksSent = 0;
    const chunksMax = 100;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        chunksSent += 1;
        if (chunksSent > chunksMax) controller.close();
        else controller.enqueue(new TextEncoder().encode(" ".repeat(256)));
      },
    });
    const response = await app.request("/v1/volumes/db/snapshots", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe("payload_too_large");
    expect(chunksSent).toBeLessThan(chunksMax / 2);
    expect(controlPlane.calls).toEqual([]);
  });

  it("a body at the limit passes", async () => {
    const { call } = setup({ bodyBytesMax });
    const name = "n";
    const json = JSON.stringify({ name });
    const padded = json.slice(0, -1) + " ".repeat(bodyBytesMax - json.length) + "}";
    expect(padded.length).toBe(bodyBytesMax);
    expect((await call("/v1/volumes/db/snapshots", { method: "POST", body: padded })).status).toBe(201);
  });

  it("the default limit is apiLimits.bodyBytesMaxDefault", async () => {
    const { call } = setup();
    const over = JSON.stringify({ name: "n", pad: " ".repeat(apiLimits.bodyBytesMaxDefault) });
    expectError(await call("/v1/volumes/db/snapshots", { method: "POST", body: over }), 413, "payload_too_large");
  });
});

describe("API unexpected errors", () => {
  it("an error the API does not expect is a 500 without its message or stack, and is logged", async () => {
    const { call, controlPlane, logged } = setup();
    const failure = new Error("disk exploded at /secret/path");
    controlPlane.failNext = failure;
    const answer = await call("/v1/volumes/db");
    expect(answer.status).toBe(500);
    expect(answer.json).toEqual({ error: { code: "internal_error", message: "Internal error" } });
    expect(answer.text).not.toContain("secret");
    expect(logged).toEqual([
      { level: "error", message: "Request failed", method: "GET", path: "/v1/volumes/db", status: 500, error: failure },
    ]);
  });

  it("each error class maps to its status wherever it is thrown", async () => {
    const { call, controlPlane } = setup();
    controlPlane.failNext = new PointUnavailableError("Point is gone", { from: "seq:1", to: "seq:2" });
    expect(expectError(await call("/v1/jobs"), 422, "point_unavailable").available).toEqual({ from: "seq:1", to: "seq:2" });
    controlPlane.failNext = new RangeError("Limit out of range");
    expectError(await call("/v1/status"), 400, "bad_request");
    controlPlane.failNext = "not even an Error";
    expectError(await call("/v1/status"), 500, "internal_error");
  });
});

describe("API metrics", () => {
  it("GET /metrics is Prometheus text that parses back to the control plane's families plus memory", async () => {
    const { call, controlPlane } = setup();
    const answer = await call("/metrics");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toBe(METRICS_CONTENT_TYPE);
    const families = parsePrometheusText(answer.text);
    const expected = controlPlane.metrics();
    expect(families.slice(0, expected.length)).toEqual(expected);
    const byName = new Map(families.map((family) => [family.name, family]));
    expect(byName.get("process_resident_memory_bytes")).toEqual({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      type: "gauge",
      samples: [{ labels: {}, value: 50_000_000 }],
    });
    expect(byName.get("anytime_process_heap_used_bytes")?.samples[0].value).toBe(12_000_000);
  });

  it("escapes HELP text and label values", async () => {
    const { call } = setup();
    const text = (await call("/metrics")).text;
    expect(text).toContain("# HELP anytime_volume_writes_total Writes ingested.\\nCounted at the appliance, \\\\ included.\n");
    expect(text).toContain('anytime_test_escape{value="a \\"quoted\\" \\\\ back\\nslash"} +Inf\n');
    expect(text).toContain("anytime_test_escape NaN\n");
    expect(text).toContain("# TYPE anytime_volume_writes_total counter\n");
    expect(text).toContain('anytime_volume_head_seq{volume="db"} 812\n');
  });

  it("without memoryUsage only the control plane's families appear", async () => {
    const controlPlane = new FakeControlPlane();
    const app = createApp({ controlPlane, token });
    const response = await app.request("/metrics", { headers: { Authorization: `Bearer ${token}` } });
    expect(parsePrometheusText(await response.text()).map((family) => family.name)).toEqual(
      controlPlane.metrics().map((family) => family.name),
    );
  });

  it("a family the format cannot carry is a 500, not broken text", async () => {
    const controlPlane = new FakeControlPlane();
    controlPlane.metrics = () => [{ name: "bad name", help: "", type: "gauge", samples: [] }];
    const app = createApp({ controlPlane, token });
    const response = await app.request("/metrics", { headers: { Authorization: `Bearer ${token}` } });
    expect(response.status).toBe(500);
  });
});

describe("API OpenAPI document", () => {
  interface Operation {
    responses: Record<string, unknown>;
    parameters?: { name: string; in: string }[];
    requestBody?: unknown;
    security?: unknown[];
  }
  type Document = {
    openapi: string;
    info: { title: string; version: string };
    paths: Record<string, Record<string, Operation>>;
    components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    security: unknown[];
  };

  async function document(): Promise<Document> {
    const { call } = setup();
    const answer = await call("/openapi.json");
    expect(answer.status).toBe(200);
    return answer.json as Document;
  }

  it("lists every route of the app, and nothing else", async () => {
    const doc = await document();
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
    expect(doc.info.title).toBe("Anytime management API");
    const listed = Object.entries(doc.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`)
    ).sort();
    const declared = Object.values(routes).map((route) => `${route.method.toUpperCase()} ${route.path}`).sort();
    expect(listed).toEqual(declared);
    expect(listed).toEqual([
      "DELETE /v1/jobs/{id}",
      "DELETE /v1/volumes/{vol}/snapshots/{name}",
      "GET /healthz",
      "GET /metrics",
      "GET /openapi.json",
      "GET /v1/jobs",
      "GET /v1/jobs/{id}",
      "GET /v1/status",
      "GET /v1/volumes",
      "GET /v1/volumes/{vol}",
      "GET /v1/volumes/{vol}/diff",
      "GET /v1/volumes/{vol}/retention",
      "GET /v1/volumes/{vol}/snapshots",
      "GET /v1/volumes/{vol}/timeline",
      "POST /v1/volumes/{vol}/images",
      "POST /v1/volumes/{vol}/restore",
      "POST /v1/volumes/{vol}/resync",
      "POST /v1/volumes/{vol}/snapshots",
      "PUT /v1/volumes/{vol}/retention",
    ]);
  });

  it("is coherent: every $ref resolves, path parameters are declared, bearer security is global", async () => {
    const doc = await document();
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      const target = ref.slice('"$ref":"#/'.length, -1).split("/");
      expect(target[0]).toBe("components");
      let node: unknown = doc;
      for (const key of target) node = (node as Record<string, unknown>)[key];
      expect(node, ref).toBeDefined();
    }
    for (const [path, operations] of Object.entries(doc.paths)) {
      const pathParameters = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
      for (const [method, operation] of Object.entries(operations)) {
        const declared = (operation.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
        expect(declared, `${method} ${path}`).toEqual(pathParameters);
        expect(Object.keys(operation.responses).length, `${method} ${path}`).toBeGreaterThan(0);
        if (method === "post" || method === "put") expect(operation.requestBody, `${method} ${path}`).toBeDefined();
      }
    }
    expect(doc.components.securitySchemes).toEqual({ bearer: { type: "http", scheme: "bearer" } });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["VolumeStatus", "Job", "Image", "Error", "ImageRequest", "RestoreRequest"]),
    );
    const timelineParameters = doc.paths["/v1/volumes/{vol}/timeline"].get.parameters ?? [];
    expect(timelineParameters.map((p) => `${p.in}:${p.name}`).sort()).toEqual(["path:vol", "query:from", "query:limit", "query:to"]);
  });
});
