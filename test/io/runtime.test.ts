/**
 * Proves the suite really runs inside each runtime: a run launched by the `deno` binary has
 * `globalThis.Deno` and loads the Deno target; a run launched by `node` has no `Deno` and
 * loads the Node target. Without this a Deno run that fell back to Node (or loaded the
 * wrong target) would pass every other test while testing nothing of Deno's.
 */
import { expect, test } from "vitest";
import { runtimeTarget } from "../support/runtime.ts";

interface DenoVersion {
  version: { deno: string };
}

test("The tests run inside the runtime that launched them, with that runtime's target", async () => {
  const target = await runtimeTarget();
  const deno = (globalThis as { Deno?: DenoVersion }).Deno;
  const executable = (globalThis as { process?: { execPath: string } }).process?.execPath ?? "";
  const launchedByDeno = /(^|\/)deno[^/]*$/.test(executable);
  expect(deno !== undefined).toBe(launchedByDeno);
  if (deno !== undefined) {
    expect(deno.version.deno).toMatch(/^2\./);
    expect(target.name).toBe("deno");
  } else {
    expect(executable).toMatch(/(^|\/)node[^/]*$/);
    expect(target.name).toBe("node");
  }
  expect(target.TARGET_NAME).toBe(target.name);
});
