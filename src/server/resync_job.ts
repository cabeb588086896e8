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
 * In one process (`serve`) each piece is compared first with the appliance's image at the
 * seq it was read at (DESIGN.md "Resync": only true mismatches move — after a switch restart
 * or a resumed restore most dirty regions already match). `anytime switch` moves every dirty
 * region whole: comparing over the link (HASH_REQUEST/HASH_REPLY) is the next step.
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
  const appliance = deps.appliance;
  let scratch = new Uint8Array(0);
  const result = await splitter.resync({
    full: request.full,
    cancelled: () => cancelled,
    // In one process the appliance's image is at hand: a piece that already matches moves nothing.
    compare: appliance === undefined ? undefined : async (offsetBytes, primary, atSeq) => {
      const volume = appliance.volume(request.volume);
      while (volume.head.seq < atSeq) await deps.clock.sleep(1);
      if (scratch.length < primary.length) scratch = new Uint8Array(primary.length);
      const image = volume.openImage(`seq:${atSeq}`);
      try {
        const journaled = scratch.subarray(0, primary.length);
        await image.read(offsetBytes, journaled);
        return equalBytes(journaled, primary);
      } finally {
        await image.close();
      }
    },
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
