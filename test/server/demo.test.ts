/**
 * Proves `anytime demo` runs to the end on the runtime under test, on its own temporary
 * directory: every CLI step exits 0, the last good point is found, and the restore brings the
 * host's document back.
 */
import { expect, it } from "vitest";
import { runDemo } from "../../src/server/demo.ts";
import { runtimeTarget } from "../support/runtime.ts";

it("the demo tours protection, snapshot, corruption, images, diff and restore to the end", async () => {
  const target = await runtimeTarget();
  let out = "";
  let err = "";
  const code = await runDemo({
    runtime: target.createServerRuntime({ log: () => {} }),
    cli: {
      fetch: (input, init) => fetch(input, init),
      readTextFile: async (path) => new TextDecoder().decode(await target.createServerRuntime().fileSystem.readFileOrNull(path) ?? new Uint8Array()),
      stdout: (text) => void (out += text),
      stderr: (text) => void (err += text),
      isTty: false,
      timeZone: "UTC",
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      nowMs: () => Date.now(),
    },
    makeTempDirectory: () => target.tempDir(),
    removeDirectory: (path) => target.removeDir(path),
  });
  expect(err).not.toMatch(/refused|error/i);
  expect(code).toBe(0);
  expect(out).toMatch(/The last good state is seq:4/);
  expect(out).toMatch(/The host reads its document again: "Quarterly report, final/);
});
