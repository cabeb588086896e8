/**
 * Runs the real peers the tests drive (`qemu-io`, `qemu-img`, `nbdinfo`, `nbdcopy`, `fio`),
 * from `/usr/bin` so a missing one fails loudly (CI installs them; nothing is skipped).
 *
 * @example
 * ```ts
 * const { stdout } = await runPeerOk("nbdinfo", ["--list", "nbd://127.0.0.1:10809"]);
 * ```
 */
import { execFile } from "node:child_process";
import { createServer } from "node:net";

/** What a peer printed and how it exited. */
export interface PeerResult {
  code: number;
  stdout: string;
  stderr: string;
}

const peerTimeoutMs = 120_000;

/** Runs a peer; resolves with its exit code and output (a non-zero exit is not a rejection). */
export function runPeer(command: string, args: readonly string[]): Promise<PeerResult> {
  return new Promise((resolve, reject) => {
    execFile(`/usr/bin/${command}`, args, { timeout: peerTimeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") {
        // Not an exit status: the peer is missing (ENOENT) or was killed by the timeout.
        reject(new Error(`Cannot run ${command} ${args.join(" ")}: ${error.message}\n${stderr}`, { cause: error }));
        return;
      }
      resolve({ code: error ? Number(error.code) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs a peer that must succeed; the failure message carries its output. */
export async function runPeerOk(command: string, args: readonly string[]): Promise<PeerResult> {
  const result = await runPeer(command, args);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return result;
}

/** A free loopback TCP port (bound, then released) for a peer or a process to listen on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}
