/**
 * Shared by the volume-export tests: an in-memory appliance (memory segment stores and
 * registry, a clock the test chooses), a volume filled by writing straight into its journal
 * with a replay model of every state, and a whole protected volume — Splitter over a memory
 * primary, SwitchLink and ApplianceLink joined by the in-process MemoryTransport, as in
 * `anytime serve` — with a helper that waits until the appliance holds every write.
 */
import { Appliance } from "../../src/appliance/appliance.ts";
import { ApplianceLink } from "../../src/appliance/appliance_link.ts";
import type { Volume } from "../../src/appliance/volume.ts";
import { createChecksum } from "../../src/core/checksum.ts";
import type { Clock } from "../../src/io/clock.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { MemoryTransport } from "../../src/io/memory_transport.ts";
import { Splitter } from "../../src/switch/splitter.ts";
import { SwitchLink } from "../../src/switch/switch_link.ts";
import { patternBytes } from "../nbd/nbd_support.ts";

const secret = new TextEncoder().encode("volume exports test shared secret");

/**
 * An appliance on memory stores: 16 MiB journal segments and the default group size (a group
 * must hold the largest write), level-0 maps of 8 writes so small tests cross map boundaries.
 */
export async function memoryAppliance(clock: Clock): Promise<Appliance> {
  const stores = new Map<string, { journalStore: MemorySegmentStore; mapStore: MemorySegmentStore }>();
  return await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: (name) => {
      if (!stores.has(name)) stores.set(name, { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() });
      return Promise.resolve(stores.get(name)!);
    },
  }, { segmentSizeBytes: 16 * 1024 * 1024, levelZeroWritesMax: 8 });
}

/** Write times of {@link fillVolume} count from here (ManualClock's default start). */
export const fillStartUs = Date.UTC(2026, 10, 22, 10, 0, 0) * 1000;

/** The state of a volume after each seq: states[seq] (states[0] is the base, all zeros). */
export type ReplayModel = Uint8Array[];

/**
 * Journals `writes` writes of 1 to 8 sectors at patterned offsets into `volume` (seqs from 1),
 * with a snapshot named `snapshotName` after write `snapshotAfter`, and returns the model of
 * every state by seq (a snapshot's state equals the state before it). Write seq N is stamped
 * {@link fillStartUs} + N ms.
 */
export async function fillVolume(
  volume: Volume,
  options: { writes: number; snapshotAfter?: number; snapshotName?: string },
): Promise<ReplayModel> {
  const states: ReplayModel = [new Uint8Array(volume.sizeBytes)];
  const sectors = volume.sizeBytes / 512;
  for (let written = 1; written <= options.writes; written++) {
    const lengthBytes = 512 * (1 + (written % 8));
    const offsetBytes = ((written * 7919) % (sectors - 8)) * 512;
    const data = patternBytes(lengthBytes, written);
    const seq = volume.nextSeq;
    await volume.appendWrite({ seq, timeUs: fillStartUs + seq * 1000, offsetBytes, data });
    const state = states[states.length - 1].slice();
    state.set(data, offsetBytes);
    states[seq] = state;
    if (written === options.snapshotAfter) {
      await volume.flush();
      const snapshot = await volume.snapshot(options.snapshotName ?? "snap");
      states[snapshot.seq] = state;
    }
  }
  await volume.flush();
  return states;
}

/**
 * A protected volume as `anytime serve` runs it: splitter over a memory primary, linked to an
 * in-memory appliance through the in-process transport.
 */
export async function protectedVolume(options: { name: string; volumeBytes: number; clock: Clock; bufferBytes?: number }) {
  const appliance = await memoryAppliance(options.clock);
  const transport = new MemoryTransport();
  const applianceLink = new ApplianceLink({ appliance, clock: options.clock }, { secret });
  const listener = await transport.listen("appliance");
  const serving = applianceLink.serve(listener);
  const primary = new MemoryBlockDevice(options.volumeBytes);
  const splitter = await Splitter.open(
    { primary, drlCell: new MemoryDurableCell(), clock: options.clock, checksum: await createChecksum() },
    { name: options.name, regionBytes: 64 * 1024, bufferBytes: options.bufferBytes ?? 16 * 1024 * 1024, onFull: "wait" },
  );
  const link = new SwitchLink(
    { transport, clock: options.clock, splitters: [splitter] },
    { address: "appliance", secret, switchId: "test-switch" },
  );
  link.start();
  await until(() => link.state === "streaming", "the link streams");

  /** Resolves once the appliance holds every record the splitter has given a seq. */
  async function journaled(): Promise<void> {
    await until(() => splitter.acknowledgedSeq === splitter.nextSeq - 1, "the appliance acknowledged every write");
  }

  async function stop(): Promise<void> {
    await link.stop();
    await listener.close();
    await serving.catch(() => undefined);
    await appliance.close();
  }

  return { appliance, splitter, primary, link, journaled, stop };
}

/** Polls `condition` on macrotask turns; rejects after `timeoutMs` of real time. */
export async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
