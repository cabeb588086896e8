/**
 * A {@link DurableCell} in one file of a {@link FileSystem}: each write goes to `PATH.tmp`,
 * is datasynced, renamed over `PATH`, and the directory is synced. Rename is atomic, so after
 * a crash `read` sees the old or the new bytes, never a mix. Writes are serialized. Written
 * once for every runtime; each target binds its file system
 * (`targets/node/file_durable_cell.ts`, `targets/deno/file_durable_cell.ts`).
 *
 * @example
 * ```ts
 * import { FileDurableCell } from "./file_durable_cell.ts";
 * import { NodeFileSystem } from "../../targets/node/node_file_system.ts";
 *
 * const cell = await FileDurableCell.open(new NodeFileSystem(), "/var/lib/anytime/drl.bin");
 * await cell.write(new Uint8Array([1, 2, 3]));
 * await cell.read(); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */
import type { DurableCell } from "./durable_cell.ts";
import { type FileSystem, removeIfExists, replaceFileAtomically } from "./file_system.ts";

/** The file durable cell; see the module doc. */
export class FileDurableCell implements DurableCell {
  /** The file holding the value. */
  readonly path: string;
  readonly #fileSystem: FileSystem;
  #queue: Promise<void> = Promise.resolve();

  private constructor(fileSystem: FileSystem, path: string) {
    this.#fileSystem = fileSystem;
    this.path = path;
  }

  /**
   * Opens the cell at `path` (its directory must exist), removing a `PATH.tmp` left by a
   * write that a crash interrupted.
   */
  static async open(fileSystem: FileSystem, path: string): Promise<FileDurableCell> {
    if (await removeIfExists(fileSystem, `${path}.tmp`)) {
      await fileSystem.syncDirectory(fileSystem.parentPath(path));
    }
    return new FileDurableCell(fileSystem, path);
  }

  /** The last written bytes, or `null` if the cell was never written. */
  async read(): Promise<Uint8Array | null> {
    await this.#queue;
    return await this.#fileSystem.readFileOrNull(this.path);
  }

  /** Replaces the value atomically; durable when the promise resolves. */
  write(bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    const written = this.#queue.then(() => replaceFileAtomically(this.#fileSystem, this.path, copy));
    // The queue only orders writes; each caller gets its own outcome from `written`.
    this.#queue = written.then(ignore, ignore);
    return written;
  }
}

function ignore(): void {}
