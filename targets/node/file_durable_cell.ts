/**
 * The Node target's `FileDurableCell`: the portable cell of
 * `src/io/file_durable_cell.ts` (write `PATH.tmp`, datasync, rename, sync the directory) on
 * `node:fs` (`node_file_system.ts`).
 *
 * @example
 * ```ts
 * import { FileDurableCell } from "./file_durable_cell.ts";
 *
 * const cell = await FileDurableCell.open("/var/lib/anytime/drl.bin");
 * await cell.write(new Uint8Array([1, 2, 3]));
 * await cell.read(); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */
import * as portable from "../../src/io/file_durable_cell.ts";
import { NodeFileSystem } from "./node_file_system.ts";

/** A durable cell in one file, via `node:fs`. */
export type FileDurableCell = portable.FileDurableCell;

/** Opens a {@link FileDurableCell} on `node:fs`: `open(path)`. */
export const FileDurableCell = {
  open: (path: string): Promise<FileDurableCell> =>
    portable.FileDurableCell.open(new NodeFileSystem(), path),
};
