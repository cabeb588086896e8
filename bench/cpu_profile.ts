/**
 * Opt-in CPU profiles of a benchmark's timed window (not of set-up and clean-up): with
 * `BENCH_CPU_PROFILE_DIR` set, {@link startCpuProfile} starts the V8 profiler of this process
 * and {@link stopCpuProfile} writes `NAME.cpuprofile` there (open it in Chrome's DevTools).
 * Without it both do nothing.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import process from "node:process";

let session: Session | null = null;

/** Starts profiling when `BENCH_CPU_PROFILE_DIR` is set. */
export async function startCpuProfile(): Promise<void> {
  if (process.env.BENCH_CPU_PROFILE_DIR === undefined || session !== null) return;
  session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
}

/** Stops profiling and writes `NAME.cpuprofile` (when started). */
export async function stopCpuProfile(name: string): Promise<void> {
  const directory = process.env.BENCH_CPU_PROFILE_DIR;
  if (directory === undefined || session === null) return;
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  session = null;
  writeFileSync(join(directory, `${name}.cpuprofile`), JSON.stringify(profile));
}
