/**
 * A restore job where the switch and the appliance share a process (`anytime serve`): puts
 * a volume's primary back to a POINT (SPEC `anytime restore`, issue "Restore"), moving only
 * the extents that differ, with the host able to keep using the volume (`instant`).
 *
 * The order of events is what makes it exact:
 * 1. The point is resolved and checked: outside the retained range, in a gap or a suspect
 *    interval (unless `force`) → refused with the nearest good points in the message.
 * 2. Host writes pause; the writes in flight finish and reach the journal, so the journal
 *    head (seq H) is exactly the primary.
 * 3. The extents that differ between H and the point come from the maps (`volume.diff`) —
 *    or the whole volume with `full`.
 * 4. A {@link RestoreSession} holds the DRL over them (durably), then a `restore` marker
 *    (`{toSeq}`) enters the write stream: from it on, the journal's state is the point's,
 *    costing no data; writes after it are journaled after it as usual.
 * 5. Host writes resume — through the session (instant: each I/O restores what it touches
 *    first) or refused until done. The background copy moves the rest.
 * 6. Cancelled or failed: a `gap` marker records the partial state (the images after it are
 *    suspect until resync), and the DRL keeps every region not restored dirty.
 *
 * @module
 */
import type { Appliance } from "../appliance/appliance.ts";
import type { PointReport } from "../appliance/volume.ts";
import { PointUnavailableError } from "../appliance/errors.ts";
import { ConflictError, type ResolvedPointJson, UnavailableError } from "../api/control_plane.ts";
import { serverLimits } from "../core/limits.ts";
import { parsePoint } from "../core/point.ts";
import { formatTimeUs } from "../core/units.ts";
import type { Clock } from "../io/clock.ts";
import { RestoreSession } from "../switch/restore_session.ts";
import type { JobHandle, JobOutcome } from "./jobs.ts";
import type { SwitchNode } from "./switch_node.ts";

/** What a local restore needs. */
export interface LocalRestoreDeps {
  readonly clock: Clock;
  readonly appliance: Appliance;
  readonly switchNode: SwitchNode;
  readonly log?: (line: string) => void;
}

/** A restore request (SPEC `POST /v1/volumes/:vol/restore`). */
export interface RestoreRequest {
  readonly volume: string;
  readonly at: string;
  readonly instant: boolean;
  readonly full?: boolean;
  readonly force?: boolean;
}

const progressIntervalMs = serverLimits.restoreProgressIntervalMs;
const drainPollMs = 2;

/** Runs the job; calls `ready` once the restore marker is in the stream (the point is fixed). */
export async function restoreLocally(
  deps: LocalRestoreDeps,
  handle: JobHandle,
  ready: () => void,
  request: RestoreRequest,
): Promise<JobOutcome> {
  const { appliance, switchNode, clock } = deps;
  const volume = appliance.volume(request.volume);
  const splitter = switchNode.splitter(request.volume);
  if (splitter.restoring) throw new ConflictError(`Volume "${request.volume}" is being restored already`);
  if (splitter.resyncing) throw new ConflictError(`Volume "${request.volume}" is resyncing: restore it once the resync ends`);
  if (splitter.state !== "protecting") {
    throw new UnavailableError(`Cannot restore volume "${request.volume}" while it is ${splitter.state}: resync it first`);
  }
  const { report, point } = resolveRestorePoint({ clock, appliance }, request);
  handle.setPoint(point);

  // 2-5: fix the point while nothing moves.
  let session: RestoreSession;
  let markerSeq: number;
  splitter.pauseHostWrites();
  try {
    while (splitter.inFlightWriteCount > 0) await clock.sleep(drainPollMs);
    const lastSeq = splitter.nextSeq - 1;
    await switchNode.waitAcknowledged(request.volume, lastSeq);
    while (volume.head.seq < lastSeq) await clock.sleep(drainPollMs);
    const headSeq = volume.head.seq;
    const extents = request.full === true
      ? [{ offsetBytes: 0, lengthBytes: volume.sizeBytes }]
      : volume.diff(`seq:${report.seq}`, `seq:${headSeq}`).extents;
    const image = volume.openImage(`seq:${report.seq}`);
    session = await RestoreSession.start(
      { primary: switchNode.primary(request.volume), drl: splitter.dirtyRegionLog, source: image },
      { extents },
    );
    markerSeq = splitter.recordMarker("restore", {
      toSeq: report.seq,
      toTime: point.time,
      fromSeq: headSeq,
      instant: request.instant,
      full: request.full === true,
      bytes: session.bytesTotal,
    });
    splitter.attachRestore(session, { instant: request.instant });
    void session.finished.then(() => image.close());
  } finally {
    splitter.resumeHostWrites();
  }
  deps.log?.(
    `Volume ${request.volume}: restoring to seq:${report.seq} (${point.time}), ${session.bytesTotal} bytes to move, ` +
      `restore marker seq:${markerSeq}${request.instant ? ", instant" : ""}`,
  );
  handle.onCancel(() => session.cancel());
  handle.report({ bytesMoved: 0, bytesTotal: session.bytesTotal });
  ready();

  while (session.state === "running") {
    await Promise.race([session.finished, clock.sleep(progressIntervalMs)]);
    handle.report({ bytesMoved: session.bytesDone, bytesTotal: session.bytesTotal });
  }
  splitter.detachRestore();
  if (session.state === "done") {
    await switchNode.waitAcknowledged(request.volume, markerSeq);
    deps.log?.(`Volume ${request.volume}: restored to seq:${report.seq}, ${session.bytesDone} bytes moved`);
    return "done";
  }
  // A partial state: recorded, never silent.
  const reason = session.state === "cancelled" ? "restore cancelled" : "restore failed";
  splitter.recordMarker("gap", { reason, restoreSeq: markerSeq, bytesMoved: session.bytesDone, bytesTotal: session.bytesTotal });
  deps.log?.(`Volume ${request.volume}: ${reason} after ${session.bytesDone} of ${session.bytesTotal} bytes; resync will repair the rest`);
  if (session.state === "cancelled") return "cancelled";
  throw session.error instanceof Error ? session.error : new Error(String(session.error));
}

/**
 * Step 1 of a restore, shared by the one-process job and the one through a switch in another
 * process (`remote_restore.ts`): resolves the point and refuses one outside the retained range
 * or (unless `force`) in a gap or a suspect interval, naming the nearest good points.
 *
 * @throws {SyntaxError} for a malformed POINT.
 * @throws {PointUnavailableError} for a point outside what is retained, or a suspect one.
 */
export function resolveRestorePoint(
  deps: { readonly clock: Clock; readonly appliance: Appliance },
  request: RestoreRequest,
): { report: PointReport; point: ResolvedPointJson } {
  const volume = deps.appliance.volume(request.volume);
  const parsed = parsePoint(request.at);
  const report = volume.resolvePoint(parsed);
  const nowUs = deps.clock.nowUs();
  const requestedTimeUs = parsed.kind === "time" ? parsed.timeUs : parsed.kind === "relative" ? nowUs - parsed.agoUs : undefined;
  const suspect = volume.suspectReason(report, requestedTimeUs);
  if (suspect !== undefined && request.force !== true) {
    throw new PointUnavailableError(
      `Cannot restore volume "${request.volume}" to seq:${report.seq}: it is ${suspect}. ${nearestGoodPoints(deps, request.volume)} ` +
        `(or pass force to restore to it anyway)`,
      { from: `seq:${volume.window().from.seq}`, to: `seq:${volume.window().to.seq}` },
    );
  }
  return { report, point: { seq: report.seq, time: formatTimeUs(report.timeUs), landedOn: report.landedOn } };
}

/** The nearest points that are not suspect, as text for a refusal. */
function nearestGoodPoints(deps: { readonly appliance: Appliance }, volumeName: string): string {
  const volume = deps.appliance.volume(volumeName);
  const options: string[] = [];
  for (const interval of volume.suspectIntervals()) {
    if (interval.from.seq > 0) options.push(`seq:${interval.from.seq - 1} (before the gap)`);
    if (interval.to !== undefined) options.push(`seq:${interval.to.seq} (after resync repaired it)`);
  }
  return options.length > 0 ? `Nearest good points: ${options.join(", ")}` : "No good point is near";
}
