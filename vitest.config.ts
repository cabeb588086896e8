import { defineConfig } from "vitest/config";

// One suite, two runtimes: `npm test` runs this config under Node and under Deno.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
