/**
 * Every limit of the command line client in one place (TigerBeetle: "put a limit on
 * everything"). Relations between them are asserted at load.
 */
import { assert } from "../core/assert.ts";

export const cliLimits = {
  /** Arguments one invocation may pass (a runaway `xargs` is a usage error, not a hang). */
  argumentsMax: 4096,
  /** Characters of one argument. */
  argumentCharsMax: 64 * 1024,
  /** Characters of a response body the client reads; a longer body is refused, not buffered on. */
  responseCharsMax: 64 * 1024 * 1024,
  /** Characters of a token file (a token is 64 hex digits; a file this long is the wrong file). */
  tokenFileCharsMax: 4096,
  /** Characters of a non-JSON error body quoted back to the user. */
  quotedBodyCharsMax: 200,
  /** How often `restore` and `resync` poll their job while they wait. */
  jobPollIntervalMs: 500,
  /** Without a terminal, a progress line at most this often (and at every change of state). */
  progressLineIntervalMs: 5_000,
  /** Polls in a row that may fail to reach the API (a restart of `serve`) before waiting gives up. */
  jobPollFailuresMax: 10,
  /** Extents `diff` lists unless told `--limit`. */
  diffExtentsShownDefault: 20,
  /** Largest `--limit` accepted. */
  listLimitMax: 1_000_000,
  /** Columns of the progress bar itself (the `[####....]` part). */
  progressBarColumns: 30,
  /** Terminal width assumed when the runtime does not say. */
  terminalColumnsDefault: 80,
} as const;

assert(cliLimits.progressLineIntervalMs >= cliLimits.jobPollIntervalMs, "A progress line needs at least one poll");
assert(cliLimits.diffExtentsShownDefault <= cliLimits.listLimitMax, "The default list fits the maximum");
assert(cliLimits.progressBarColumns < cliLimits.terminalColumnsDefault, "The bar fits a terminal");
