/**
 * Shared by the server tests: a switch (SwitchNode over a memory primary) and an appliance
 * (memory stores) in one process, joined by the in-process transport, with the control plane
 * and jobs of `anytime serve`; and a clock that runs in real time but can jump.
 */
import { Appliance } from "../../src/appliance/appliance.ts";
import { ApplianceLink } from "../../src/appliance/appliance_link.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MemoryBlockDevice } from "../../src/io/memory_block_device.ts";
import { MemoryDurableCell } from "../../src/io/memory_durable_cell.ts";
import { MemorySegmentStore } from "../../src/io/memory_segment_store.ts";
import { MemoryTransport } from "../../src/io/memory_transport.ts";
import { Jobs } from "../../src/server/jobs.ts";
import { ProductControlPlane } from "../../src/server/product_control_plane.ts";
import { SwitchNode } from "../../src/server/switch_node.ts";

export const secret = new TextEncoder().encode("a shared secret of some length");
export const volumeBytes = 4 * 1024 * 1024;
export const process = { role: "serve" as const, version: "test", runtime: "test", startedAt: "2026-12-01T00:00:00.000Z" };

/** Real time (sleeps really wait, so timeouts keep their meaning) plus a jump a test can add. */
export class OffsetClock extends ManualClock {
  readonly #startMs = performance.now();
  #offsetUs = 0;
  override nowUs(): number {
    return super.nowUs() + Math.round((performance.now() - this.#startMs) * 1000) + this.#offsetUs;
  }
  override advanceUs(us: number): void {
    this.#offsetUs += us;
  }
  override sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
  override nextTurn(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
}

export async function setUp(options: { volumeBytes?: number; bufferBytes?: number } = {}) {
  const clock = new OffsetClock();
  const appliance = await Appliance.open({
    clock,
    registry: new MemoryDurableCell(),
    storesFor: () => Promise.resolve({ journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore() }),
  }, { segmentSizeBytes: 16 * 1024 * 1024, groupBytesMax: 2 * 1024 * 1024 });
  const sizeBytes = options.volumeBytes ?? volumeBytes;
  await appliance.register({ name: "db", sizeBytes, regionBytes: 65536 });
  const transport = new MemoryTransport();
  const listener = await transport.listen("appliance");
  const applianceLink = new ApplianceLink({ appliance, clock }, { secret });
  const serving = applianceLink.serve(listener);
  const primary = new MemoryBlockDevice(sizeBytes);
  const switchNode = await SwitchNode.open(
    { clock, transport },
    [{ name: "db", primary, drlCell: new MemoryDurableCell() }],
    { applianceAddress: "appliance", secret, switchId: "sw", bufferBytes: options.bufferBytes ?? 1024 * 1024, regionBytes: 65536 },
  );
  switchNode.start();
  const controlPlane = new ProductControlPlane({
    clock,
    process,
    appliance,
    applianceLink,
    switchNode,
    nbdAddress: "127.0.0.1:10809",
    nbdConnections: () => 0,
    jobs: new Jobs(clock),
  });
  const splitter = switchNode.splitter("db");
  const tearDown = async () => {
    await switchNode.stop(1000);
    await listener.close();
    await applianceLink.close();
    await serving;
    await appliance.close();
  };
  return { clock, appliance, applianceLink, switchNode, splitter, primary, controlPlane, tearDown };
}

