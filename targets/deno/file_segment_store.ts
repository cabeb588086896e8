/**
 * The Deno target's `FileSegmentStore`: the portable store of
 * `src/io/file_segment_store.ts` (layout, durability, open-file cache) on Deno's file API
 * (`deno_file_system.ts`: the I/O calls and the figures behind them).
 *
 * @example
 * ```ts
 * import { FileSegmentStore } from "./file_segment_store.ts";
 *
 * const store = await FileSegmentStore.open("/var/lib/anytime/journal", { openFilesMax: 64 });
 * await store.create(1, 64 * 1024 * 1024);
 * await store.write(1, 0, new Uint8Array(4096));
 * await store.sync(1);
 * await store.close();
 * ```
 *
 * @module
 */
import * as portable from "../../src/io/file_segment_store.ts";
import { DenoFileSystem } from "./deno_file_system.ts";

export { type FileSegmentStoreOptions, OPEN_FILES_MAX_DEFAULT } from "../../src/io/file_segment_store.ts";

/** A segment store on a directory, via Deno's file API. */
export type FileSegmentStore = portable.FileSegmentStore;

/** Opens a {@link FileSegmentStore} on Deno's file API: `open(directory, options?)`. */
export const FileSegmentStore = {
  open: (directory: string, options?: portable.FileSegmentStoreOptions): Promise<FileSegmentStore> =>
    portable.FileSegmentStore.open(new DenoFileSystem(), directory, options),
};
