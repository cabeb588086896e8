import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * One JSON object per figure, each next to its limit or peer measured in the same run
 * (the brief: "Speed is measured, not asserted").
 */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly peer: string;
  readonly peerValue: number | null;
  readonly ratio: number | null;
  /** The target from the issue, as text (`ratio >= 0.85`, `<= 50 ms`). */
  readonly target: string;
  readonly met: boolean;
  readonly note?: string;
}

export function report(figure: Figure): void {
  const round = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);
  const stolen = stolenSinceLastReport();
  const note = stolen === null ? figure.note : [figure.note, stolen].filter((part) => part !== undefined && part !== "").join("; ");
  console.log(JSON.stringify({
    ...figure,
    value: round(figure.value),
    peerValue: round(figure.peerValue),
    ratio: round(figure.ratio),
    ...(note === undefined ? {} : { note }),
  }));
}

/** CPU time (clock ticks, all CPUs) from Linux's `/proc/stat`: all of it, and what the hypervisor stole. */
function cpuTicks(): { total: number; steal: number } | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return null;
    return { total: fields.reduce((sum, n) => sum + n, 0), steal: fields[7] };
  } catch {
    return null;
  }
}

let ticksAtLastReport = cpuTicks();

/**
 * The share of CPU time the hypervisor took from this VM since the previous figure (so over
 * the run that measured this one), as a note's phrase; null where `/proc/stat` is missing or
 * less than a second of CPU time passed. On the project's VM it moved from 0 to 25% within
 * an afternoon, with every figure of the run.
 */
function stolenSinceLastReport(): string | null {
  const now = cpuTicks();
  const before = ticksAtLastReport;
  ticksAtLastReport = now;
  if (now === null || before === null || now.total - before.total < 100) return null;
  const share = (now.steal - before.steal) / (now.total - before.total);
  return `CPU stolen by the hypervisor while measured: ${(share * 100).toFixed(1)}%`;
}

/**
 * CPU time the calling thread has run, in seconds (Linux's `/proc/thread-self/schedstat`, in
 * ns); null elsewhere. Called on the main thread, it tells whether one thread bounds a figure
 * while the process's total CPU (`process.cpuUsage`, all threads) still has room on the cores.
 */
export function threadCpuSeconds(): number | null {
  try {
    const ns = Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ", 1)[0]);
    return Number.isFinite(ns) ? ns / 1e9 : null;
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, all threads) process `pid` has used, in seconds (Linux's
 * `/proc/PID/stat`, in clock ticks of 1/100 s); null elsewhere or when it has gone. For a
 * peer's CPU per MiB beside ours.
 */
export function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    // Fields after the command name, which is in parentheses and may hold spaces and ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/**
 * Milliseconds the whole disk holding `path` has had I/O in flight, so far (Linux
 * `/proc/diskstats` "io_ticks" of the disk, not the partition: `/sys/dev/block/M:m/..` when
 * the file system sits on one); null elsewhere. Two readings over an interval give the
 * share of it the disk was busy: well under 100% while a durable stage is always
 * outstanding means the time went to the hand-off, not the disk.
 */
export function diskBusyMs(path: string): number | null {
  try {
    const dev = statSync(path).dev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
    const sysPath = `/sys/dev/block/${major}:${minor}`;
    const name = existsSync(`${sysPath}/partition`) ? basename(dirname(realpathSync(sysPath))) : basename(realpathSync(sysPath));
    for (const line of readFileSync("/proc/diskstats", "utf8").split("\n")) {
      const fields = line.trim().split(/\s+/);
      if (fields[2] === name) return Number(fields[12]);
    }
    return null;
  } catch {
    return null;
  }
}
