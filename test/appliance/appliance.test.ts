/**
 * Proves the appliance's volume registry: volumes are created on first registration, found
 * again after a restart (maps reloaded, data intact), and a switch offering another geometry,
 * a bad name or size, or an unknown volume gets a clear error that changes nothing.
 */
import { describe, expect, it } from "vitest";
import { Appliance, checkVolumeName } from "../../src/appliance/appliance.ts";
import { ConflictError, NotFoundError } from "../../src/appliance/errors.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";

function memoryDeps() {
  const stores = new Map<string, { journalStore: MemorySegmentStore; mapStore: MemorySegmentStore }>();
  return {
    clock: new ManualClock(),
    registry: new MemoryDurableCell(),
    storesFor: (name: string) => {
      if (!stores.has(name)) stores.set(name, { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() });
      return Promise.resolve(stores.get(name)!);
    },
  };
}

const small = { segmentSizeBytes: 256 * 1024, groupBytesMax: 64 * 1024 };

describe("Appliance", () => {
  it("registers volumes and finds them again after a restart", async () => {
    const deps = memoryDeps();
    const appliance = await Appliance.open(deps, small);
    const volume = await appliance.register({ name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 });
    await volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 512, data: new Uint8Array(512).fill(5) });
    await appliance.register({ name: "logs", sizeBytes: 512 * 1024, regionBytes: 65536 });
    expect(appliance.volumes().map((v) => v.name)).toEqual(["db", "logs"]);
    await appliance.close();

    const again = await Appliance.open(deps, small);
    expect(again.volumes().map((v) => v.name)).toEqual(["db", "logs"]);
    expect(again.record("db")).toEqual({ name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 });
    const sector = new Uint8Array(512);
    await again.volume("db").openImage("seq:1").read(512, sector);
    expect(sector[0]).toBe(5);
    // Registering again with the same geometry returns the same volume.
    expect(await again.register({ name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 })).toBe(again.volume("db"));
    await again.close();
  });

  it("refuses other geometries, bad names and sizes, and unknown volumes, changing nothing", async () => {
    const appliance = await Appliance.open(memoryDeps(), small);
    await appliance.register({ name: "db", sizeBytes: 1024 * 1024, regionBytes: 65536 });
    await expect(appliance.register({ name: "db", sizeBytes: 2048 * 1024, regionBytes: 65536 })).rejects.toThrow(ConflictError);
    await expect(appliance.register({ name: "db@x", sizeBytes: 1024, regionBytes: 512 })).rejects.toThrow(SyntaxError);
    await expect(appliance.register({ name: "odd", sizeBytes: 1000, regionBytes: 512 })).rejects.toThrow(RangeError);
    await expect(appliance.register({ name: "odd", sizeBytes: 1024, regionBytes: 100 })).rejects.toThrow(RangeError);
    expect(() => appliance.volume("nope")).toThrow(NotFoundError);
    expect(() => appliance.volume("nope")).toThrow(/volumes: db/);
    expect(appliance.volumes().map((v) => v.name)).toEqual(["db"]);
    expect(appliance.record("db").sizeBytes).toBe(1024 * 1024);
    await appliance.close();
  });

  it("volume names follow the NBD-safe rule", () => {
    expect(checkVolumeName("db-01.prod_a")).toBe("db-01.prod_a");
    for (const bad of ["", "-x", ".x", "a@b", "a b", "x".repeat(65), "a/b"]) expect(() => checkVolumeName(bad)).toThrow(SyntaxError);
  });
});
