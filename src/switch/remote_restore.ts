/**
 * Restores the appliance asks a switch in another process for (SPEC `anytime restore` with
 * `anytime appliance` and `anytime switch` apart; seed 003 [0074]-[0076]): the switch side of
 * the RESTORE_* messages. The appliance resolved and checked the point; here the order of the
 * one-process restore (`src/server/restore_job.ts`) is kept, over the link:
 *
 * 1. RESTORE_REQUEST `{requestId, volume, toSeq, ...}` → refused at once (RESTORE_REFUSED) when
 *    the volume is not here, marking, already restoring, or the table is full.
 * 2. Host writes pause; the writes in flight finish and the appliance acknowledges every seq
 *    through H; RESTORE_PLAN_REQUEST `{headSeq: H}` asks for what differs between H and the
 *    point, which arrives as RESTORE_PLAN frames (at most `wireLimits.restorePlanExtentsMax`
 *    extents in all).
 * 3. A {@link RestoreSession} holds the DRL over the plan, the restore marker enters the write
 *    stream, the session is attached to the splitter (instant or not), host writes resume, and
 *    RESTORE_STARTED `{markerSeq, bytesTotal}` goes back. A failure before the marker changes
 *    nothing and is a RESTORE_REFUSED.
 * 4. The session's {@link RestoreSource} reads the appliance's image at the target seq with
 *    READ_REQUEST `{atSeq}` → READ_REPLY (at most `switchLimits.remoteRestoreReadsInFlightMax`
 *    per restore, `wireLimits.readRequestsInFlightMax` per link).
 * 5. RESTORE_PROGRESS every `switchLimits.remoteRestoreProgressIntervalMs` and once at the
 *    end; RESTORE_CANCEL stops the copy between chunks; a cancelled or failed session leaves a
 *    gap marker (as in one process).
 *
 * A lost link is resumed, never restarted: reads in flight are asked again on the next
 * connection (each waits at most `switchLimits.remoteRestoreReconnectWaitMs` for it and is
 * tried at most `remoteRestoreReadAttemptsMax` times), the session keeps every chunk it has
 * done, and each reconnect repeats RESTORE_STARTED for the restores running (the appliance
 * takes it again, so a lost one costs nothing) before progress goes on. An end report that
 * could not be sent is kept (one per restore, bounded by the table) and sent on the next
 * connection. A restore whose plan did not arrive before the link went down changes nothing and
 * is refused on the next connection.
 *
 * @example
 * ```ts
 * // const restores = new SwitchRestores({ clock, splitters, primary: (name) => node.primary(name) });
 * // link.setRestores(restores); // the link hands it RESTORE_* and READ_REPLY messages
 * ```
 *
 * @module
 */
import { assert } from "../core/assert.ts";
import { switchLimits, wireLimits } from "../core/limits.ts";
import { formatTimeUs } from "../core/units.ts";
import type { BlockDevice } from "../io/block_device.ts";
import type { Clock } from "../io/clock.ts";
import { ConnectionClosedError } from "../io/transport.ts";
import type { FramedConnection } from "../wire/framed_connection.ts";
import {
  decodeRestoreExtents,
  fitWireText,
  type Message,
  messageKinds,
  type PlanExtent,
  type RestoreProgressBody,
  type RestoreRefusedBody,
  type RestoreRequestBody,
  type RestoreStartedBody,
} from "../wire/messages.ts";
import type { RestoreCheckpoint } from "./restore_checkpoint.ts";
import { RestoreSession, type RestoreSource, withDirtyRegions } from "./restore_session.ts";
import type { Splitter } from "./splitter.ts";

/** What {@link SwitchRestores} needs. */
export interface SwitchRestoresDeps {
  readonly clock: Clock;
  readonly splitters: ReadonlyMap<string, Splitter>;
  /** The primary of a volume (restored data is written directly: it is not a host write). */
  primary(volumeName: string): BlockDevice;
  /** Where a volume's restore keeps what it has left, so it resumes after a crash of the switch ({@link SwitchRestores.resume}). */
  checkpoint?(volumeName: string): RestoreCheckpoint | null;
  readonly log?: (line: string) => void;
}

/** A remote restore's read could not be answered: the link did not come back in time, or the appliance did not answer. */
export class RemoteRestoreError extends Error {
  override name = "RemoteRestoreError";
}

/** The connection a read went out on ended: ask again on the next one. */
class LinkLostError extends Error {
  override name = "LinkLostError";
}

/** Waits on the clock take steps of at most this long, so a wait that ends early leaves no long timer behind. */
const waitStepMs = 1_000;
const drainPollMs = 2;

type Phase = "starting" | "running" | "ended";

interface SwitchRestore {
  readonly request: RestoreRequestBody;
  phase: Phase;
  /** The plan as it arrives (bounded by `wireLimits.restorePlanExtentsMax`). */
  readonly plan: PlanExtent[];
  /** Settles the plan wait: true when the last frame came, an error when it cannot come. */
  planWaiter: ((outcome: true | Error) => void) | null;
  session: RestoreSession | null;
  started: RestoreStartedBody | null;
  /** The end report not yet handed to a connection. */
  final: RestoreProgressBody | RestoreRefusedBody | null;
  cancelRequested: boolean;
  sendingProgress: boolean;
  readonly reads: Window;
}

interface PendingRead {
  readonly target: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** A counting window: at most `size` holders; the others wait in order. */
class Window {
  readonly #size: number;
  #held = 0;
  readonly #waiters: (() => void)[] = [];
  constructor(size: number) {
    this.#size = size;
  }
  async acquire(): Promise<void> {
    if (this.#held < this.#size) {
      this.#held++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next(); // the slot passes on
    else this.#held--;
  }
}

/** See the module doc. */
export class SwitchRestores {
  readonly #deps: SwitchRestoresDeps;
  readonly #log: (line: string) => void;
  /** By the appliance's request id; at most `switchLimits.remoteRestoresMax`. */
  readonly #restores = new Map<number, SwitchRestore>();
  /** By this side's READ_REQUEST id; at most `wireLimits.readRequestsInFlightMax`. */
  readonly #reads = new Map<number, PendingRead>();
  readonly #linkReads = new Window(wireLimits.readRequestsInFlightMax);
  #nextReadId = 0;
  #framed: FramedConnection | null = null;
  readonly #connectionWaiters = new Set<() => void>();

  constructor(deps: SwitchRestoresDeps) {
    this.#deps = deps;
    this.#log = deps.log ?? (() => {});
  }

  /** Restores in the table (starting, running, or with an end report to deliver). */
  get count(): number {
    return this.#restores.size;
  }

  /** The link reached streaming on `framed`: restores running announce themselves again, end reports go out. */
  connected(framed: FramedConnection): void {
    this.#framed = framed;
    for (const wake of [...this.#connectionWaiters]) wake();
    for (const restore of this.#restores.values()) {
      const started = restore.started;
      if (restore.phase === "running" && started !== null) {
        void this.#sendIfConnected((live) => live.send(messageKinds.restoreStarted, started));
      }
      if (restore.phase === "ended") this.#deliverFinal(restore);
    }
  }

  /** The connection ended: reads in flight are asked again on the next one; plans being received are abandoned. */
  disconnected(framed: FramedConnection): void {
    if (this.#framed !== framed) return;
    this.#framed = null;
    const lost = [...this.#reads.values()];
    this.#reads.clear();
    for (const read of lost) read.reject(new LinkLostError("The link to the appliance ended"));
    for (const restore of this.#restores.values()) {
      restore.planWaiter?.(new RemoteRestoreError("the link to the appliance ended before the whole plan arrived"));
    }
  }

  /**
   * Takes a RESTORE_REQUEST, RESTORE_PLAN, RESTORE_CANCEL or READ_REPLY; returns a problem
   * that ends the session (a peer breaking the protocol), or `null`.
   */
  handle(message: Message): string | null {
    switch (message.kind) {
      case messageKinds.restoreRequest:
        void this.#run(message.body);
        return null;
      case messageKinds.restorePlan: {
        const restore = this.#restores.get(message.body.requestId);
        if (restore === undefined || restore.planWaiter === null) {
          return `Cannot take a RESTORE_PLAN for restore ${message.body.requestId}: it asked for none`;
        }
        const extents = decodeRestoreExtents(message.body.extents);
        if (restore.plan.length + extents.length > wireLimits.restorePlanExtentsMax) {
          return `Cannot take the plan of restore ${message.body.requestId}: over ${wireLimits.restorePlanExtentsMax} extents`;
        }
        for (const extent of extents) restore.plan.push(extent);
        if (message.body.last) restore.planWaiter(true);
        return null;
      }
      case messageKinds.restoreCancel: {
        const restore = this.#restores.get(message.body.requestId);
        if (restore === undefined) return null; // ended meanwhile: its end report says how
        restore.cancelRequested = true;
        restore.planWaiter?.(new RemoteRestoreError("it was cancelled before it started"));
        restore.session?.cancel();
        return null;
      }
      case messageKinds.readReply: {
        const read = this.#reads.get(message.body.requestId);
        if (read === undefined) {
          this.#log(`The appliance answered read ${message.body.requestId}, which nobody waits for now`);
          return null;
        }
        this.#reads.delete(message.body.requestId);
        if (message.body.error !== undefined) {
          read.reject(new RemoteRestoreError(`The appliance could not answer a read: ${message.body.error}`));
        } else if (message.payload.length !== read.target.length) {
          read.reject(new RemoteRestoreError(`The appliance answered a ${read.target.length}-byte read with ${message.payload.length} bytes`));
        } else {
          read.target.set(message.payload); // the payload is a view into received bytes: copy now
          read.resolve();
        }
        return null;
      }
      default:
        assert(false, `SwitchRestores takes no ${message.kind} message`);
    }
  }

  /**
   * Resumes the restores the volumes' checkpoints hold (a crash or a stop of the switch
   * interrupted them), before hosts connect: each session is attached to its splitter when this
   * resolves, and reads the appliance's image as soon as the link streams. The appliance hears
   * RESTORE_STARTED again on connecting, then progress and the end, as for any restore.
   */
  async resume(): Promise<void> {
    for (const [name, splitter] of this.#deps.splitters) {
      const checkpoint = this.#deps.checkpoint?.(name) ?? null;
      const record = checkpoint?.active ?? null;
      if (checkpoint === null || record === null) continue;
      const request: RestoreRequestBody = {
        requestId: record.requestId,
        volume: name,
        toSeq: record.toSeq,
        toTimeUs: record.toTimeUs,
        instant: record.instant,
        full: false,
      };
      const restore = newRestore(request, "running");
      const session = await RestoreSession.resume(
        { primary: this.#deps.primary(name), drl: splitter.dirtyRegionLog, source: this.#source(restore) },
        checkpoint,
      );
      splitter.attachRestore(session, { instant: record.instant });
      restore.session = session;
      restore.started = { requestId: request.requestId, markerSeq: record.markerSeq, bytesTotal: session.bytesTotal };
      this.#restores.set(request.requestId, restore);
      this.#log(
        `Volume ${name}: resuming the restore to seq:${record.toSeq} for the appliance (request ${request.requestId}, ` +
          `restore marker seq:${record.markerSeq}), ${session.bytesTotal} bytes left${record.instant ? ", instant" : ""}`,
      );
      void this.#copy(restore, splitter, session);
    }
  }

  /** Suspends every restore (the switch is stopping: each resumes at the next start) and waits until each session has ended. */
  async stop(): Promise<void> {
    const sessions: Promise<void>[] = [];
    for (const restore of this.#restores.values()) {
      restore.cancelRequested = true;
      restore.planWaiter?.(new RemoteRestoreError("the switch is stopping"));
      if (restore.session !== null) {
        restore.session.suspend();
        sessions.push(restore.session.finished);
      }
    }
    await Promise.all(sessions);
  }

  async #run(request: RestoreRequestBody): Promise<void> {
    if (this.#restores.has(request.requestId)) {
      this.#log(`The appliance repeated restore request ${request.requestId}; it is known already`);
      return;
    }
    const refused = this.#refusal(request);
    if (refused !== null) {
      this.#log(refused);
      await this.#sendIfConnected((framed) =>
        framed.send(messageKinds.restoreRefused, { requestId: request.requestId, refused: fitWireText(refused) })
      );
      return;
    }
    const restore = newRestore(request, "starting");
    this.#restores.set(request.requestId, restore);
    const splitter = this.#deps.splitters.get(request.volume)!;
    try {
      await this.#start(restore, splitter);
    } catch (error) {
      restore.phase = "ended";
      const reason = `Cannot restore volume "${request.volume}" to seq:${request.toSeq}: ${(error as Error).message}`;
      this.#log(reason);
      restore.final = { requestId: request.requestId, refused: fitWireText(reason) };
      this.#deliverFinal(restore);
      return;
    }
    await this.#copy(restore, splitter, restore.session!);
  }

  #refusal(request: RestoreRequestBody): string | null {
    const what = `Cannot restore volume "${request.volume}"`;
    const splitter = this.#deps.splitters.get(request.volume);
    if (splitter === undefined) return `${what}: this switch does not protect it`;
    if (splitter.resyncing) return `${what}: it is resyncing; restore it once the resync ends`;
    if (splitter.restoring || [...this.#restores.values()].some((r) => r.request.volume === request.volume && r.phase !== "ended")) {
      return `${what}: it is being restored already`;
    }
    if (splitter.state !== "protecting") return `${what} while it is ${splitter.state}: resync it first`;
    if (this.#restores.size >= switchLimits.remoteRestoresMax) {
      return `${what}: ${this.#restores.size} restores are in progress on this switch (the limit)`;
    }
    return null;
  }

  /** Steps 2-3 of the module doc; throws when the restore did not start (then nothing changed). */
  async #start(restore: SwitchRestore, splitter: Splitter): Promise<void> {
    const { request } = restore;
    const clock = this.#deps.clock;
    splitter.pauseHostWrites();
    try {
      const drainDeadlineUs = clock.nowUs() + switchLimits.remoteRestoreDrainWaitMs * 1000;
      while (splitter.inFlightWriteCount > 0 || splitter.acknowledgedSeq < splitter.nextSeq - 1) {
        if (restore.cancelRequested) throw new RemoteRestoreError("it was cancelled before it started");
        if (clock.nowUs() > drainDeadlineUs) {
          throw new RemoteRestoreError(
            `the appliance did not acknowledge seq ${splitter.nextSeq - 1} within ${switchLimits.remoteRestoreDrainWaitMs} ms`,
          );
        }
        await clock.sleep(drainPollMs);
      }
      const headSeq = splitter.nextSeq - 1;
      const planArrived = new Promise<true | Error>((resolve) => (restore.planWaiter = resolve));
      const framed = this.#framed;
      if (framed === null) throw new RemoteRestoreError("the link to the appliance is down");
      await guard(framed.send(messageKinds.restorePlanRequest, { requestId: request.requestId, headSeq }));
      const outcome = await this.#beforeDeadline(
        planArrived,
        switchLimits.remoteRestorePlanWaitMs,
        () => new RemoteRestoreError(`its plan did not arrive within ${switchLimits.remoteRestorePlanWaitMs} ms`),
      ).finally(() => (restore.planWaiter = null));
      if (outcome !== true) throw outcome;
      if (restore.cancelRequested) throw new RemoteRestoreError("it was cancelled before it started");
      assert(splitter.nextSeq - 1 === headSeq && splitter.inFlightWriteCount === 0, "Nothing moved while host writes were paused");
      // Out of sync (a gap not yet resynced), regions the DRL holds dirty are copied whole: there the primary may differ from the journal.
      const session = await RestoreSession.hold(
        { primary: this.#deps.primary(request.volume), drl: splitter.dirtyRegionLog, source: this.#source(restore) },
        { extents: splitter.needsResync ? withDirtyRegions(restore.plan, splitter.dirtyRegionLog) : restore.plan },
      );
      let markerSeq: number;
      try {
        markerSeq = splitter.recordMarker("restore", {
          toSeq: request.toSeq,
          toTime: formatTimeUs(request.toTimeUs),
          fromSeq: headSeq,
          instant: request.instant,
          full: request.full,
          bytes: session.bytesTotal,
        });
      } catch (error) {
        session.abandon(error); // nothing moved; its DRL holds stay until resync
        throw error;
      }
      // From here a crash resumes the copy (the checkpoint, written as it starts).
      const checkpoint = this.#deps.checkpoint?.(request.volume) ?? null;
      session.begin(
        checkpoint === null ? null : {
          checkpoint,
          record: { toSeq: request.toSeq, toTimeUs: request.toTimeUs, markerSeq, instant: request.instant, requestId: request.requestId },
        },
      );
      splitter.attachRestore(session, { instant: request.instant });
      restore.plan.length = 0; // the session holds its own pieces now
      restore.session = session;
      restore.started = { requestId: request.requestId, markerSeq, bytesTotal: session.bytesTotal };
      restore.phase = "running";
      this.#log(
        `Volume ${request.volume}: restoring to seq:${request.toSeq} for the appliance, ${session.bytesTotal} bytes to move, ` +
          `restore marker seq:${markerSeq}${request.instant ? ", instant" : ""}`,
      );
    } finally {
      splitter.resumeHostWrites();
    }
    const started = restore.started!;
    await restore.session?.checkpointWritten; // started once a crash would resume it
    await this.#sendIfConnected((framed) => framed.send(messageKinds.restoreStarted, started));
  }

  /** Steps 4-5: progress while the session copies, then the end report (and a gap marker unless done). */
  async #copy(restore: SwitchRestore, splitter: Splitter, session: RestoreSession): Promise<void> {
    const clock = this.#deps.clock;
    const requestId = restore.request.requestId;
    if (restore.cancelRequested) session.cancel();
    while (session.state === "running") {
      await Promise.race([session.finished, clock.sleep(switchLimits.remoteRestoreProgressIntervalMs)]);
      if (session.state === "running" && !restore.sendingProgress && this.#framed !== null) {
        restore.sendingProgress = true;
        const progress: RestoreProgressBody = { requestId, bytesMoved: session.bytesDone, state: "running" };
        void this.#sendIfConnected((framed) => framed.send(messageKinds.restoreProgress, progress))
          .finally(() => (restore.sendingProgress = false));
      }
    }
    splitter.detachRestore();
    const volume = restore.request.volume;
    if (session.checkpointError !== undefined) {
      this.#log(`Volume ${volume}: cannot clear the restore checkpoint: ${errorText(session.checkpointError)}`);
    }
    if (session.state === "suspended") {
      // The switch is stopping: no end report, no gap; the next start resumes and reports.
      this.#log(`Volume ${volume}: restore suspended after ${session.bytesDone} of ${session.bytesTotal} bytes (stopping); it resumes at the next start`);
      restore.phase = "ended";
      this.#restores.delete(restore.request.requestId);
      return;
    }
    let final: RestoreProgressBody;
    if (session.state === "done") {
      this.#log(`Volume ${volume}: restored to seq:${restore.request.toSeq}, ${session.bytesDone} bytes moved`);
      final = { requestId, bytesMoved: session.bytesDone, state: "done" };
    } else {
      const reason = session.state === "cancelled" ? "restore cancelled" : "restore failed";
      try {
        splitter.recordMarker("gap", {
          reason,
          restoreSeq: restore.started?.markerSeq ?? 0,
          bytesMoved: session.bytesDone,
          bytesTotal: session.bytesTotal,
        });
      } catch (error) {
        // Marking mode records its own gap; the DRL keeps every region not restored dirty.
        this.#log(`Volume ${volume}: cannot record the gap of the ${reason}: ${(error as Error).message}`);
      }
      this.#log(`Volume ${volume}: ${reason} after ${session.bytesDone} of ${session.bytesTotal} bytes; resync will repair the rest`);
      final = session.state === "cancelled"
        ? { requestId, bytesMoved: session.bytesDone, state: "cancelled" }
        : { requestId, bytesMoved: session.bytesDone, state: "failed", message: fitWireText(errorText(session.error)) };
    }
    restore.phase = "ended";
    restore.final = final;
    this.#deliverFinal(restore);
  }

  /** Sends the end report if connected (then forgets the restore), else keeps it for the next connection. */
  #deliverFinal(restore: SwitchRestore): void {
    const framed = this.#framed;
    const final = restore.final;
    if (framed === null || final === null) return;
    restore.final = null;
    const sent = "refused" in final
      ? framed.send(messageKinds.restoreRefused, final)
      : framed.send(messageKinds.restoreProgress, final);
    sent.then(
      () => this.#restores.delete(restore.request.requestId),
      () => {
        restore.final ??= final; // the next connection tries again
        if (this.#framed !== null && this.#framed !== framed) this.#deliverFinal(restore);
      },
    );
  }

  /** A RestoreSource reading the appliance's image at the target seq over the link. */
  #source(restore: SwitchRestore): RestoreSource {
    return {
      read: async (offsetBytes: number, target: Uint8Array): Promise<void> => {
        const pieces: Promise<void>[] = [];
        for (let at = 0; at < target.length; at += wireLimits.readBytesMax) {
          const piece = target.subarray(at, Math.min(target.length, at + wireLimits.readBytesMax));
          pieces.push(this.#read(restore, offsetBytes + at, piece));
        }
        await Promise.all(pieces);
      },
    };
  }

  /** One read, asked again on the next connection after a link loss (bounded). */
  async #read(restore: SwitchRestore, offsetBytes: number, target: Uint8Array): Promise<void> {
    await restore.reads.acquire();
    await this.#linkReads.acquire();
    try {
      let lostOn: FramedConnection | null = null;
      for (let attempt = 1;; attempt++) {
        const framed = await this.#connection(lostOn);
        try {
          return await this.#readOnce(framed, restore.request, offsetBytes, target);
        } catch (error) {
          if (!(error instanceof LinkLostError)) throw error;
          lostOn = framed;
          if (attempt >= switchLimits.remoteRestoreReadAttemptsMax) {
            throw new RemoteRestoreError(
              `Cannot read ${target.length} bytes at ${offsetBytes} of the image: the link was lost ${attempt} times`,
              { cause: error },
            );
          }
        }
      }
    } finally {
      this.#linkReads.release();
      restore.reads.release();
    }
  }

  async #readOnce(framed: FramedConnection, request: RestoreRequestBody, offsetBytes: number, target: Uint8Array): Promise<void> {
    const requestId = this.#nextReadId++;
    const answered = new Promise<void>((resolve, reject) => this.#reads.set(requestId, { target, resolve, reject }));
    // A link lost while the request is still being sent rejects `answered` before it is
    // awaited below (then the send's own failure is what this read reports).
    answered.catch(() => {});
    assert(this.#reads.size <= wireLimits.readRequestsInFlightMax, "Reads in flight stay inside the appliance's window");
    try {
      await guard(framed.send(messageKinds.readRequest, {
        requestId,
        volume: request.volume,
        offsetBytes,
        lengthBytes: target.length,
        atSeq: request.toSeq,
      }));
      await this.#beforeDeadline(
        answered,
        switchLimits.remoteRestoreReadTimeoutMs,
        () => new RemoteRestoreError(`The appliance did not answer a read within ${switchLimits.remoteRestoreReadTimeoutMs} ms`),
      );
    } finally {
      this.#reads.delete(requestId);
    }
  }

  /**
   * The live connection, waiting (bounded) for the link to come back — or, after a loss on
   * `lost`, for a connection other than it (the link may not have noticed the loss yet).
   */
  async #connection(lost: FramedConnection | null): Promise<FramedConnection> {
    const deadlineUs = this.#deps.clock.nowUs() + switchLimits.remoteRestoreReconnectWaitMs * 1000;
    for (;;) {
      const framed: FramedConnection | null = this.#framed;
      if (framed !== null && framed !== lost) return framed;
      let wake!: () => void;
      const back = new Promise<void>((resolve) => (wake = resolve));
      this.#connectionWaiters.add(wake);
      try {
        await this.#beforeDeadline(
          back,
          Math.max(0, (deadlineUs - this.#deps.clock.nowUs()) / 1000),
          () =>
            new RemoteRestoreError(
              `The link to the appliance did not come back within ${switchLimits.remoteRestoreReconnectWaitMs} ms`,
            ),
        );
      } finally {
        this.#connectionWaiters.delete(wake);
      }
    }
  }

  /** Sends on the live connection if there is one (a closed one is the link's to report). */
  async #sendIfConnected(send: (framed: FramedConnection) => Promise<void>): Promise<void> {
    const framed = this.#framed;
    if (framed === null) return;
    await guard(send(framed)).catch((error) => {
      if (!(error instanceof LinkLostError)) throw error;
    });
  }

  /** `work`, or `timeoutError()` once `timeoutMs` pass on the clock first. */
  async #beforeDeadline<T>(work: Promise<T>, timeoutMs: number, timeoutError: () => Error): Promise<T> {
    const clock = this.#deps.clock;
    const deadlineUs = clock.nowUs() + timeoutMs * 1000;
    let settled = false;
    const watched = work.finally(() => {
      settled = true;
    });
    const timer = (async (): Promise<T> => {
      for (;;) {
        if (settled) return undefined as T; // the race has its answer already
        const remainingUs = deadlineUs - clock.nowUs();
        if (remainingUs <= 0) throw timeoutError();
        await clock.sleep(Math.min(waitStepMs, Math.ceil(remainingUs / 1000)));
      }
    })();
    return await Promise.race([watched, timer]);
  }
}

/** A send, with a closed connection as {@link LinkLostError}. */
async function guard(sent: Promise<void>): Promise<void> {
  try {
    await sent;
  } catch (error) {
    if (!(error instanceof ConnectionClosedError)) throw error;
    throw new LinkLostError("The link to the appliance ended", { cause: error });
  }
}

/** A restore's entry in the table, before its session exists. */
function newRestore(request: RestoreRequestBody, phase: Phase): SwitchRestore {
  return {
    request,
    phase,
    plan: [],
    planWaiter: null,
    session: null,
    started: null,
    final: null,
    cancelRequested: false,
    sendingProgress: false,
    reads: new Window(switchLimits.remoteRestoreReadsInFlightMax),
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
