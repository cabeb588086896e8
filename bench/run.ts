/**
 * Benchmark entry: `npm run bench -- engine` (Node). Prints one JSON object per figure.
 */
const suites: Record<string, () => Promise<unknown>> = {
  engine: () => import("./engine.ts"),
  wire: () => import("./wire.ts"),
  nbd: () => import("./nbd.ts"),
  restore: () => import("./restore.ts"),
};
const suiteName = process.argv[2] ?? "engine";
const suite = suites[suiteName];
if (suite === undefined) {
  console.error(`Unknown benchmark "${suiteName}"; choose one of: ${Object.keys(suites).join(", ")}`);
  process.exit(2);
}
await suite();
export {};
