/**
 * Metric families of the process itself (its memory), for `GET /metrics`. `src/` cannot read
 * the process, so the target passes in its runtime's `memoryUsage()` (Node's and Deno's both
 * return this shape).
 *
 * @example
 * ```ts
 * import { processMemoryMetrics } from "./process_metrics.ts";
 *
 * const families = processMemoryMetrics({ rss: 50e6, heapTotal: 20e6, heapUsed: 12e6, external: 3e6 });
 * families[0].name; // "process_resident_memory_bytes"
 * ```
 *
 * @module
 */
import type { MetricFamily } from "./control_plane.ts";

/** Memory of the process, bytes (the shape of Node's and Deno's `memoryUsage()`). */
export interface MemoryUsage {
  /** Resident set size. */
  readonly rss: number;
  /** JavaScript heap reserved. */
  readonly heapTotal: number;
  /** JavaScript heap in use. */
  readonly heapUsed: number;
  /** Memory outside the JavaScript heap held by JavaScript objects (ArrayBuffers...). */
  readonly external: number;
}

/** The process's memory as gauges; `process_resident_memory_bytes` is the name Prometheus clients use. */
export function processMemoryMetrics(usage: MemoryUsage): MetricFamily[] {
  const gauge = (name: string, help: string, value: number): MetricFamily => ({
    name,
    help,
    type: "gauge",
    samples: [{ labels: {}, value }],
  });
  return [
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", usage.rss),
    gauge("anytime_process_heap_total_bytes", "JavaScript heap reserved, in bytes.", usage.heapTotal),
    gauge("anytime_process_heap_used_bytes", "JavaScript heap in use, in bytes.", usage.heapUsed),
    gauge(
      "anytime_process_external_memory_bytes",
      "Memory held by JavaScript objects outside the heap (buffers), in bytes.",
      usage.external,
    ),
  ];
}
