/**
 * A strict reader of Prometheus text exposition format 0.0.4, for tests: it reads back what
 * `metrics_text.ts` writes, unescaping HELP text and label values, and throws on any line the
 * format does not allow (so a test that parses the output also proves it well formed).
 */
import type { MetricFamily } from "../../src/api/control_plane.ts";

const helpLine = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/;
const typeLine = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;

/** Parses exposition text into families (samples keep their order). */
export function parsePrometheusText(text: string): MetricFamily[] {
  if (text !== "" && !text.endsWith("\n")) throw new SyntaxError("Exposition text must end with a newline");
  const families = new Map<string, { name: string; help: string; type: MetricFamily["type"]; samples: MetricFamily["samples"][number][] }>();
  const lines = text === "" ? [] : text.slice(0, -1).split("\n");
  for (const [index, line] of lines.entries()) {
    const help = helpLine.exec(line);
    if (help !== null) {
      if (families.has(help[1])) throw new SyntaxError(`Line ${index + 1}: family "${help[1]}" seen twice`);
      families.set(help[1], { name: help[1], help: unescape(help[2]), type: "gauge", samples: [] });
      continue;
    }
    const type = typeLine.exec(line);
    if (type !== null) {
      const family = families.get(type[1]);
      if (family === undefined) throw new SyntaxError(`Line ${index + 1}: TYPE before HELP for "${type[1]}"`);
      family.type = type[2] as MetricFamily["type"];
      continue;
    }
    const sample = sampleLine.exec(line);
    if (sample === null) throw new SyntaxError(`Line ${index + 1}: cannot parse "${line}"`);
    const family = families.get(sample[1]);
    if (family === undefined) throw new SyntaxError(`Line ${index + 1}: sample of undeclared family "${sample[1]}"`);
    family.samples.push({ labels: parseLabels(sample[2] ?? "", index + 1), value: parseValue(sample[3], index + 1) });
  }
  return [...families.values()];
}

function parseLabels(text: string, lineNumber: number): { [key: string]: string } {
  const labels: { [key: string]: string } = {};
  labelPair.lastIndex = 0;
  while (labelPair.lastIndex < text.length) {
    const start = labelPair.lastIndex;
    const match = labelPair.exec(text);
    if (match === null || match.index !== start) throw new SyntaxError(`Line ${lineNumber}: cannot parse labels "${text}"`);
    labels[match[1]] = unescape(match[2]);
    if (match[3] === "" && labelPair.lastIndex !== text.length) throw new SyntaxError(`Line ${lineNumber}: trailing label text`);
  }
  return labels;
}

function parseValue(text: string, lineNumber: number): number {
  if (text === "NaN") return Number.NaN;
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  const value = Number(text);
  if (!/^-?\d/.test(text) || Number.isNaN(value)) throw new SyntaxError(`Line ${lineNumber}: "${text}" is not a value`);
  return value;
}

function unescape(text: string): string {
  return text.replace(/\\([\\"n])/g, (_, escaped: string) => (escaped === "n" ? "\n" : escaped));
}
