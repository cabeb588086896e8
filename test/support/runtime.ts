/**
 * The runtime under test and its target: under Deno (`globalThis.Deno` defined) the Deno
 * target, else the Node target. The same vitest suite runs on both runtimes, so tests that
 * touch files, sockets or the system clock take their classes from here, never from a
 * target directly.
 *
 * The targets are imported by a computed specifier so the Node type-check
 * (`tsconfig.node.json`) does not type-check the Deno target against Node's types; the
 * interfaces below state what tests may use.
 *
 * @example
 * ```ts
 * const target = await runtimeTarget();
 * const directory = await target.tempDir();
 * const store = await target.FileSegmentStore.open(directory);
 * ```
 */
import type { BlockDevice } from "../../src/io/block_device.ts";
import type { Clock } from "../../src/io/clock.ts";
import type { DurableCell } from "../../src/io/durable_cell.ts";
import type { FileSystem } from "../../src/io/file_system.ts";
import type { SegmentStore } from "../../src/io/segment_store.ts";
import type { Transport } from "../../src/io/transport.ts";
import type { ServerRuntime } from "../../src/server/processes.ts";

/** A target's `FileSegmentStore`, as tests see it. */
export interface TargetSegmentStore extends SegmentStore {
  readonly directory: string;
  /** Segment files open now. */
  readonly openFiles: number;
}

/** A target's `FileBlockDevice`, as tests see it. */
export interface TargetBlockDevice extends BlockDevice {
  readonly path: string;
}

/** A target's `FileDurableCell`, as tests see it. */
export interface TargetDurableCell extends DurableCell {
  readonly path: string;
}

/** What a target module (`targets/node/mod.ts`, `targets/deno/mod.ts`) exports to tests. */
export interface TargetModule {
  readonly TARGET_NAME: "node" | "deno";
  FileSegmentStore: {
    open(directory: string, options?: { openFilesMax?: number }): Promise<TargetSegmentStore>;
  };
  FileBlockDevice: {
    open(
      path: string,
      options?: { sizeBytes?: number; create?: boolean; readOnly?: boolean },
    ): Promise<TargetBlockDevice>;
  };
  FileDurableCell: { open(path: string): Promise<TargetDurableCell> };
  /** The runtime's {@link FileSystem} (to build the portable file classes on a wrapper of it). */
  RuntimeFileSystem: new () => FileSystem;
  SystemClock: new () => Clock;
  TcpTransport: new (options?: { receiveQueueBytesMax?: number; closeLingerMs?: number }) => Transport;
  /** The runtime's parts for the processes of `src/server` (files, TCP, HTTP, clock). */
  createServerRuntime(options?: { log?: (line: string) => void }): ServerRuntime;
  HttpServer: {
    listen(
      handler: { fetch(request: Request): Response | Promise<Response> },
      address: string,
      options?: { closeLingerMs?: number },
    ): Promise<TargetHttpServer>;
  };
}

/** A target's `HttpServer` (serving a Web-standard app on a TCP address), as tests see it. */
export interface TargetHttpServer {
  readonly address: string;
  close(): Promise<void>;
}

/** The runtime's target plus file-system helpers for tests. */
export interface RuntimeTarget extends TargetModule {
  /** The runtime running the tests (and so the target that must have been loaded). */
  readonly name: "node" | "deno";
  /** A new empty directory under the OS temporary directory. */
  tempDir(): Promise<string>;
  /** Removes a directory and everything in it. */
  removeDir(path: string): Promise<void>;
  /** Names in a directory, sorted. */
  listDir(path: string): Promise<string[]>;
  /** Writes a whole file (to plant leftovers a crash would leave). */
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  /** A file's apparent size and the bytes the file system allocated for it. */
  statFile(path: string): Promise<{ sizeBytes: number; allocatedBytes: number }>;
}

/** The subset of the `Deno` namespace this helper uses (Node type-checks this file). */
interface DenoFileSystem {
  makeTempDir(options: { prefix: string }): Promise<string>;
  remove(path: string, options: { recursive: boolean }): Promise<void>;
  readDir(path: string): AsyncIterable<{ name: string }>;
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  stat(path: string): Promise<{ size: number; blocks: number | null }>;
}

/** `stat` counts allocated blocks in units of 512 bytes on both runtimes. */
const statBlockBytes = 512;

const tempDirPrefix = "anytime-test-";

let cached: Promise<RuntimeTarget> | undefined;

/** Loads the target of the runtime running the tests (once per test file). */
export function runtimeTarget(): Promise<RuntimeTarget> {
  cached ??= loadRuntimeTarget();
  return cached;
}

async function loadRuntimeTarget(): Promise<RuntimeTarget> {
  const deno = (globalThis as { Deno?: DenoFileSystem }).Deno;
  if (deno !== undefined) {
    const specifier = "../../targets/deno/mod.ts";
    const target = (await import(specifier)) as TargetModule;
    return {
      ...pick(target),
      name: "deno",
      tempDir: () => deno.makeTempDir({ prefix: tempDirPrefix }),
      removeDir: (path) => deno.remove(path, { recursive: true }),
      listDir: async (path) => {
        const names: string[] = [];
        for await (const entry of deno.readDir(path)) names.push(entry.name);
        return names.sort();
      },
      writeFile: (path, bytes) => deno.writeFile(path, bytes),
      statFile: async (path) => {
        const info = await deno.stat(path);
        return { sizeBytes: info.size, allocatedBytes: (info.blocks ?? 0) * statBlockBytes };
      },
    };
  }
  const specifier = "../../targets/node/mod.ts";
  const target = (await import(specifier)) as TargetModule;
  const fs = await import("node:fs/promises");
  const os = await import("node:os");
  const path = await import("node:path");
  return {
    ...pick(target),
    name: "node",
    tempDir: () => fs.mkdtemp(path.join(os.tmpdir(), tempDirPrefix)),
    removeDir: (directory) => fs.rm(directory, { recursive: true, force: true }),
    listDir: async (directory) => (await fs.readdir(directory)).sort(),
    writeFile: (file, bytes) => fs.writeFile(file, bytes),
    statFile: async (file) => {
      const stat = await fs.stat(file);
      return { sizeBytes: stat.size, allocatedBytes: stat.blocks * statBlockBytes };
    },
  };
}

function pick(target: TargetModule): TargetModule {
  return {
    TARGET_NAME: target.TARGET_NAME,
    FileSegmentStore: target.FileSegmentStore,
    FileBlockDevice: target.FileBlockDevice,
    FileDurableCell: target.FileDurableCell,
    RuntimeFileSystem: target.RuntimeFileSystem,
    SystemClock: target.SystemClock,
    TcpTransport: target.TcpTransport,
    HttpServer: target.HttpServer,
    createServerRuntime: target.createServerRuntime,
  };
}
