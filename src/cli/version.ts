/**
 * The version `anytime --version` prints: the package's (`package.json` and `deno.json`;
 * `test/cli/main.test.ts` checks they agree).
 *
 * @example
 * ```ts
 * CLI_VERSION; // "0.1.0"
 * ```
 */
export const CLI_VERSION = "0.1.0";
