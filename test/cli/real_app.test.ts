/**
 * Proves the CLI and the real management API agree: `runCli` with `fetch` set to the real
 * Hono app's `app.request` (`src/api/app.ts`, its validation, auth and error mapping) over the
 * API tests' in-memory control plane. Each client command goes through the real routes and
 * schemas, and each refusal (401, 404, 400, 422, 501, 503) comes back as the exit code and
 * message a script sees. Jobs of that control plane do not advance by themselves, so `job()`
 * is wrapped to move a job a half per poll.
 */
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app.ts";
import type { JobJson } from "../../src/api/control_plane.ts";
import { FakeControlPlane } from "../api/fake_control_plane.ts";
import { cli } from "./cli_harness.ts";

const token = "cli-test-token-0123456789abcdef";
const auth = ["--token", token];

function setup(options: { restoreImplemented?: boolean } = {}) {
  const controlPlane = new FakeControlPlane(options);
  const job = controlPlane.job.bind(controlPlane);
  const polls = new Map<string, number>();
  controlPlane.job = (id: string): JobJson => {
    const current = job(id);
    if (current.state !== "running") return current;
    const count = (polls.get(id) ?? 0) + 1;
    polls.set(id, count);
    const progress = Math.min(1, count / 2);
    return {
      ...current,
      state: progress === 1 ? "done" : "running",
      progress,
      bytesMoved: progress * current.bytesTotal,
    };
  };
  const app = createApp({ controlPlane, token });
  return { controlPlane, fetch: app.request };
}

describe("the CLI against the real API app", () => {
  it("status, volumes and --json round-trip through the real routes", async () => {
    const { fetch, controlPlane } = setup();
    const status = await cli(["status", "db", ...auth], { fetch, timeZone: "UTC" });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("Volume db: protecting, 1.00 GiB, switch linked\n");
    expect(status.stdout).toContain("Suspect      1 (images inside open with a warning)");
    const listed = JSON.parse((await cli(["volumes", "--json", ...auth], { fetch })).stdout);
    expect(listed).toEqual({ volumes: controlPlane.volumes() });
    const all = await cli(["status", ...auth], { fetch, timeZone: "UTC" });
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^anytime serve 0\.1\.0 on test/);
    expect(all.stdout).toMatch(/\nlogs +marking +64\.0 MiB/);
  });

  it("snapshots: create, list, remove", async () => {
    const { fetch } = setup();
    expect((await cli(["snapshot", "db", "nightly", ...auth], { fetch })).code).toBe(0);
    const list = JSON.parse((await cli(["snapshots", "db", "--json", ...auth], { fetch })).stdout);
    expect(list.snapshots.map((snapshot: { name: string }) => snapshot.name)).toEqual(["before-upgrade", "nightly"]);
    expect((await cli(["snapshot", "rm", "db", "nightly", ...auth], { fetch })).code).toBe(0);
    const again = await cli(["snapshot", "rm", "db", "nightly", ...auth], { fetch });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('anytime: refused (404 not_found): Snapshot "nightly" of volume "db" does not exist\n');
  });

  it("image prints only the URI; diff, timeline, retention work", async () => {
    const { fetch } = setup();
    const image = await cli(["image", "db", "--at", "snap:before-upgrade", ...auth], { fetch });
    expect(image).toMatchObject({ code: 0, stdout: "nbd://127.0.0.1:10809/db@seq:500\n" });
    const suspect = await cli(["image", "db", "--at", "seq:310", ...auth], { fetch });
    expect(suspect.stderr).toContain('Warning: Point "seq:310" lies in a suspect interval');
    const diff = await cli(["diff", "db", "--from", "seq:100", "--to", "now", ...auth], { fetch });
    expect(diff.stdout).toContain("db: 2 extents differ, 68.0 KiB changed\n");
    const timeline = JSON.parse((await cli(["timeline", "db", "--limit", "2", "--json", ...auth], { fetch })).stdout);
    expect(timeline.entries).toHaveLength(2);
    const retention = await cli(["retention", "db", "--window", "72h", "--json", ...auth], { fetch });
    expect(JSON.parse(retention.stdout)).toEqual({ window: "72h", keep: "24x1h,14x1d,8x1w" });
  });

  it("restore waits for the job and prints the exact point; --no-wait returns the id", async () => {
    const { fetch } = setup();
    const restored = await cli(["restore", "db", "--at", "snap:before-upgrade", ...auth], { fetch, timeZone: "UTC" });
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/^Restored db to seq:500 at /);
    // The control plane still counts job-2 as running (the wrapper only reports it done).
    const busy = await cli(["restore", "db", "--at", "seq:400", "--no-wait", ...auth], { fetch });
    expect(busy.code).toBe(1);
    expect(busy.stderr).toBe('anytime: refused (409 conflict): Job "job-2" is already running on volume "db"\n');
    const queued = await cli(["restore", "db", "--at", "seq:400", "--no-wait", "--force", ...auth], { fetch });
    expect(queued).toMatchObject({ code: 0, stdout: "job-3\n" });
    const cancelled = await cli(["job", "cancel", "job-3", ...auth], { fetch });
    expect(cancelled.stdout).toContain("cancelled");
  });

  it("refusals: wrong token 401, unknown volume 404, bad POINT 400, outside 422, 501, 503", async () => {
    const { fetch } = setup({ restoreImplemented: false });
    const wrong = await cli(["volumes", "--token", "nope"], { fetch });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^anytime: refused \(401 unauthorized\): /);
    const unknown = await cli(["status", "nope", ...auth], { fetch });
    expect(unknown.stderr).toBe('anytime: refused (404 not_found): Volume "nope" does not exist\n');
    const bad = await cli(["image", "db", "--at", "seq:x", ...auth], { fetch });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^anytime: refused \(400 bad_request\): .*"seq:x"/);
    const outside = await cli(["image", "db", "--at", "seq:5", ...auth], { fetch });
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain("  Available: seq:100 .. seq:812\n");
    const notYet = await cli(["restore", "db", "--at", "now", ...auth], { fetch });
    expect(notYet.code).toBe(1);
    expect(notYet.stderr).toBe("anytime: refused (501 not_implemented): Restore is not implemented yet\n");
    const unlinked = await cli(["resync", "logs", ...auth], { fetch });
    expect(unlinked.code).toBe(1);
    expect(unlinked.stderr).toBe('anytime: refused (503 unavailable): The switch of volume "logs" is not connected\n');
  });
});
