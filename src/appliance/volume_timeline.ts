/**
 * A volume's timeline: the markers of its write stream (gaps, in-sync / out-of-sync, fix-ups,
 * write errors, restores, snapshots) and what follows from them — the gaps and the suspect
 * intervals that SPEC guarantee 3 says must never be silent.
 *
 * A gap marker (seq G) says writes were missed before it: by marking mode (detail
 * `{afterSeq, fromTimeUs, toTimeUs, missedWrites}`: the copy stream stopped after `afterSeq`
 * at `fromTimeUs`), by a switch restart with dirty DRL bits, or by records the appliance lost.
 * From G on, the journal lacks writes the primary has, so every state from G up to the end of
 * the next fix-up (a `fixupEnd` marker, written when resync has copied the true mismatches —
 * seed 002) is **suspect**: it opens, with a warning. A time inside the gap's time range is
 * suspect too: it resolves to the last journaled write, which is not what the primary held
 * then.
 *
 * Markers are few next to writes; the timeline keeps at most `limits.timelineMarkersMax` of
 * them (the oldest non-gap markers go first, so a gap is never forgotten while retained).
 *
 * @example
 * ```ts
 * import { VolumeTimeline } from "./volume_timeline.ts";
 *
 * const timeline = new VolumeTimeline();
 * timeline.add({ seq: 10, timeUs: 5_000_000, kind: "gap", detail: { reason: "marking mode", afterSeq: 9 } });
 * timeline.suspectReason(12, undefined); // "inside the suspect interval after the gap at seq:10 (marking mode) ..."
 * ```
 *
 * @module
 */
import { limits } from "../core/limits.ts";
import { formatTimeUs } from "../core/units.ts";

/** A marker's detail: small JSON. */
export type MarkerDetail = { readonly [key: string]: string | number | boolean | null };

/** One marker of the write stream. */
export interface TimelineMarker {
  readonly seq: number;
  readonly timeUs: number;
  /** The journal record kind's name: `gap`, `snapshot`, `fixupEnd`, ... */
  readonly kind: string;
  readonly detail: MarkerDetail;
}

/** An interval of the history, bounds as `{seq, timeUs}`; `to` undefined while open. */
export interface TimelineInterval {
  readonly from: { readonly seq: number; readonly timeUs: number };
  readonly to: { readonly seq: number; readonly timeUs: number } | undefined;
  readonly reason: string;
}

/** Markers that end a suspect interval: resync copied every true mismatch. */
const suspectEndKinds: ReadonlySet<string> = new Set(["fixupEnd"]);

/** See the module doc. */
export class VolumeTimeline {
  readonly #markers: TimelineMarker[] = [];
  readonly #markersMax: number;

  constructor(options: { markersMax?: number } = {}) {
    this.#markersMax = options.markersMax ?? limits.timelineMarkersMax;
    if (!Number.isSafeInteger(this.#markersMax) || this.#markersMax < 1) {
      throw new RangeError(`Cannot keep a timeline of ${this.#markersMax} markers: not a positive integer`);
    }
  }

  /** Markers in seq order. */
  get markers(): readonly TimelineMarker[] {
    return this.#markers;
  }

  /** Adds a marker (markers arrive in seq order; a resent one is ignored). */
  add(marker: TimelineMarker): void {
    const last = this.#markers[this.#markers.length - 1];
    if (last !== undefined && marker.seq <= last.seq) return;
    this.#markers.push(marker);
    if (this.#markers.length > this.#markersMax) {
      const oldest = this.#markers.findIndex((m) => m.kind !== "gap" && !suspectEndKinds.has(m.kind));
      this.#markers.splice(oldest >= 0 ? oldest : 0, 1);
    }
  }

  /** Markers with `fromSeq <= seq <= toSeq`, at most `limit`, oldest first. */
  between(fromSeq: number, toSeq: number, limit: number): TimelineMarker[] {
    const found: TimelineMarker[] = [];
    for (const marker of this.#markers) {
      if (marker.seq < fromSeq) continue;
      if (marker.seq > toSeq || found.length >= limit) break;
      found.push(marker);
    }
    return found;
  }

  /**
   * The gaps: from the last journaled state before the missed writes to the gap marker.
   * `previous` gives the `{seq, timeUs}` of the record before a seq (for gaps without detail).
   */
  gaps(previous: (seq: number) => { seq: number; timeUs: number }): TimelineInterval[] {
    return this.#markers.filter((m) => m.kind === "gap").map((gap) => {
      const before = previous(gap.seq);
      const afterSeq = numberDetail(gap, "afterSeq") ?? before.seq;
      const fromTimeUs = numberDetail(gap, "fromTimeUs") ?? before.timeUs;
      return { from: { seq: afterSeq, timeUs: fromTimeUs }, to: { seq: gap.seq, timeUs: gap.timeUs }, reason: reasonOf(gap) };
    });
  }

  /** The suspect intervals: from each gap marker to the end of the fix-up after it (open if none yet). */
  suspectIntervals(): TimelineInterval[] {
    const intervals: TimelineInterval[] = [];
    let open: { from: { seq: number; timeUs: number }; reason: string } | undefined;
    for (const marker of this.#markers) {
      if (marker.kind === "gap") {
        const fromTimeUs = numberDetail(marker, "fromTimeUs") ?? marker.timeUs;
        open ??= { from: { seq: marker.seq, timeUs: Math.min(fromTimeUs, marker.timeUs) }, reason: reasonOf(marker) };
      } else if (suspectEndKinds.has(marker.kind) && open !== undefined) {
        intervals.push({ ...open, to: { seq: marker.seq, timeUs: marker.timeUs } });
        open = undefined;
      }
    }
    if (open !== undefined) intervals.push({ ...open, to: undefined });
    return intervals;
  }

  /**
   * Why the state after `seq` (reached from `requestedTimeUs`, when the POINT was a time) is
   * suspect, or undefined when it is not.
   */
  suspectReason(seq: number, requestedTimeUs: number | undefined): string | undefined {
    for (const interval of this.suspectIntervals()) {
      const endSeq = interval.to?.seq ?? Infinity;
      const bySeq = seq >= interval.from.seq && seq < endSeq;
      const byTime = requestedTimeUs !== undefined && requestedTimeUs >= interval.from.timeUs &&
        (interval.to === undefined || requestedTimeUs < interval.to.timeUs);
      if (bySeq || byTime) {
        const end = interval.to === undefined
          ? "no resync has repaired it yet"
          : `resync repaired it at seq:${interval.to.seq} (${formatTimeUs(interval.to.timeUs)})`;
        return `inside the suspect interval after the gap at seq:${interval.from.seq} (${interval.reason}); ${end}`;
      }
    }
    return undefined;
  }
}

function numberDetail(marker: TimelineMarker, key: string): number | undefined {
  const value = marker.detail[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function reasonOf(marker: TimelineMarker): string {
  const reason = marker.detail.reason;
  return typeof reason === "string" ? reason : "writes missed";
}
