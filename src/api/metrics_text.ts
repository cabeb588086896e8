/**
 * Prometheus text exposition format 0.0.4 (prometheus/docs `exposition_formats.md`): one
 * `# HELP` and one `# TYPE` line per family, then a line per sample. HELP text escapes `\`
 * and newline; label values escape `\`, `"` and newline; values are Go-style floats
 * (`NaN`, `+Inf`, `-Inf`).
 *
 * Names are checked, not escaped: a metric or label name the format cannot carry, or two
 * families of one name, is a bug in whoever built the families, so it fails an assertion
 * (and the API answers 500) rather than produce text a scraper would reject whole.
 *
 * @example
 * ```ts
 * import { formatMetricsText } from "./metrics_text.ts";
 *
 * formatMetricsText([{
 *   name: "anytime_volume_head_seq",
 *   help: "Newest durable seq.",
 *   type: "gauge",
 *   samples: [{ labels: { volume: "db" }, value: 812 }],
 * }]);
 * // # HELP anytime_volume_head_seq Newest durable seq.
 * // # TYPE anytime_volume_head_seq gauge
 * // anytime_volume_head_seq{volume="db"} 812
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import type { MetricFamily } from "./control_plane.ts";

/** The `Content-Type` of the text this module writes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const metricNamePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Formats metric families as Prometheus text (ends with a newline, as the format requires). */
export function formatMetricsText(families: readonly MetricFamily[]): string {
  const names = new Set<string>();
  const lines: string[] = [];
  for (const family of families) {
    assert(metricNamePattern.test(family.name), `Metric name "${family.name}" is not a Prometheus name`);
    assert(!names.has(family.name), `Metric family "${family.name}" appears twice`);
    names.add(family.name);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      lines.push(`${family.name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

function formatLabels(labels: { readonly [key: string]: string }): string {
  const pairs: string[] = [];
  for (const [name, value] of Object.entries(labels)) {
    assert(labelNamePattern.test(name) && !name.startsWith("__"), `Label name "${name}" is not a Prometheus label name`);
    pairs.push(`${name}="${escapeLabelValue(value)}"`);
  }
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
