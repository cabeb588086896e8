/**
 * The Node target's {@link ServerRuntime}: the portable processes of `src/server` on
 * `node:fs` (through {@link NodeFileSystem}), `node:net` TCP, the system clock and the Hono
 * app served by `@hono/node-server`. Log lines go to standard error with a UTC timestamp.
 *
 * @example
 * ```ts
 * import { startServe } from "../../src/server/processes.ts";
 * import { nodeServerRuntime } from "./server_runtime.ts";
 *
 * const running = await startServe(nodeServerRuntime(), {
 *   dataDirectory: "/var/lib/anytime", volumes: [{ name: "db", path: "/srv/db.img", sizeBytes: 2 ** 30 }],
 *   nbdAddress: "127.0.0.1:10809", httpAddress: "127.0.0.1:7380",
 * });
 * ```
 *
 * @module
 */
import { writeFile } from "node:fs/promises";
import process from "node:process";
import type { ServerRuntime } from "../../src/server/processes.ts";
import { HttpServer } from "./http_server.ts";
import { NodeFileSystem } from "./node_file_system.ts";
import { SystemClock } from "./system_clock.ts";
import { TcpTransport } from "./tcp_transport.ts";

/** A runtime whose log goes to `log` (default: standard error). */
export function nodeServerRuntime(options: { log?: (line: string) => void } = {}): ServerRuntime {
  return {
    fileSystem: new NodeFileSystem(),
    clock: new SystemClock(),
    tcp: new TcpTransport(),
    serveHttp: (fetch, address) => HttpServer.listen({ fetch }, address),
    writePrivateFile: (path, bytes) => writeFile(path, bytes, { mode: 0o600, flag: "wx" }),
    runtimeName: `node ${process.versions.node}`,
    memoryUsage: () => process.memoryUsage(),
    log: options.log ?? ((line) => void process.stderr.write(`${new Date().toISOString()} ${line}\n`)),
  };
}
