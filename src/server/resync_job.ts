/**
 * A resync job on the process that runs the switch (`serve`, `switch`): after a gap (marking
 * mode, a switch restart, a cancelled restore) the journal lacks writes the primary has; the
 * splitter journals the primary's content of every dirty region as fix-up records between
 * `fixupStart` and `fixupEnd` markers (`full`: every region, the re-baseline), and once the
 * appliance holds the fix-up end the volume is in sync again — the DRL's resets resume and
 * the suspect interval closes at the fix-up end (seed 003 [0049]-[0053], seed 002; SPEC
 * guarantee 3). Host writes go on meanwhile: each region is read with them held back for a
 * moment.
 *
 * Each piece is compared first with the appliance's image at the seq it was read at
 * (DESIGN.md "Resync": only true mismatches move — after a switch restart or a resumed
 * restore most dirty regions already match): in one process (`serve`) byte for byte; with
 * `anytime switch` by one XXH64 of the piece each side (HASH_REQUEST/HASH_REPLY); when the
 * appliance cannot answer, the piece moves.
 *
 * @module
 */
import { ConflictError } from "../api/control_plane.ts";
import type { Appliance } from "../appliance/appliance.ts";
import type { Clock } from "../io/clock.ts";
import type { JobHandle, JobOutcome } from "./jobs.ts";
import type { SwitchNode } from "./switch_node.ts";

/** What a resync needs. */
export interface ResyncDeps {
  readonly clock: Clock;
  readonly switchNode: SwitchNode;
  /** In `serve`: the job ends once the appliance has indexed the fix-up end too. */
  readonly appliance?: Appliance;
  readonly log?: (line: string) => void;
}

/** Runs the job; calls `ready` once it is accepted. */
export async function resyncLocally(
  deps: ResyncDeps,
  handle: JobHandle,
  ready: () => void,
  request: { volume: string; full: boolean },
): Promise<JobOutcome> {
  const splitter = deps.switchNode.splitter(request.volume);
  if (splitter.resyncing || splitter.restoring) {
    throw new ConflictError(`Volume "${request.volume}" is ${splitter.resyncing ? "resyncing" : "being restored"} already`);
  }
  if (splitter.state !== "protecting") {
    throw new ConflictError(
      `Cannot resync volume "${request.volume}" while it is ${splitter.state}: the link must be up and the copy buffer have room`,
    );
  }
  let cancelled = false;
  handle.onCancel(() => (cancelled = true));
  const regionBytes = splitter.regionBytes;
  const regionsTotal = request.full ? Math.ceil(splitter.sizeBytes / regionBytes) : splitter.dirtyRegionCount;
  handle.report({ bytesMoved: 0, bytesTotal: Math.min(regionsTotal * regionBytes, splitter.sizeBytes) });
  ready();
  deps.log?.(`Volume ${request.volume}: ${request.full ? "re-baseline" : "resync"} of ${regionsTotal} regions`);
  const result = await splitter.resync({
    full: request.full,
    cancelled: () => cancelled,
    compare: comparer(deps, request.volume),
    onProgress: (progress) =>
      handle.report({ bytesMoved: progress.bytesMoved, bytesTotal: Math.min(progress.regionsTotal * regionBytes, splitter.sizeBytes) }),
  });
  if (result.cancelled) {
    deps.log?.(`Volume ${request.volume}: resync cancelled; its suspect interval stays open until a resync completes`);
    return "cancelled";
  }
  handle.report({ bytesMoved: result.bytesMoved, bytesTotal: result.bytesMoved });
  await deps.switchNode.waitAcknowledged(request.volume, result.fixupEndSeq);
  splitter.finishResync();
  if (deps.appliance !== undefined) {
    const volume = deps.appliance.volume(request.volume);
    while (volume.head.seq < result.fixupEndSeq) await deps.clock.sleep(2);
  }
  deps.log?.(
    `Volume ${request.volume}: in sync again (${result.regions} regions, ${result.bytesMoved} bytes moved` +
      `${result.bytesMatched > 0 ? `, ${result.bytesMatched} bytes already matched` : ""})`,
  );
  return "done";
}

/**
 * How a piece is compared before it moves (a piece that already matches moves nothing): in
 * one process with the appliance's image at hand, byte for byte; apart, the appliance hashes
 * it (HASH_REQUEST) and the switch compares.
 */
function comparer(deps: ResyncDeps, volumeName: string): (offsetBytes: number, primary: Uint8Array, atSeq: number) => Promise<boolean> {
  const appliance = deps.appliance;
  if (appliance === undefined) {
    return (offsetBytes, primary, atSeq) => deps.switchNode.link.compareWithAppliance(volumeName, offsetBytes, primary, atSeq);
  }
  let scratch = new Uint8Array(0);
  return async (offsetBytes, primary, atSeq) => {
    const volume = appliance.volume(volumeName);
    while (volume.head.seq < atSeq) await deps.clock.sleep(1);
    if (scratch.length < primary.length) scratch = new Uint8Array(primary.length);
    const journaled = scratch.subarray(0, primary.length);
    const image = volume.openImage(`seq:${atSeq}`);
    try {
      await image.read(offsetBytes, journaled);
    } finally {
      await image.close();
    }
    return equalBytes(journaled, primary);
  };
}

/** Byte equality, four bytes at a time where both are aligned (pieces are whole sectors). */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 && a.length % 4 === 0) {
    const wordsA = new Int32Array(a.buffer, a.byteOffset, a.length / 4);
    const wordsB = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < wordsA.length; i++) if (wordsA[i] !== wordsB[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
