/**
 * Proves the two ways SPEC.md gives to start the CLI work from a checkout after `npm ci`:
 * `npx anytime` (the package's bin, `bin/anytime.mjs` on Node) and `deno task anytime`
 * (whose task must not run the `deno` npm package's binary as a script, which a plain `deno`
 * in the task would do: `deno task` puts `node_modules/.bin` first).
 */
import { execFile } from "node:child_process";
import { expect, it } from "vitest";

function run(command: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

it("npx anytime and deno task anytime both run the CLI", async () => {
  const node = await run("node", ["bin/anytime.mjs", "--version"]);
  expect(node).toMatchObject({ code: 0 });
  expect(node.output).toMatch(/^anytime \d+\.\d+\.\d+$/m);
  const deno = await run("node_modules/deno/deno", ["task", "anytime", "--version"]);
  expect(deno.code).toBe(0);
  expect(deno.output).toMatch(/^anytime \d+\.\d+\.\d+$/m);
  const usage = await run("node", ["bin/anytime.mjs", "frobnicate"]);
  expect(usage.code).toBe(2);
});
