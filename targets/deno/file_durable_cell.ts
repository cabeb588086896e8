/**
 * A {@link DurableCell} in one file, via Deno's file API: each write goes to `PATH.tmp`, is
 * fdatasynced, renamed over `PATH`, and the directory is fsynced. Rename is atomic, so after
 * a crash `read` sees the old or the new bytes, never a mix. Writes are serialized.
 *
 * @example
 * ```ts
 * import { FileDurableCell } from "./file_durable_cell.ts";
 *
 * const cell = await FileDurableCell.open("/var/lib/anytime/drl.bin");
 * await cell.write(new Uint8Array([1, 2, 3]));
 * await cell.read(); // Uint8Array [1, 2, 3]
 * ```
 */
import type { DurableCell } from "../../src/io/durable_cell.ts";
import {
  exists,
  fsyncDirectory,
  parentDirectory,
  readFileOrNull,
  replaceFileAtomically,
} from "./_file_io.ts";

/** The file durable cell; see the module doc. */
export class FileDurableCell implements DurableCell {
  /** The file holding the value. */
  readonly path: string;
  #queue: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Opens the cell at `path` (its directory must exist), removing a `PATH.tmp` left by a
   * write that a crash interrupted.
   */
  static async open(path: string): Promise<FileDurableCell> {
    const temporaryPath = `${path}.tmp`;
    if (await exists(temporaryPath)) {
      await Deno.remove(temporaryPath);
      await fsyncDirectory(parentDirectory(path));
    }
    return new FileDurableCell(path);
  }

  /** The last written bytes, or `null` if the cell was never written. */
  async read(): Promise<Uint8Array | null> {
    await this.#queue;
    return await readFileOrNull(this.path);
  }

  /** Replaces the value atomically; durable when the promise resolves. */
  write(bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    const written = this.#queue.then(() => replaceFileAtomically(this.path, copy));
    // The queue only orders writes; each caller gets its own outcome from `written`.
    this.#queue = written.then(ignore, ignore);
    return written;
  }
}

function ignore(): void {}
