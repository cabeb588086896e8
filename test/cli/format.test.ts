/**
 * Proves the CLI's human output: durations, sizes and local times (a fixed time zone, Berlin
 * in winter and in summer, and UTC, so the tests do not depend on the machine), the tables
 * and one-screen status, and progress: the pure line (bar, percent, rate, ETA, width) and the
 * driver that polls a scripted job on a fake clock, redrawing with `\r` on a terminal and
 * printing a line now and then otherwise.
 */
import { describe, expect, it } from "vitest";
import type { DiffJson, JobJson, VolumeStatusJson } from "../../src/api/control_plane.ts";
import { ApiError } from "../../src/cli/api_client.ts";
import {
  formatDiff,
  formatDuration,
  formatJobLine,
  formatLocalTime,
  formatPercent,
  formatRetention,
  formatTime,
  formatVolumesTable,
  formatVolumeStatus,
  renderTable,
} from "../../src/cli/format.ts";
import { followJob, renderProgress } from "../../src/cli/progress.ts";

const berlin = { timeZone: "Europe/Berlin" };
const utc = { timeZone: "UTC" };

const volume: VolumeStatusJson = {
  name: "db",
  size: 1024 ** 3,
  state: "protecting",
  head: { seq: 812, time: "2026-11-22T10:14:03.123456Z" },
  window: { from: { seq: 1, time: "2026-11-22T08:00:00Z" }, to: { seq: 812, time: "2026-11-22T10:14:03.123456Z" } },
  lagSeconds: 0,
  journalBytes: 1_288_490_188,
  suspect: [{ from: { seq: 50, time: "2026-11-22T08:30:00Z" }, to: { seq: 60, time: "2026-11-22T08:35:00Z" }, reason: "marking mode" }],
  gaps: [],
  regionSize: 65_536,
  dirtyRegions: 3,
  snapshots: 2,
  linked: true,
};

const runningJob: JobJson = {
  id: "7",
  kind: "restore",
  volume: "db",
  state: "running",
  progress: 0.45,
  bytesMoved: 966_367_641,
  bytesTotal: 2 * 1024 ** 3,
  rateBytesPerSecond: 120 * 1024 ** 2,
  etaSeconds: 9.3,
  startedAt: "2026-11-22T10:20:00Z",
};

describe("durations, sizes, percentages", () => {
  it("formats durations the way an operator reads them", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(0.25)).toBe("250ms");
    expect(formatDuration(2.5)).toBe("2.5s");
    expect(formatDuration(45)).toBe("45s");
    expect(formatDuration(125)).toBe("2m 5s");
    expect(formatDuration(7500)).toBe("2h 5m");
    expect(formatDuration(7200)).toBe("2h");
    expect(formatDuration(3 * 86400 + 4 * 3600 + 59)).toBe("3d 4h");
    expect(formatDuration(Number.NaN)).toBe("?");
  });

  it("never shows 100% before the job says so", () => {
    expect(formatPercent(0.9999)).toBe("99.9%");
    expect(formatPercent(1)).toBe("100.0%");
    expect(formatPercent(0.45)).toBe("45.0%");
    expect(formatPercent(-1)).toBe("0.0%");
  });
});

describe("times", () => {
  it("shows local time with its offset, in winter and in summer", () => {
    expect(formatLocalTime("2026-11-22T10:14:03.123456Z", berlin)).toBe("2026-11-22 11:14:03 +01:00");
    expect(formatLocalTime("2026-07-01T10:14:03Z", berlin)).toBe("2026-07-01 12:14:03 +02:00");
    expect(formatLocalTime("2026-11-22T23:30:00Z", berlin)).toBe("2026-11-23 00:30:00 +01:00");
    expect(formatLocalTime("2026-11-22T10:14:03Z", utc)).toBe("2026-11-22 10:14:03 +00:00");
  });

  it("keeps the exact UTC string, pasteable as a POINT, next to local time", () => {
    expect(formatTime("2026-11-22T10:14:03.123456Z", berlin)).toBe(
      "2026-11-22 11:14:03 +01:00 (2026-11-22T10:14:03.123456Z)",
    );
  });

  it("shows text that is not a time as it is", () => {
    expect(formatLocalTime("sometime", berlin)).toBe("sometime");
  });
});

describe("tables and screens", () => {
  it("pads columns and leaves no trailing spaces", () => {
    expect(renderTable(["A", "BB"], [["xyz", ""], ["1", "2"]])).toBe("A    BB\nxyz\n1    2\n");
  });

  it("shows the volumes table with the window in local time", () => {
    const text = formatVolumesTable([volume], berlin);
    const [header, row] = text.split("\n");
    expect(header).toBe("NAME  STATE       SIZE      WINDOW (Europe/Berlin)                   LAG  JOURNAL   NOTES");
    expect(row).toBe("db    protecting  1.00 GiB  2026-11-22 09:00:00 → 11:14:03 (2h 14m)  0s   1.20 GiB  1 suspect interval, 3 dirty regions");
    expect(formatVolumesTable([], berlin)).toBe("No volumes are protected.\n");
  });

  it("shows a volume on one screen: window in local time and UTC, lag, journal, DRL, suspect", () => {
    const text = formatVolumeStatus(volume, berlin);
    expect(text).toContain("Volume db: protecting, 1.00 GiB, switch linked\nTimes in Europe/Berlin, UTC in brackets.\n");
    expect(text).toContain("  Window from  seq:1       2026-11-22 09:00:00 +01:00 (2026-11-22T08:00:00Z)\n");
    expect(text).toContain("  Window to    seq:812     2026-11-22 11:14:03 +01:00 (2026-11-22T10:14:03.123456Z)\n");
    expect(text).toContain("  Window span  2h 14m\n");
    expect(text).toContain("  Lag (RPO)    0s (every acknowledged write is durable)\n");
    expect(text).toContain("  Journal      1.20 GiB\n");
    expect(text).toContain("  DRL dirty    3 regions of 64.0 KiB (192 KiB to resync)\n");
    expect(text).toContain("  Gaps         none\n");
    expect(text).toContain("  Suspect      1 (images inside open with a warning)\n");
    expect(text).toContain("    seq:50 .. seq:60  2026-11-22 09:30:00 +01:00 → 2026-11-22 09:35:00 +01:00  (5m)  marking mode\n");
    const lagging = formatVolumeStatus({ ...volume, lagSeconds: 12.5, linked: false, dirtyRegions: undefined }, utc);
    expect(lagging).toContain("switch NOT linked");
    expect(lagging).toContain("\nTimes in UTC.\n");
    expect(lagging).toContain("  Lag (RPO)    12s behind\n");
    expect(lagging).toContain("  DRL dirty    not known here (the switch reports it)\n");
  });

  it("summarizes a diff and lists the first extents", () => {
    const diff: DiffJson = {
      from: { seq: 1, time: "2026-11-22T08:00:00Z", landedOn: "write" },
      to: { seq: 812, time: "2026-11-22T10:14:03Z", landedOn: "write" },
      extents: [{ offset: 0, length: 4096 }, { offset: 1048576, length: 65536 }, { offset: 4194304, length: 512 }],
      changedBytes: 70144,
    };
    const text = formatDiff("db", diff, { ...utc, extentsShownMax: 2 });
    expect(text).toContain("db: 3 extents differ, 68.5 KiB changed\n");
    expect(text).toContain("  from seq:1 at 2026-11-22 08:00:00 +00:00 (2026-11-22T08:00:00Z)\n");
    expect(text).toContain("1048576  65536   1.00 MiB        64.0 KiB\n");
    expect(text).not.toContain("4194304");
    expect(text).toContain("... and 1 more extent (--limit N shows more, --json all)\n");
  });

  it("spells out a retention policy", () => {
    expect(formatRetention("db", { window: "48h", keep: "24x1h,14x1d,8x1w" })).toBe(
      "Retention of db:\n  Any point  48h\n  Keep       24 x 1h, 14 x 1d, 8 x 1w\n",
    );
    expect(formatRetention("db", { window: "24h", keep: "" })).toContain("nothing beyond the window");
  });

  it("says how a job stands in one line", () => {
    expect(formatJobLine(runningJob, utc)).toBe("job 7: restore db, running 45.0% (922 MiB of 2.00 GiB)");
    const failed: JobJson = { ...runningJob, state: "failed", error: { code: "io", message: "Primary write failed" } };
    expect(formatJobLine(failed, utc)).toBe("job 7: restore db, failed: Primary write failed (io)");
    const done: JobJson = {
      ...runningJob,
      state: "done",
      progress: 1,
      endedAt: "2026-11-22T10:22:05Z",
      point: { seq: 700, time: "2026-11-22T09:56:30Z", landedOn: "snapshot" },
    };
    expect(formatJobLine(done, utc)).toBe(
      "job 7: restore db, done, 922 MiB moved in 2m 5s to seq:700 at 2026-11-22 09:56:30 +00:00 (2026-11-22T09:56:30Z)",
    );
  });
});

describe("renderProgress", () => {
  it("draws bar, percent, bytes, rate and ETA", () => {
    expect(renderProgress(runningJob, {})).toBe(
      "restore db [#############.................]  45.0%  922 MiB / 2.00 GiB  120 MiB/s  ETA 10s",
    );
  });

  it("uses the measured rate and works out the ETA when the job reports neither", () => {
    const job = { ...runningJob, rateBytesPerSecond: 0, etaSeconds: undefined, bytesMoved: 1024 ** 3, progress: 0.5 };
    expect(renderProgress(job, { measuredBytesPerSecond: 256 * 1024 ** 2 })).toBe(
      "restore db [###############...............]  50.0%  1.00 GiB / 2.00 GiB  256 MiB/s  ETA 4s",
    );
    expect(renderProgress(job, {})).toContain("-- B/s  ETA ?");
  });

  it("fits a narrow terminal: the bar shrinks, then the line is cut", () => {
    const line = renderProgress(runningJob, { columns: 72 });
    expect(line.length).toBeLessThanOrEqual(71);
    expect(line).toContain("[####.......]");
    expect(line).toContain("ETA 10s");
    expect(renderProgress(runningJob, { columns: 40 }).length).toBe(39);
  });

  it("says queued, done, failed", () => {
    expect(renderProgress({ ...runningJob, state: "queued" }, {})).toBe("restore db queued");
    expect(renderProgress({ ...runningJob, state: "done", progress: 1, bytesMoved: 2 * 1024 ** 3 }, {})).toMatch(
      /\[#{30}\]  100\.0%  2\.00 GiB \/ 2\.00 GiB  done$/,
    );
  });
});

/** A job that moves a quarter per poll; `failures` polls in a row fail first (if any). */
function scriptedClient(options: { failures?: ApiError[] } = {}) {
  const failures = [...(options.failures ?? [])];
  let polls = 0;
  return {
    get polls() {
      return polls;
    },
    job(id: string): Promise<JobJson> {
      const failure = failures.shift();
      if (failure !== undefined) return Promise.reject(failure);
      polls++;
      const progress = Math.min(1, polls / 4);
      return Promise.resolve({
        ...runningJob,
        id,
        state: progress === 1 ? "done" : "running",
        progress,
        bytesMoved: Math.round(progress * runningJob.bytesTotal),
        etaSeconds: undefined,
      });
    },
  };
}

function fakeClock() {
  let nowMs = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    nowMs: () => nowMs,
    sleep: (ms: number) => {
      sleeps.push(ms);
      nowMs += ms;
      return Promise.resolve();
    },
  };
}

describe("followJob", () => {
  it("redraws in place with \\r on a terminal and ends with a newline", async () => {
    const client = scriptedClient();
    const clock = fakeClock();
    let written = "";
    const final = await followJob(
      { client, ...clock, isTty: true, columns: 100, write: (text) => void (written += text) },
      { ...runningJob, state: "queued", progress: 0, bytesMoved: 0 },
      { pollIntervalMs: 500 },
    );
    expect(final.state).toBe("done");
    expect(client.polls).toBe(4);
    expect(clock.sleeps).toEqual([500, 500, 500, 500]);
    const frames = written.split("\r").slice(1);
    expect(frames).toHaveLength(5);
    expect(frames[0].trimEnd()).toBe("restore db queued");
    expect(frames[1]).toContain(" 25.0%");
    // The last frame erases the longer one before it, then ends the line.
    expect(frames[4]).toMatch(/  done +\n$/);
    expect(written.indexOf("\n")).toBe(written.length - 1);
  });

  it("prints a line at each change of state and every few seconds otherwise", async () => {
    const client = scriptedClient();
    const clock = fakeClock();
    const lines: string[] = [];
    await followJob(
      { client, ...clock, isTty: false, write: (text) => void lines.push(text) },
      { ...runningJob, progress: 0, bytesMoved: 0 },
      { pollIntervalMs: 1000, lineIntervalMs: 2000 },
    );
    // t=0 running 0% (first), t=1000 25% (too soon), t=2000 50%, t=3000 75% (too soon), t=4000 done.
    expect(lines.map((line) => line.match(/\d+\.\d%/)?.[0])).toEqual(["0.0%", "50.0%", "100.0%"]);
    expect(lines.every((line) => line.endsWith("\n") && !line.includes("\r"))).toBe(true);
  });

  it("measures the rate itself when the job reports none", async () => {
    const base = scriptedClient();
    const client = {
      job: async (id: string) => ({ ...(await base.job(id)), rateBytesPerSecond: 0 }),
    };
    const clock = fakeClock();
    const lines: string[] = [];
    await followJob(
      { client, ...clock, isTty: false, write: (text) => void lines.push(text) },
      { ...runningJob, progress: 0, bytesMoved: 0, rateBytesPerSecond: 0 },
      { pollIntervalMs: 1000, lineIntervalMs: 1000 },
    );
    // A quarter of 2 GiB per second.
    expect(lines[1]).toContain("512 MiB/s");
  });

  it("rides out an API that is briefly unreachable, and gives up on a refusal", async () => {
    const unreachable = new ApiError("Cannot reach", { status: 0, code: "unreachable" });
    const client = scriptedClient({ failures: [unreachable, unreachable] });
    const clock = fakeClock();
    const final = await followJob({ client, ...clock, isTty: false, write: () => {} }, runningJob);
    expect(final.state).toBe("done");

    const refused = new ApiError('Unknown job "7"', { status: 404, code: "not_found" });
    const failing = scriptedClient({ failures: [refused] });
    await expect(followJob({ client: failing, ...fakeClock(), isTty: false, write: () => {} }, runningJob))
      .rejects.toBe(refused);

    const down = scriptedClient({ failures: Array.from({ length: 20 }, () => unreachable) });
    await expect(followJob({ client: down, ...fakeClock(), isTty: false, write: () => {} }, runningJob))
      .rejects.toBe(unreachable);
  });
});
