/**
 * Anytime: continuous data protection for block volumes. Every write kept, any point in time
 * browsable and restorable.
 *
 * @example
 * ```ts
 * import { ManualClock, MemorySegmentStore, Volume } from "./mod.ts";
 * const volume = await Volume.open(
 *   { journalStore: new MemorySegmentStore(), mapStore: new MemorySegmentStore(), clock: new ManualClock() },
 *   { name: "db", sizeBytes: 1024 * 1024, segmentSizeBytes: 8 * 1024 * 1024 + 65536 },
 * );
 * await volume.appendWrite({ seq: 1, timeUs: 0, offsetBytes: 0, data: new Uint8Array(512).fill(7) });
 * await volume.flush();
 * const image = volume.openImage("seq:1");
 * ```
 *
 * @module
 */
export * from "./src/core/assert.ts";
export * from "./src/core/delta_map.ts";
export * from "./src/core/layered_lookup.ts";
export * from "./src/core/limits.ts";
export * from "./src/core/point.ts";
export * from "./src/core/units.ts";
export * from "./src/core/checksum.ts";
export * from "./src/io/block_device.ts";
export * from "./src/io/clock.ts";
export * from "./src/io/durable_cell.ts";
export * from "./src/io/file_system.ts";
export * from "./src/io/file_segment_store.ts";
export * from "./src/io/file_block_device.ts";
export * from "./src/io/file_durable_cell.ts";
export * from "./src/io/memory_block_device.ts";
export * from "./src/io/memory_durable_cell.ts";
export * from "./src/io/memory_segment_store.ts";
export * from "./src/io/memory_transport.ts";
export * from "./src/io/random.ts";
export * from "./src/io/segment_store.ts";
export * from "./src/io/transport.ts";
export * from "./src/appliance/appliance.ts";
export * from "./src/appliance/appliance_link.ts";
export * from "./src/appliance/errors.ts";
export * from "./src/appliance/image.ts";
export * from "./src/appliance/journal.ts";
export * from "./src/appliance/map_hierarchy.ts";
export * from "./src/appliance/map_store.ts";
export * from "./src/appliance/volume.ts";
export * from "./src/appliance/write_index.ts";
export * from "./src/switch/copy_buffer.ts";
export * from "./src/switch/dirty_region_log.ts";
export * from "./src/switch/splitter.ts";
export * from "./src/switch/switch_link.ts";
export * from "./src/wire/errors.ts";
export * from "./src/wire/framed_connection.ts";
export * from "./src/wire/frame.ts";
export * from "./src/wire/handshake.ts";
export * from "./src/wire/messages.ts";
export * from "./src/core/retention.ts";
export * from "./src/io/overlay_block_device.ts";
export * from "./src/appliance/volume_timeline.ts";
export * from "./src/switch/restore_session.ts";
export * from "./src/switch/splitter_device.ts";
export * from "./src/nbd/nbd_server.ts";
export { createApp } from "./src/api/app.ts";
export type { ControlPlane } from "./src/api/control_plane.ts";
export { NotImplementedError, UnavailableError } from "./src/api/control_plane.ts";
export { runCli } from "./src/cli/main.ts";
export * from "./src/server/processes.ts";
export * from "./src/server/switch_node.ts";
export * from "./src/server/product_control_plane.ts";
export * from "./src/server/volume_exports.ts";
