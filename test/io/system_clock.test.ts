/**
 * Proves the running runtime's `SystemClock` (Node's under Node, Deno's under Deno) tells
 * wall-clock time in microseconds with sub-millisecond precision, never goes backwards, and
 * sleeps. No speed is asserted: only that time moves the way the Clock seam promises.
 */
import { describe, expect, test } from "vitest";
import { runtimeTarget } from "../support/runtime.ts";

const target = await runtimeTarget();

describe(`SystemClock (${target.name})`, () => {
  test("nowUs is wall-clock microseconds, within a few milliseconds of Date.now", () => {
    const clock = new target.SystemClock();
    const beforeUs = Date.now() * 1000;
    const nowUs = clock.nowUs();
    const afterUs = (Date.now() + 1) * 1000;
    expect(Number.isSafeInteger(nowUs)).toBe(true);
    expect(nowUs).toBeGreaterThanOrEqual(beforeUs - 3000);
    expect(nowUs).toBeLessThanOrEqual(afterUs + 3000);
  });

  test("nowUs never goes backwards and resolves below a millisecond", () => {
    const clock = new target.SystemClock();
    let previousUs = clock.nowUs();
    let subMillisecondSteps = 0;
    let backwardSteps = 0;
    for (let i = 0; i < 100_000; i++) {
      const nowUs = clock.nowUs();
      if (nowUs < previousUs) backwardSteps++;
      if (nowUs > previousUs && nowUs - previousUs < 1000 && nowUs % 1000 !== 0) {
        subMillisecondSteps++;
      }
      previousUs = nowUs;
    }
    expect(backwardSteps).toBe(0);
    expect(subMillisecondSteps).toBeGreaterThan(0);
  });

  test("sleep resolves after about the time asked", async () => {
    const clock = new target.SystemClock();
    const startUs = clock.nowUs();
    await clock.sleep(20);
    expect(clock.nowUs() - startUs).toBeGreaterThanOrEqual(15_000);
  });

  test("nextTurn resolves on a later turn of the event loop, after the tasks already queued", async () => {
    const clock = new target.SystemClock();
    const ran: string[] = [];
    const timer = new Promise<void>((resolve) => setTimeout(() => (ran.push("timer"), resolve()), 0));
    const turn = clock.nextTurn().then(() => ran.push("turn"));
    void Promise.resolve().then(() => ran.push("microtask"));
    await Promise.all([timer, turn]);
    expect(ran).toEqual(["microtask", "timer", "turn"]);
  });

  test("sleep rejects a negative or non-finite time with RangeError", async () => {
    const clock = new target.SystemClock();
    await expect(clock.sleep(-1)).rejects.toThrow(RangeError);
    await expect(clock.sleep(Number.NaN)).rejects.toThrow(RangeError);
  });
});
