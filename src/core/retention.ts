/**
 * Retention policies (seed 000; DESIGN.md "Retention and fade-out"): an any-point window
 * (`48h`) and a grid of retained points beyond it (`24x1h,14x1d,8x1w`: 24 hourly, then 14
 * daily, then 8 weekly points). Parsing is pure; planning and fading are the appliance's job.
 *
 * @example
 * ```ts
 * import { parseRetention } from "./retention.ts";
 *
 * parseRetention({ window: "48h", keep: "24x1h,14x1d" }).grid; // [{count: 24, everyUs: 3.6e9}, {count: 14, everyUs: 8.64e10}]
 * ```
 *
 * @module
 */
import { parseDurationUs } from "./units.ts";

/** The policy used until one is set. */
export const RETENTION_DEFAULT = { window: "48h", keep: "24x1h,14x1d,8x1w" } as const;

/** Grid steps a policy may have. */
export const RETENTION_GRID_STEPS_MAX = 16;

/** A parsed policy. */
export interface RetentionPolicy {
  readonly window: string;
  readonly keep: string;
  readonly windowUs: number;
  readonly grid: readonly { readonly count: number; readonly everyUs: number }[];
}

/**
 * Parses and checks a policy; the texts are kept normalized (trimmed).
 *
 * @throws {SyntaxError} quoting the part that is not a duration or not `COUNTxDURATION`.
 * @throws {RangeError} for a zero window, a count outside 1..100000, or too many steps.
 */
export function parseRetention(policy: { window: string; keep: string }): RetentionPolicy {
  const window = policy.window.trim();
  const windowUs = parseDurationUs(window);
  if (windowUs <= 0) throw new RangeError(`Cannot use retention window "${window}": it must be longer than zero`);
  const keep = policy.keep.trim();
  const steps = keep === "" ? [] : keep.split(",").map((step) => step.trim());
  if (steps.length > RETENTION_GRID_STEPS_MAX) {
    throw new RangeError(`Cannot keep "${keep}": at most ${RETENTION_GRID_STEPS_MAX} steps`);
  }
  const grid = steps.map((step) => {
    const match = /^(\d+)x(.+)$/.exec(step);
    if (match === null) throw new SyntaxError(`Cannot parse retention step "${step}": expected COUNTxDURATION, like 24x1h`);
    const count = Number(match[1]);
    if (!Number.isSafeInteger(count) || count < 1 || count > 100_000) {
      throw new RangeError(`Cannot keep ${match[1]} points in step "${step}": use 1 to 100000`);
    }
    return { count, everyUs: parseDurationUs(match[2]) };
  });
  return { window, keep: steps.join(","), windowUs, grid };
}
