/**
 * The Deno target's {@link ServerRuntime}: the portable processes of `src/server` on
 * `Deno.open` files (through {@link DenoFileSystem}), `Deno.listen` TCP, the system clock and
 * the Hono app on `Deno.serve`. Log lines go to standard error with a UTC timestamp.
 *
 * @module
 */
import type { ServerRuntime } from "../../src/server/processes.ts";
import { DenoFileSystem } from "./deno_file_system.ts";
import { HttpServer } from "./http_server.ts";
import { SystemClock } from "./system_clock.ts";
import { TcpTransport } from "./tcp_transport.ts";

const encoder = new TextEncoder();

/** A runtime whose log goes to `log` (default: standard error). */
export function denoServerRuntime(options: { log?: (line: string) => void } = {}): ServerRuntime {
  return {
    fileSystem: new DenoFileSystem(),
    clock: new SystemClock(),
    tcp: new TcpTransport(),
    serveHttp: (fetch, address) => HttpServer.listen({ fetch }, address),
    writePrivateFile: (path, bytes) => Deno.writeFile(path, bytes, { mode: 0o600, createNew: true }),
    runtimeName: `deno ${Deno.version.deno}`,
    memoryUsage: () => Deno.memoryUsage(),
    log: options.log ?? ((line) => void Deno.stderr.writeSync(encoder.encode(`${new Date().toISOString()} ${line}\n`))),
  };
}
