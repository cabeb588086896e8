/**
 * Proves the export-name grammar of SPEC.md "NBD": `VOL` is the volume, `VOL@POINT` an image
 * at every POINT form of SPEC.md "Points in time", `VOL@POINT+rw` its writable scratch image;
 * a time zone's `+` is not mistaken for the suffix; formatting is the inverse of parsing
 * (fast-check round trips over volume names and points); every bad name is a SyntaxError
 * that quotes the name and says what is wrong.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatExportName, parseExportName } from "../../src/server/export_name.ts";

describe("parseExportName", () => {
  it("reads a plain name as the volume itself", () => {
    expect(parseExportName("db")).toEqual({ kind: "volume", volumeName: "db" });
    expect(parseExportName("vol_01.data-2")).toEqual({ kind: "volume", volumeName: "vol_01.data-2" });
  });

  it("reads every POINT form after '@' as a read-only image", () => {
    const cases: [string, unknown][] = [
      ["db@seq:12345", { kind: "seq", seq: 12345 }],
      ["db@snap:before-upgrade", { kind: "snapshot", name: "before-upgrade" }],
      ["db@snap:nightly.2026-11-22", { kind: "snapshot", name: "nightly.2026-11-22" }],
      ["db@2026-11-22T10:14:03.123Z", { kind: "time", timeUs: Date.UTC(2026, 10, 22, 10, 14, 3, 123) * 1000 }],
      ["db@2026-11-22T10:14:03Z", { kind: "time", timeUs: Date.UTC(2026, 10, 22, 10, 14, 3) * 1000 }],
      ["db@-5m", { kind: "relative", agoUs: 300_000_000 }],
      ["db@-90s", { kind: "relative", agoUs: 90_000_000 }],
      ["db@now", { kind: "head" }],
      ["db@head", { kind: "head" }],
    ];
    for (const [name, point] of cases) {
      const parsed = parseExportName(name);
      expect(parsed, name).toEqual({ kind: "image", volumeName: "db", point, pointText: name.slice(3), writable: false });
    }
  });

  it("reads '+rw' as a writable scratch image", () => {
    expect(parseExportName("db@seq:7+rw")).toEqual({
      kind: "image",
      volumeName: "db",
      point: { kind: "seq", seq: 7 },
      pointText: "seq:7",
      writable: true,
    });
    expect(parseExportName("db@snap:a:b+rw")).toMatchObject({ point: { kind: "snapshot", name: "a:b" }, writable: true });
  });

  it("does not mistake a time zone's '+' for a suffix", () => {
    const plain = parseExportName("db@2026-11-22T10:14:03+01:00");
    expect(plain).toMatchObject({ kind: "image", writable: false, point: { kind: "time" } });
    const writable = parseExportName("db@2026-11-22T10:14:03+01:00+rw");
    expect(writable).toMatchObject({ kind: "image", writable: true, pointText: "2026-11-22T10:14:03+01:00" });
    if (plain.kind === "image" && plain.point.kind === "time") {
      expect(plain.point.timeUs).toBe(Date.UTC(2026, 10, 22, 9, 14, 3) * 1000);
    }
  });

  it("refuses bad names with a SyntaxError that quotes the name and says why", () => {
    const cases: [string, RegExp][] = [
      ["", /empty/],
      ["@seq:1", /volume name before '@' is empty/],
      ["db@", /POINT after '@' is empty/],
      ["db@+rw", /POINT after '@' is empty/],
      ["db+rw", /needs a POINT/],
      ["db@seq:1+ro", /unknown suffix "\+ro"/],
      ["db@seq:1+RW", /unknown suffix "\+RW"/],
      ["db@seq:x", /"x" is not a sequence number/],
      ["db@snap:", /snapshot name/],
      ["db@yesterday", /expected now, head, seq:N/],
      ["db@2026-13-45T99:00:00Z", /not a valid date|Cannot parse time/],
      ["db@-5y", /duration/],
      ["-db", /volume name/],
      [".hidden@head", /volume name/],
      ["d b", /white space/],
      ["db@ seq:1", /white space/],
      ["db\n@seq:1", /white space or a control character/],
      ["db@seq:1@seq:2", /not a sequence number/],
      ["x".repeat(65), /volume name/],
      ["db@snap:" + "a".repeat(5000), /longer than 4096 bytes/],
    ];
    for (const [name, why] of cases) {
      let caught: unknown;
      try {
        parseExportName(name);
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(name)).toBeInstanceOf(SyntaxError);
      const message = (caught as Error).message;
      expect(message, name).toContain(`Cannot parse export name "${name}"`);
      expect(message, name).toMatch(why);
    }
  });
});

describe("formatExportName", () => {
  it("builds the volume, image and scratch-image names", () => {
    expect(formatExportName({ volumeName: "db" })).toBe("db");
    expect(formatExportName({ volumeName: "db", point: { kind: "seq", seq: 42 } })).toBe("db@seq:42");
    expect(formatExportName({ volumeName: "db", point: { kind: "snapshot", name: "nightly" }, writable: true })).toBe(
      "db@snap:nightly+rw",
    );
    expect(formatExportName({ volumeName: "db", point: { kind: "head" } })).toBe("db@head");
    expect(formatExportName({ volumeName: "db", point: "-5m" })).toBe("db@-5m");
    // Times keep their microseconds.
    expect(formatExportName({ volumeName: "db", point: { kind: "time", timeUs: 1_795_342_443_123_456 } })).toBe(
      "db@2026-11-22T10:14:03.123456Z",
    );
  });

  it("refuses what could not be parsed back", () => {
    expect(() => formatExportName({ volumeName: "db@x" })).toThrow(SyntaxError);
    expect(() => formatExportName({ volumeName: "db", point: "seq:x" })).toThrow(SyntaxError);
    expect(() => formatExportName({ volumeName: "db", writable: true })).toThrow(TypeError);
  });

  it("round-trips through parseExportName for any volume name and point", () => {
    const volumeName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/);
    const point = fc.oneof(
      fc.constant({ kind: "head" as const }),
      fc.nat({ max: 2 ** 40 }).map((seq) => ({ kind: "seq" as const, seq })),
      fc.stringMatching(/^[A-Za-z0-9_.][A-Za-z0-9_.:-]{0,40}$/).map((name) => ({ kind: "snapshot" as const, name })),
      fc.integer({ min: 0, max: 4_102_444_800_000_000 }).map((timeUs) => ({ kind: "time" as const, timeUs })),
      fc.integer({ min: 1, max: 10_000_000 }).map((seconds) => ({ kind: "relative" as const, agoUs: seconds * 1_000_000 })),
    );
    fc.assert(
      fc.property(volumeName, fc.option(point, { nil: undefined }), fc.boolean(), (name, at, writable) => {
        const text = formatExportName({ volumeName: name, point: at, writable: at !== undefined && writable });
        const parsed = parseExportName(text);
        if (at === undefined) {
          expect(parsed).toEqual({ kind: "volume", volumeName: name });
        } else {
          expect(parsed).toMatchObject({ kind: "image", volumeName: name, point: at, writable: writable });
        }
      }),
    );
  });
});
