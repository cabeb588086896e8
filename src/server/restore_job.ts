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
 *    Regions the DRL holds dirty (a gap not yet resynced) join them whole: there the primary
 *    may differ from the journal.
 * 4. A {@link RestoreSession} holds the DRL over them (durably), then a `restore` marker
 *    (`{toSeq}`) enters the write stream: from it on, the journal's state is the point's,
 *    costing no data; writes after it are journaled after it as usual. The copy begins, and
 *    the restore checkpoint (`--state/VOL.restore`) keeps the chunks it has left.
 * 5. Host writes resume — through the session (instant: each I/O restores what it touches
 *    first) or refused until done. The background copy moves the rest.
 * 6. Cancelled or failed: a `gap` marker records the partial state (the images after it are
 *    suspect until resync), and the DRL keeps every region not restored dirty.
 * 7. Crashed (or stopped): the next start finds the checkpoint and resumes before hosts
 *    connect ({@link resumeLocalRestores}); what the crash lost of host writes is covered by
 *    the DRL and the resync that follows (the restart's gap).
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
import { RestoreSession, withDirtyRegions } from "../switch/restore_session.ts";
import type { Splitter } from "../switch/splitter.ts";
import type { JobHandle, JobOutcome, Jobs } from "./jobs.ts";
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
  const { report, point } = resolveRestorePoint({ appliance }, request);
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
    const differing = request.full === true
      ? [{ offsetBytes: 0, lengthBytes: volume.sizeBytes }]
      : volume.diff(`seq:${report.seq}`, `seq:${headSeq}`).extents;
    // Out of sync (a gap not yet resynced), the primary may differ from the journal where the DRL is dirty.
    const extents = splitter.needsResync ? withDirtyRegions(differing, splitter.dirtyRegionLog) : differing;
    const image = volume.openImage(`seq:${report.seq}`);
    try {
      session = await RestoreSession.hold(
        { primary: switchNode.primary(request.volume), drl: splitter.dirtyRegionLog, source: image },
        { extents },
      );
    } catch (error) {
      image.close();
      throw error;
    }
    try {
      markerSeq = splitter.recordMarker("restore", {
        toSeq: report.seq,
        toTime: point.time,
        fromSeq: headSeq,
        instant: request.instant,
        full: request.full === true,
        bytes: session.bytesTotal,
      });
    } catch (error) {
      image.close();
      session.abandon(error); // nothing moved; its DRL holds stay until resync
      throw error;
    }
    // From here a crash resumes the copy (the checkpoint, written as it starts).
    const checkpoint = switchNode.restoreCheckpoint(request.volume);
    session.begin(
      checkpoint === null ? null : {
        checkpoint,
        record: { toSeq: report.seq, toTimeUs: report.timeUs, markerSeq, instant: request.instant, requestId: 0 },
      },
    );
    void session.finished.then(() => image.close());
    splitter.attachRestore(session, { instant: request.instant });
  } finally {
    splitter.resumeHostWrites();
  }
  deps.log?.(
    `Volume ${request.volume}: restoring to seq:${report.seq} (${point.time}), ${session.bytesTotal} bytes to move, ` +
      `restore marker seq:${markerSeq}${request.instant ? ", instant" : ""}`,
  );
  await session.checkpointWritten; // the job is accepted once a crash would resume it; hosts go on meanwhile
  return await followLocalRestore(deps, handle, ready, { splitter, session, toSeq: report.seq, markerSeq, awaitMarker: true });
}

/**
 * Resumes the restores a crash (or a stop) left in the volumes' checkpoints, each as a job,
 * before hosts connect: the session is attached to the splitter when this resolves. A restore
 * that cannot resume (its point no longer retained, say) is ended: the checkpoint is cleared
 * and the partial state is left to the resync the restart's gap calls for, loudly.
 */
export async function resumeLocalRestores(deps: LocalRestoreDeps, jobs: Jobs): Promise<void> {
  for (const name of deps.switchNode.splitters.keys()) {
    const checkpoint = deps.switchNode.restoreCheckpoint(name);
    const record = checkpoint?.active ?? null;
    if (checkpoint === null || record === null) continue;
    try {
      await jobs.start({ kind: "restore", volume: name }, async (handle, ready) => {
        const splitter = deps.switchNode.splitter(name);
        const image = deps.appliance.volume(name).openImage(`seq:${record.toSeq}`);
        handle.setPoint({ seq: record.toSeq, time: formatTimeUs(record.toTimeUs), landedOn: "restore" });
        let session: RestoreSession;
        try {
          session = await RestoreSession.resume(
            { primary: deps.switchNode.primary(name), drl: splitter.dirtyRegionLog, source: image },
            checkpoint,
          );
        } catch (error) {
          image.close();
          throw error;
        }
        void session.finished.then(() => image.close());
        splitter.attachRestore(session, { instant: record.instant });
        deps.log?.(
          `Volume ${name}: resuming the restore to seq:${record.toSeq} (restore marker seq:${record.markerSeq}), ` +
            `${session.bytesTotal} bytes left${record.instant ? ", instant" : ""}`,
        );
        // The marker was durable before the checkpoint was written: nothing to wait for.
        return await followLocalRestore(deps, handle, ready, {
          splitter,
          session,
          toSeq: record.toSeq,
          markerSeq: record.markerSeq,
          awaitMarker: false,
        });
      });
    } catch (error) {
      deps.log?.(
        `Volume ${name}: cannot resume the restore to seq:${record.toSeq}: ${(error as Error).message}; ` +
          `the primary keeps its partial state, which the resync after the restart journals`,
      );
      await checkpoint.clear().catch((clearError) =>
        deps.log?.(`Volume ${name}: cannot clear the restore checkpoint: ${(clearError as Error).message}`)
      );
    }
  }
}

/** Steps 5-6: reports progress until the session ends, then records how it ended. */
async function followLocalRestore(
  deps: LocalRestoreDeps,
  handle: JobHandle,
  ready: () => void,
  restore: { splitter: Splitter; session: RestoreSession; toSeq: number; markerSeq: number; awaitMarker: boolean },
): Promise<JobOutcome> {
  const { splitter, session, toSeq, markerSeq } = restore;
  const name = splitter.name;
  handle.onCancel(() => (handle.stopping ? session.suspend() : session.cancel()));
  handle.report({ bytesMoved: 0, bytesTotal: session.bytesTotal });
  ready();

  while (session.state === "running") {
    await Promise.race([session.finished, deps.clock.sleep(progressIntervalMs)]);
    handle.report({ bytesMoved: session.bytesDone, bytesTotal: session.bytesTotal });
  }
  splitter.detachRestore();
  if (session.checkpointError !== undefined) {
    deps.log?.(`Volume ${name}: cannot clear the restore checkpoint: ${(session.checkpointError as Error).message}`);
  }
  if (session.state === "done") {
    if (restore.awaitMarker) await deps.switchNode.waitAcknowledged(name, markerSeq);
    deps.log?.(`Volume ${name}: restored to seq:${toSeq}, ${session.bytesDone} bytes moved`);
    return "done";
  }
  if (session.state === "suspended") {
    deps.log?.(`Volume ${name}: restore suspended after ${session.bytesDone} of ${session.bytesTotal} bytes (stopping); it resumes at the next start`);
    return "cancelled";
  }
  // A partial state: recorded, never silent.
  const reason = session.state === "cancelled" ? "restore cancelled" : "restore failed";
  recordGap(deps, splitter, { reason, restoreSeq: markerSeq, bytesMoved: session.bytesDone, bytesTotal: session.bytesTotal });
  deps.log?.(`Volume ${name}: ${reason} after ${session.bytesDone} of ${session.bytesTotal} bytes; resync will repair the rest`);
  if (session.state === "cancelled") return "cancelled";
  throw session.error instanceof Error ? session.error : new Error(String(session.error));
}

/** A gap marker for a restore's partial state (in marking mode the splitter records its own gap). */
function recordGap(
  deps: LocalRestoreDeps,
  splitter: Splitter,
  detail: { reason: string; restoreSeq: number; bytesMoved: number; bytesTotal: number },
): void {
  try {
    splitter.recordMarker("gap", detail);
  } catch (error) {
    deps.log?.(`Volume ${splitter.name}: cannot record the gap of the ${detail.reason}: ${(error as Error).message}`);
  }
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
  deps: { readonly appliance: Appliance },
  request: RestoreRequest,
): { report: PointReport; point: ResolvedPointJson } {
  const volume = deps.appliance.volume(request.volume);
  const parsed = parsePoint(request.at);
  const report = volume.resolvePoint(parsed);
  const suspect = volume.suspectReason(report);
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
