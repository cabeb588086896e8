/**
 * Proves the control plane of a running product over real parts in memory: a SwitchNode
 * (splitter + link) streaming over the in-process transport to an Appliance. Volume status
 * has SPEC's fields and values (head, window, lag 0 once acknowledged, state); a snapshot
 * goes through the write stream and is durable and indexed when it resolves; images are
 * pinned to the resolved seq; diff, timeline, retention and metrics answer; bad input and
 * unknown names get the error classes the API maps (and change nothing); an appliance alone
 * takes and removes a snapshot through the switch that streams the volume (the switch gives
 * the marker its seq), and a switch alone sends the appliance's questions away with
 * UnavailableError.
 */
import { describe, expect, it } from "vitest";
import { NotFoundError, PointUnavailableError, UnavailableError } from "../../src/api/control_plane.ts";
import { ConflictError } from "../../src/appliance/errors.ts";
import { ProductControlPlane } from "../../src/server/product_control_plane.ts";
import { process, setUp, volumeBytes } from "./server_support.ts";

describe("ProductControlPlane over a switch and an appliance in one process", () => {
  it("reports status, takes snapshots in the stream, pins images, diffs and lists the timeline", async () => {
    const { splitter, switchNode, controlPlane, tearDown } = await setUp();
    await splitter.write(0, new Uint8Array(4096).fill(1));
    await splitter.write(65536, new Uint8Array(8192).fill(2));
    const snapshot = await controlPlane.createSnapshot("db", "before");
    expect(snapshot).toMatchObject({ name: "before", seq: 3 });
    await splitter.write(0, new Uint8Array(4096).fill(3));
    await switchNode.waitAcknowledged("db", 4);

    const status = controlPlane.volume("db");
    expect(status).toMatchObject({ name: "db", size: volumeBytes, state: "protecting", head: { seq: 4 }, lagSeconds: 0, linked: true });
    expect(status.window.from.seq).toBe(0);
    expect(status.head.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(status.gaps).toEqual([]);
    expect(status.suspect).toEqual([]);
    expect(status.dirtyRegions).toBeGreaterThanOrEqual(0);
    expect(controlPlane.volumes().map((v) => v.name)).toEqual(["db"]);

    expect(controlPlane.snapshots("db")).toEqual([{ name: "before", seq: 3, time: snapshot.time }]);
    await expect(controlPlane.createSnapshot("db", "before")).rejects.toThrow(ConflictError);
    await expect(controlPlane.createSnapshot("db", "bad name")).rejects.toThrow(SyntaxError);

    const image = await controlPlane.openImage("db", { at: "snap:before", writable: false });
    expect(image).toMatchObject({ uri: "nbd://127.0.0.1:10809/db@seq:3", export: "db@seq:3", suspect: false, point: { seq: 3, landedOn: "snapshot" } });
    expect((await controlPlane.openImage("db", { at: "head", writable: true })).uri).toBe("nbd://127.0.0.1:10809/db@seq:4+rw");
    await expect(controlPlane.openImage("db", { at: "seq:99", writable: false })).rejects.toThrow(PointUnavailableError);
    await expect(controlPlane.openImage("db", { at: "yesterday", writable: false })).rejects.toThrow(SyntaxError);

    const diff = controlPlane.diff("db", "snap:before", "head");
    expect(diff.extents).toEqual([{ offset: 0, length: 4096 }]);
    expect(diff.changedBytes).toBe(4096);
    expect(controlPlane.timeline("db").entries.map((e) => [e.seq, e.kind, e.detail.name])).toEqual([[3, "snapshot", "before"]]);

    expect(controlPlane.retention("db")).toEqual({ window: "48h", keep: "24x1h,14x1d,8x1w" });
    expect(await controlPlane.setRetention("db", { window: "72h" })).toEqual({ window: "72h", keep: "24x1h,14x1d,8x1w" });
    await expect(controlPlane.setRetention("db", { keep: "24 hourly" })).rejects.toThrow(SyntaxError);
    expect(controlPlane.retention("db").window).toBe("72h");

    const families = controlPlane.metrics();
    const head = families.find((f) => f.name === "anytime_volume_head_seq");
    expect(head?.samples).toEqual([{ labels: { volume: "db" }, value: 4 }]);
    expect(families.find((f) => f.name === "anytime_volume_bytes_ingested_total")?.samples[0].value).toBe(4096 + 8192 + 4096);
    const switchSample = (name: string) => families.find((f) => f.name === name)?.samples;
    expect(switchSample("anytime_switch_host_writes_total")).toEqual([{ labels: { volume: "db" }, value: 3 }]);
    expect(switchSample("anytime_switch_host_write_bytes_total")?.[0].value).toBe(4096 + 8192 + 4096);
    expect(switchSample("anytime_switch_copied_writes_total")?.[0].value).toBe(3);
    expect(switchSample("anytime_switch_buffer_bytes")?.[0].value).toBe(splitter.copyBuffer.bytesMax);
    for (const name of ["buffer_waits_total", "buffer_wait_seconds_total", "missed_writes_total", "marking_entries_total", "primary_write_errors_total"]) {
      expect(switchSample(`anytime_switch_${name}`)).toEqual([{ labels: { volume: "db" }, value: 0 }]);
    }
    const journalSample = (name: string) => switchSample(`anytime_journal_${name}`)?.[0].value ?? -1;
    expect(journalSample("group_writes_total")).toBeGreaterThanOrEqual(1);
    expect(journalSample("group_write_bytes_total")).toBe(controlPlane.volume("db").journalBytes);
    expect(journalSample("syncs_total")).toBeGreaterThanOrEqual(1);
    expect(journalSample("write_seconds_total")).toBeGreaterThanOrEqual(0);
    expect(journalSample("sync_seconds_total")).toBeGreaterThanOrEqual(0);
    const state = families.find((f) => f.name === "anytime_volume_state");
    expect(state?.samples.find((s) => s.labels.state === "protecting")?.value).toBe(1);

    await controlPlane.createSnapshot("db", "short-lived");
    await controlPlane.removeSnapshot("db", "short-lived"); // through the write stream
    expect(controlPlane.snapshots("db").map((s) => s.name)).toEqual(["before"]);
    await expect(controlPlane.removeSnapshot("db", "never")).rejects.toThrow(NotFoundError);
    expect(() => controlPlane.volume("nope")).toThrow(NotFoundError);
    expect(() => controlPlane.job("j1")).toThrow(NotFoundError);
    await tearDown();
  });

  it("reports a lag while the appliance has not acknowledged, and the switch's state", async () => {
    const { clock, splitter, switchNode, controlPlane, tearDown } = await setUp();
    await switchNode.link.stop(); // the link goes away; writes are held
    await splitter.write(0, new Uint8Array(512).fill(9));
    clock.advanceUs(3_000_000);
    const status = controlPlane.volume("db");
    expect(status.lagSeconds).toBeCloseTo(3, 1);
    expect(status.linked).toBe(false);
    await tearDown();
  });

  it("sends what only the other side knows to the other side", async () => {
    const { appliance, applianceLink, switchNode, clock, tearDown } = await setUp();
    const applianceOnly = new ProductControlPlane({ clock, process: { ...process, role: "appliance" }, appliance, applianceLink });
    await switchNode.waitAcknowledged("db", 0);
    for (let turn = 0; turn < 100 && !applianceLink.isLinked("db"); turn++) await clock.sleep(1);
    const taken = await applianceOnly.createSnapshot("db", "x");
    expect(taken.seq).toBe(switchNode.splitter("db").nextSeq - 1); // the switch gave the marker its seq
    expect(applianceOnly.snapshots("db").map((s) => [s.name, s.seq])).toEqual([["x", taken.seq]]);
    await expect(applianceOnly.createSnapshot("db", "x")).rejects.toThrow(ConflictError);
    await applianceOnly.removeSnapshot("db", "x");
    expect(applianceOnly.snapshots("db")).toEqual([]);
    await expect(applianceOnly.removeSnapshot("db", "x")).rejects.toThrow(NotFoundError);
    await expect(applianceOnly.openImage("db", { at: "head", writable: false })).rejects.toThrow(UnavailableError);
    const switchOnly = new ProductControlPlane({ clock, process: { ...process, role: "switch" }, switchNode });
    expect(() => switchOnly.snapshots("db")).toThrow(UnavailableError);
    expect(switchOnly.volume("db").state).toBe("protecting");
    await tearDown();
  });
});
