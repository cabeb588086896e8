/**
 * Proves POINT and unit parsing follows SPEC.md ("Points in time"): every documented form
 * parses, bad input is a SyntaxError that quotes the text, and times keep microseconds.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { checkSnapshotName, formatPoint, parsePoint } from "../../src/core/point.ts";
import { formatBytes, formatTimeUs, parseDurationUs, parseSizeBytes, parseTimeUs } from "../../src/core/units.ts";

describe("parsePoint", () => {
  it("parses every form the SPEC names", () => {
    expect(parsePoint("now")).toEqual({ kind: "head" });
    expect(parsePoint("head")).toEqual({ kind: "head" });
    expect(parsePoint("seq:12345")).toEqual({ kind: "seq", seq: 12345 });
    expect(parsePoint("snap:before-upgrade")).toEqual({ kind: "snapshot", name: "before-upgrade" });
    expect(parsePoint("-90s")).toEqual({ kind: "relative", agoUs: 90_000_000 });
    expect(parsePoint("-5m")).toEqual({ kind: "relative", agoUs: 300_000_000 });
    expect(parsePoint("-2h")).toEqual({ kind: "relative", agoUs: 7_200_000_000 });
    expect(parsePoint("-1d")).toEqual({ kind: "relative", agoUs: 86_400_000_000 });
    expect(parsePoint("2026-11-22T10:14:03.123Z")).toEqual({ kind: "time", timeUs: 1795342443123000 });
    expect(parsePoint("2026-11-22T11:14:03+01:00")).toEqual({ kind: "time", timeUs: 1795342443000000 });
  });

  it("rejects malformed points with a message that quotes them", () => {
    for (const bad of ["seq:x", "seq:", "seq:-1", "snap:", "snap:a b", "-5x", "yesterday", "", "2026-11-22T10:14:03"]) {
      expect(() => parsePoint(bad)).toThrow(SyntaxError);
      expect(() => parsePoint(bad)).toThrow(`"${bad}"`);
    }
  });

  it("formatPoint round-trips seq, snapshot and head", () => {
    fc.assert(fc.property(fc.nat(), (seq) => {
      expect(parsePoint(formatPoint({ kind: "seq", seq }))).toEqual({ kind: "seq", seq });
    }));
    expect(parsePoint(formatPoint({ kind: "snapshot", name: "a.b:c" }))).toEqual({ kind: "snapshot", name: "a.b:c" });
  });

  it("snapshot names are checked", () => {
    expect(checkSnapshotName("nightly-2026.11.22")).toBe("nightly-2026.11.22");
    expect(() => checkSnapshotName("-leading")).toThrow(SyntaxError);
    expect(() => checkSnapshotName("x".repeat(201))).toThrow(SyntaxError);
  });
});

describe("units", () => {
  it("sizes parse with binary and decimal units", () => {
    expect(parseSizeBytes("64MiB")).toBe(64 * 1024 * 1024);
    expect(parseSizeBytes("1GiB")).toBe(1024 ** 3);
    expect(parseSizeBytes("1G")).toBe(1024 ** 3);
    expect(parseSizeBytes("1GB")).toBe(1e9);
    expect(parseSizeBytes("512")).toBe(512);
    expect(() => parseSizeBytes("lots")).toThrow(SyntaxError);
    expect(() => parseSizeBytes("12 parsecs")).toThrow(/"12 parsecs"/);
  });

  it("durations parse", () => {
    expect(parseDurationUs("48h")).toBe(48 * 3600 * 1e6);
    expect(parseDurationUs("1w")).toBe(7 * 86400 * 1e6);
    expect(() => parseDurationUs("5 minutes")).toThrow(SyntaxError);
  });

  it("times keep microseconds through parse and format", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_000_000_000_000_000 }), (timeUs) => {
        expect(parseTimeUs(formatTimeUs(timeUs))).toBe(timeUs);
      }),
    );
    expect(formatTimeUs(1795342443123456)).toBe("2026-11-22T10:14:03.123456Z");
  });

  it("bytes format for people", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(64 * 1024 ** 3)).toBe("64.0 GiB");
  });
});
