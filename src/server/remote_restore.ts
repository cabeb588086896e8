/**
 * A restore job on the appliance when the switch runs in another process (`anytime appliance`
 * + `anytime switch`; SPEC `POST /v1/volumes/:vol/restore`): the appliance resolves and checks
 * the point exactly as in one process ({@link resolveRestorePoint}), then the switch does the
 * copy (`src/switch/remote_restore.ts`) reading this appliance's image at the point over the
 * link, and the job reports what the switch reports: bytes moved, rate, the exact point, and
 * the end (`done`, `failed` with the switch's reason, `cancelled`). `DELETE /v1/jobs/:id`
 * sends RESTORE_CANCEL.
 *
 * A link that drops mid-restore is the switch's to recover (its reads wait for the link and
 * are asked again; nothing starts over); the job keeps its state meanwhile and fails only when
 * the switch has said nothing about the restore for `serverLimits.remoteRestoreSilenceMsMax`
 * (it crashed, or its link never came back): then the volume needs resync, since the primary
 * may hold part of the point.
 *
 * @example
 * ```ts
 * // await jobs.start({ kind: "restore", volume: "db" }, (handle, ready) =>
 * //   restoreRemotely({ clock, appliance, applianceLink }, handle, ready, { volume: "db", at: "snap:good", instant: true }));
 * ```
 *
 * @module
 */
import type { Appliance } from "../appliance/appliance.ts";
import { type ApplianceLink, type RemoteRestore, SwitchUnavailableError } from "../appliance/appliance_link.ts";
import { UnavailableError } from "../api/control_plane.ts";
import { serverLimits } from "../core/limits.ts";
import type { Clock } from "../io/clock.ts";
import { formatTimeUs } from "../core/units.ts";
import type { JobHandle, JobOutcome, Jobs } from "./jobs.ts";
import { resolveRestorePoint, type RestoreRequest } from "./restore_job.ts";

/** What a restore through the switch needs. */
export interface RemoteRestoreDeps {
  readonly clock: Clock;
  readonly appliance: Appliance;
  readonly applianceLink: ApplianceLink;
  readonly log?: (line: string) => void;
  /** Default `serverLimits.remoteRestoreSilenceMsMax`. */
  readonly silenceMsMax?: number;
}

/** Runs the job; calls `ready` once the switch reported the restore marker in its stream. */
export async function restoreRemotely(
  deps: RemoteRestoreDeps,
  handle: JobHandle,
  ready: () => void,
  request: RestoreRequest,
): Promise<JobOutcome> {
  const { report, point } = resolveRestorePoint(deps, request);
  handle.setPoint(point);
  const remote = throughSwitch(() =>
    deps.applianceLink.startRestore(request.volume, {
      toSeq: report.seq,
      toTimeUs: report.timeUs,
      instant: request.instant,
      full: request.full === true,
    })
  );
  return await followRemoteRestore(deps, handle, ready, remote, `${point.time}`);
}

/**
 * Makes a job of a restore the switch reports that this process did not start (it restarted
 * while the switch kept copying): the job follows it from here, as {@link restoreRemotely} does.
 */
export function adoptRemoteRestore(deps: RemoteRestoreDeps, jobs: Jobs, remote: RemoteRestore): void {
  const time = formatTimeUs(remote.request.toTimeUs);
  jobs.start({ kind: "restore", volume: remote.volume.name }, (handle, ready) => {
    handle.setPoint({ seq: remote.request.toSeq, time, landedOn: "restore" });
    return followRemoteRestore(deps, handle, ready, remote, `${time}, started before this process`);
  }).catch((error) => deps.log?.(`Volume ${remote.volume.name}: cannot follow the switch's restore: ${(error as Error).message}`));
}

/** Reports what the switch reports until the restore ends; `ready` once it started. */
async function followRemoteRestore(
  deps: RemoteRestoreDeps,
  handle: JobHandle,
  ready: () => void,
  remote: RemoteRestore,
  pointText: string,
): Promise<JobOutcome> {
  const { clock } = deps;
  const request = { volume: remote.volume.name, ...remote.request };
  const silenceMsMax = deps.silenceMsMax ?? serverLimits.remoteRestoreSilenceMsMax;
  const started = await untilSilent(deps, remote, remote.started, silenceMsMax);
  handle.report({ bytesMoved: 0, bytesTotal: started.bytesTotal });
  handle.onCancel(() => remote.cancel());
  deps.log?.(
    `Volume ${request.volume}: the switch restores it to seq:${request.toSeq} (${pointText}), ${started.bytesTotal} bytes to move, ` +
      `restore marker seq:${started.markerSeq}${request.instant ? ", instant" : ""}`,
  );
  ready();

  const end = await untilSilent(deps, remote, remote.finished, silenceMsMax, () =>
    handle.report({ bytesMoved: remote.bytesMoved, bytesTotal: started.bytesTotal }));
  handle.report({ bytesMoved: end.bytesMoved, bytesTotal: started.bytesTotal });
  if (end.state === "done") {
    // The head image is the point's (plus host writes after it) once the marker is applied here.
    const volume = deps.appliance.volume(request.volume);
    const deadlineUs = clock.nowUs() + silenceMsMax * 1000;
    while (volume.head.seq < started.markerSeq) {
      if (clock.nowUs() > deadlineUs) {
        throw new UnavailableError(
          `The switch restored volume "${request.volume}", but its restore marker (seq ${started.markerSeq}) is not durable here yet`,
        );
      }
      await clock.sleep(serverLimits.acknowledgePollMs);
    }
    deps.log?.(`Volume ${request.volume}: restored to seq:${request.toSeq}, ${end.bytesMoved} bytes moved`);
    return "done";
  }
  if (end.state === "cancelled") return "cancelled";
  throw new Error(`The switch's restore of volume "${request.volume}" failed: ${end.message ?? "no reason given"}`);
}

/**
 * `work`, sampled every `serverLimits.restoreProgressIntervalMs` (`onSample`), or an
 * {@link UnavailableError} once the switch has said nothing about the restore for `silenceMsMax`.
 */
async function untilSilent<T>(
  deps: RemoteRestoreDeps,
  remote: RemoteRestore,
  work: Promise<T>,
  silenceMsMax: number,
  onSample?: () => void,
): Promise<T> {
  let settled = false;
  const watched = work.finally(() => {
    settled = true;
  });
  for (;;) {
    await Promise.race([watched.catch(() => {}), deps.clock.sleep(serverLimits.restoreProgressIntervalMs)]);
    if (settled) return await throughSwitchAsync(watched);
    onSample?.();
    const silentMs = (deps.clock.nowUs() - remote.lastHeardUs) / 1000;
    if (silentMs > silenceMsMax) {
      const error = new UnavailableError(
        `The switch has said nothing about the restore of volume "${remote.volume.name}" for ${Math.round(silentMs)} ms ` +
          `(it stopped, or its link did not come back); the primary may be partly restored: resync the volume`,
      );
      remote.abandon(error);
      throw error;
    }
  }
}

function throughSwitch<T>(start: () => T): T {
  try {
    return start();
  } catch (error) {
    if (!(error instanceof SwitchUnavailableError)) throw error;
    throw new UnavailableError(error.message, { cause: error });
  }
}

async function throughSwitchAsync<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (!(error instanceof SwitchUnavailableError)) throw error;
    throw new UnavailableError(error.message, { cause: error });
  }
}
