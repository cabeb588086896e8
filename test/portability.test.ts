/**
 * Proves the core stays portable: no file under `src/` reaches for a runtime (DESIGN.md,
 * "Layout"). It reads every `.ts` file under `src/` and rejects runtime imports and globals.
 */
import { describe, expect, it } from "vitest";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

const forbidden: readonly { name: string; pattern: RegExp }[] = [
  { name: "node: import", pattern: /from\s+["']node:|import\(\s*["']node:/ },
  { name: "bare Node built-in import", pattern: /from\s+["'](fs|path|net|os|child_process|crypto|stream|buffer|url)["']/ },
  { name: "Deno global", pattern: /\bDeno\./ },
  { name: "process global", pattern: /\bprocess\./ },
  { name: "Buffer", pattern: /\bBuffer\b/ },
  { name: "require()", pattern: /\brequire\(/ },
  { name: "timer or wall clock (use the Clock seam)", pattern: /\b(setTimeout|setInterval|Date\.now)\s*\(/ },
];

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) files.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** Drops comments so prose may name what code may not use. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

describe("portable core", () => {
  it("no file under src/ reaches for a runtime", async () => {
    const offenders: string[] = [];
    for (const file of await sourceFiles("src")) {
      const code = stripComments(await readFile(file, "utf8"));
      for (const rule of forbidden) {
        if (rule.pattern.test(code)) offenders.push(`${file}: ${rule.name}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("the check itself catches a runtime import", () => {
    const code = stripComments(`import { readFileSync } from "node:fs";\nconst b = Buffer.alloc(1);`);
    expect(forbidden.filter((rule) => rule.pattern.test(code)).map((r) => r.name)).toEqual([
      "node: import",
      "Buffer",
    ]);
  });
});
