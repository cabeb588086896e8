/**
 * The appliance side of the switch link (DESIGN.md, "Wire protocol"; SPEC guarantees 2-4):
 * accepts switches, proves and checks the shared secret, registers their volumes, journals
 * WRITE batches and MARKs through each volume's engine and acknowledges cumulatively once
 * the journal says the records are durable.
 *
 * Exactly once in the journal: after a reconnect the switch resends from the durable seq the
 * handshake reported, which may repeat records the appliance had appended but not yet made
 * durable on the old connection; entries below the volume's next seq are skipped. A batch
 * is checked whole before any entry is appended (volume known to this session, seqs
 * contiguous from at most the next seq, every payload checksum right), so a bad batch gets
 * an ERROR and changes nothing.
 *
 * Snapshots while a switch streams the volume ({@link ApplianceLink.requestSnapshot}): the
 * marker must take a seq of the switch's write stream (SPEC: after every write the host saw
 * acknowledged), so the appliance asks the switch (SNAPSHOT_REQUEST), the switch queues the
 * marker and answers with its seq (SNAPSHOT_REPLY), and the request resolves once that marker
 * is durable here and applied (the name is in, or out of, `volume.snapshots()`). Requests in
 * progress are bounded (`wireLimits.snapshotRequestsInFlightMax`, one more is refused) and
 * timed on the injected clock (`wireLimits.snapshotRequestTimeoutMs` in all); a session that
 * ends fails the requests it has unanswered.
 *
 * Restores while a switch streams the volume ({@link ApplianceLink.startRestore}; the switch
 * side is `src/switch/remote_restore.ts`): RESTORE_REQUEST goes to the session streaming the
 * volume; this side answers its RESTORE_PLAN_REQUEST (the extents that differ between the
 * point and the switch's drained head, from `volume.diff`, or the whole volume with `full`, in
 * RESTORE_PLAN frames, merged down to `wireLimits.restorePlanExtentsMax` if need be) and its
 * READ_REQUESTs `{atSeq}` (from one image per restore, opened at the first read and closed at
 * the end; at most `wireLimits.readRequestsInFlightMax` per session, one more ends it), and
 * follows RESTORE_STARTED / RESTORE_PROGRESS / RESTORE_REFUSED. A restore outlives the session
 * it started on: its request id stays the same, and whichever session reports on it next is
 * the one a cancel goes to (sent again there if it was sent on an earlier one). At most
 * `wireLimits.restoresInFlightMax` restores are followed at once.
 */
import { createChecksum } from "../core/checksum.ts";
import { serverLimits, wireLimits } from "../core/limits.ts";
import { checkSnapshotName } from "../core/point.ts";
import type { Clock } from "../io/clock.ts";
import { type Connection, ConnectionClosedError, type Listener } from "../io/transport.ts";
import { ProtocolError } from "../wire/errors.ts";
import { FramedConnection } from "../wire/framed_connection.ts";
import { applianceHandshake } from "../wire/handshake.ts";
import {
  encodeRestoreExtents,
  type MarkBody,
  type Message,
  messageKinds,
  type PlanExtent,
  type ReadRequestBody,
  type RestoreProgressState,
  hashChunkCount,
  type HashRequestBody,
  type RestoreStartedBody,
  type SnapshotReplyBody,
  type SnapshotRequestBody,
  type VolumeOffer,
  type VolumeResume,
  type WriteBody,
  fitWireText,
  writeChecksumProblem,
  WriteEntries,
} from "../wire/messages.ts";
import type { Appliance } from "./appliance.ts";
import type { ImageDevice } from "./image.ts";
import { ConflictError, NotFoundError, PointUnavailableError } from "./errors.ts";
import { journalRecordKinds } from "./journal_record.ts";
import type { Volume, WriteInput } from "./volume.ts";

/** The one write object the WRITE loop fills for each entry's fast-path append (nothing allocated per entry). */
type MutableWriteInput = { -readonly [K in keyof WriteInput]: WriteInput[K] };

const noData = new Uint8Array(0);

/** Options of {@link ApplianceLink}. */
export interface ApplianceLinkOptions {
  /** The switch↔appliance shared secret (at least 16 bytes). */
  readonly secret: Uint8Array;
  /** A switch that has not finished the handshake by then is dropped. */
  readonly handshakeTimeoutMs?: number;
  /** How long a snapshot through the switch may take in all; default `wireLimits.snapshotRequestTimeoutMs`. */
  readonly snapshotTimeoutMs?: number;
}

/**
 * A snapshot through the switch got no answer: no switch streams the volume now, its session
 * ended first, too many requests are in progress, or the time ran out. The API answers 503.
 * The switch may still have queued the marker (then the snapshot appears once it is durable).
 */
export class SwitchUnavailableError extends Error {
  override name = "SwitchUnavailableError";
}

/** Timers of a wait on the clock sleep at most this long at a time, so a wait that ends early leaves no long timer behind. */
const deadlineStepMs = 1_000;

/** A SNAPSHOT_REQUEST sent and not yet answered. */
interface PendingSnapshotRequest {
  readonly resolve: (reply: SnapshotReplyBody) => void;
  readonly reject: (error: Error) => void;
}

/** One switch's session after the handshake. */
interface SwitchSession {
  readonly framed: FramedConnection;
  readonly switchId: string;
  /** The volumes its handshake registered. */
  readonly volumes: ReadonlySet<string>;
  /** Request id → its waiter; bounded by `wireLimits.snapshotRequestsInFlightMax` over all sessions. */
  readonly pending: Map<number, PendingSnapshotRequest>;
  /** READ_REQUESTs being answered (bounded by `wireLimits.readRequestsInFlightMax`). */
  readsInFlight: number;
}

/** What a restore through the switch asks for (the point resolved and checked by the caller). */
export interface RemoteRestoreRequest {
  readonly toSeq: number;
  readonly toTimeUs: number;
  readonly instant: boolean;
  readonly full: boolean;
}

/** How a restore through the switch ended, as the switch reported it. */
export interface RemoteRestoreEnd {
  readonly state: Exclude<RestoreProgressState, "running">;
  readonly bytesMoved: number;
  readonly message?: string;
}

/**
 * A restore the switch runs for this appliance ({@link ApplianceLink.startRestore}): what the
 * switch reported so far, and the way to cancel it. Outlives the session it started on.
 */
export class RemoteRestore {
  readonly requestId: number;
  readonly volume: Volume;
  readonly request: RemoteRestoreRequest;
  /** The restore marker is in the stream: its seq and the bytes the switch moves; rejects when refused or abandoned. */
  readonly started: Promise<{ markerSeq: number; bytesTotal: number }>;
  /** Settles with the switch's end report; rejects only when abandoned. */
  readonly finished: Promise<RemoteRestoreEnd>;
  bytesMoved = 0;
  bytesTotal = 0;
  /** When the switch last said anything about this restore (µs on the link's clock). */
  lastHeardUs: number;
  /** The session that reported last (where a cancel goes). */
  session: SwitchSession;
  image: ImageDevice | null = null;
  cancelRequested = false;
  cancelSentOn: SwitchSession | null = null;
  hasStarted = false;
  ended = false;
  resolveStarted!: (started: { markerSeq: number; bytesTotal: number }) => void;
  rejectStarted!: (error: Error) => void;
  resolveFinished!: (end: RemoteRestoreEnd) => void;
  rejectFinished!: (error: Error) => void;
  readonly #cancel: (restore: RemoteRestore) => void;
  readonly #abandon: (restore: RemoteRestore, error: Error) => void;

  constructor(
    init: { requestId: number; volume: Volume; request: RemoteRestoreRequest; session: SwitchSession; nowUs: number },
    actions: { cancel: (restore: RemoteRestore) => void; abandon: (restore: RemoteRestore, error: Error) => void },
  ) {
    this.requestId = init.requestId;
    this.volume = init.volume;
    this.request = init.request;
    this.session = init.session;
    this.lastHeardUs = init.nowUs;
    this.#cancel = actions.cancel;
    this.#abandon = actions.abandon;
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    // A caller may await only one of the two; the other's rejection is not lost but not unhandled either.
    this.started.catch(() => {});
    this.finished.catch(() => {});
  }

  /** Asks the switch to stop; `finished` then reports `cancelled` (or `done` if it won the race). */
  cancel(): void {
    this.#cancel(this);
  }

  /** Stops following the restore (its switch went silent): `started` and `finished` reject with `error`. */
  abandon(error: Error): void {
    this.#abandon(this, error);
  }
}

/** Largest chunk a HASH_REQUEST may ask one hash of (each is read whole into memory). */
const hashChunkBytesMax = 16 * 1024 * 1024;

/** Accepts switches and journals what they send. */
export class ApplianceLink {
  readonly #appliance: Appliance;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  readonly #options: ApplianceLinkOptions;
  readonly #sessions = new Set<FramedConnection>();
  /** Volume name → sessions streaming it now, oldest first (a reconnect may overlap the old session's end). */
  readonly #linked = new Map<string, SwitchSession[]>();
  /** Snapshot requests in progress (reply or durability awaited), by volume and snapshot name. */
  readonly #snapshotRequests = new Set<string>();
  /** Restores through a switch, by request id (bounded by `wireLimits.restoresInFlightMax`). */
  readonly #restores = new Map<number, RemoteRestore>();
  /** Starts at the clock's µs, so a restarted appliance never reuses the id of a restore a switch still runs (and resumes). */
  #nextRequestId: number;
  /** Makes a job of a restore a switch reports that this process did not start ({@link setAdopter}). */
  #adopt: ((restore: RemoteRestore) => void) | null = null;
  /** Starts reported before their restore marker was journaled here (the switch resends it): tried again on progress; bounded. */
  readonly #unadopted = new Map<number, RestoreStartedBody>();
  readonly #writeInput: MutableWriteInput = { seq: 0, timeUs: 0, offsetBytes: 0, data: noData, checksum: 0n, checksumVerified: true };

  constructor(deps: { appliance: Appliance; clock: Clock; log?: (line: string) => void }, options: ApplianceLinkOptions) {
    this.#appliance = deps.appliance;
    this.#clock = deps.clock;
    this.#nextRequestId = Math.max(0, Math.floor(deps.clock.nowUs()));
    this.#log = deps.log ?? (() => {});
    this.#options = options;
  }

  /**
   * Follows the restores a switch reports (RESTORE_STARTED) that this process did not start —
   * it restarted while the switch kept copying, or the switch resumed one after its own crash
   * and this process forgot it: each is looked up by its restore marker in the journal and
   * handed to `adopt` (the process makes a job of it), then followed like any other.
   */
  setAdopter(adopt: ((restore: RemoteRestore) => void) | null): void {
    this.#adopt = adopt;
  }

  /** Switches connected now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Whether a switch streaming `volumeName` is connected now. */
  isLinked(volumeName: string): boolean {
    return (this.#linked.get(volumeName)?.length ?? 0) > 0;
  }

  /**
   * Takes a snapshot (or, with `remove`, removes one) in the write stream of the switch that
   * streams the volume: asks it for a marker, then waits until the marker with the seq it
   * gave is durable and applied here. Resolves with that seq.
   *
   * @throws {SyntaxError} for a name that is not a snapshot name (nothing is sent).
   * @throws {NotFoundError} for an unknown volume, or removing a snapshot that does not exist.
   * @throws {ConflictError} when the name is taken (or a request for it is in progress), or
   * the switch refused (marking mode, its marker ring full...), with the switch's reason.
   * @throws {SwitchUnavailableError} when no switch streams the volume, its session ends
   * before it answers, too many requests are in progress, or the time runs out.
   * @example
   * ```ts
   * if (link.isLinked("db")) {
   *   const { seq } = await link.requestSnapshot("db", "before-upgrade");
   *   volume.snapshots(); // [..., { name: "before-upgrade", seq, timeUs }]
   * }
   * ```
   */
  async requestSnapshot(volumeName: string, name: string, options: { remove?: boolean } = {}): Promise<{ seq: number }> {
    checkSnapshotName(name);
    const remove = options.remove === true;
    const volume = this.#appliance.volume(volumeName);
    const what = `${remove ? "remove" : "take"} snapshot "${name}" of volume "${volumeName}"`;
    const exists = volume.snapshots().some((snapshot) => snapshot.name === name);
    if (!remove && exists) throw new ConflictError(`Snapshot "${name}" of volume "${volumeName}" exists`);
    if (remove && !exists) throw new NotFoundError(`Snapshot "${name}" of volume "${volumeName}" does not exist`);
    const key = JSON.stringify([volumeName, name]);
    if (this.#snapshotRequests.has(key)) {
      throw new ConflictError(`Cannot ${what}: a request for that name is in progress`);
    }
    if (this.#snapshotRequests.size >= wireLimits.snapshotRequestsInFlightMax) {
      throw new SwitchUnavailableError(
        `Cannot ${what}: ${this.#snapshotRequests.size} snapshot requests are in progress (the limit); try again`,
      );
    }
    const sessions = this.#linked.get(volumeName);
    const session = sessions?.[sessions.length - 1];
    if (session === undefined) throw new SwitchUnavailableError(`Cannot ${what} through the switch: no switch streams it now`);
    this.#snapshotRequests.add(key);
    try {
      const deadlineUs = this.#clock.nowUs() + (this.#options.snapshotTimeoutMs ?? wireLimits.snapshotRequestTimeoutMs) * 1000;
      const request = { requestId: this.#nextRequestId++, volume: volumeName, name, ...(remove ? { remove } : {}) };
      const reply = await this.#ask(session, request, deadlineUs, what);
      if (reply.refused !== undefined) throw new ConflictError(`Switch ${session.switchId} refused: ${reply.refused}`);
      await this.#waitDurable(volume, reply.seq, deadlineUs, () =>
        new SwitchUnavailableError(
          `Cannot ${what}: its marker (seq ${reply.seq}) was not durable here in time; it takes effect once it is`,
        ));
      this.#checkApplied(volume, name, reply.seq, remove);
      return { seq: reply.seq };
    } finally {
      this.#snapshotRequests.delete(key);
    }
  }

  /**
   * Starts a restore of the volume's primary to `request.toSeq` on the switch that streams
   * it (the caller resolved the point and checked it: retained, not suspect unless forced).
   * Follow it through the returned {@link RemoteRestore}.
   *
   * @throws {NotFoundError} for an unknown volume.
   * @throws {ConflictError} when a restore of the volume is in progress here.
   * @throws {SwitchUnavailableError} when no switch streams the volume now, or
   * `wireLimits.restoresInFlightMax` restores are in progress.
   */
  startRestore(volumeName: string, request: RemoteRestoreRequest): RemoteRestore {
    const volume = this.#appliance.volume(volumeName);
    const what = `restore volume "${volumeName}" to seq:${request.toSeq}`;
    for (const restore of this.#restores.values()) {
      if (restore.volume.name === volumeName) throw new ConflictError(`Cannot ${what}: restore ${restore.requestId} of it is in progress`);
    }
    if (this.#restores.size >= wireLimits.restoresInFlightMax) {
      throw new SwitchUnavailableError(`Cannot ${what}: ${this.#restores.size} restores are in progress (the limit); try again`);
    }
    const sessions = this.#linked.get(volumeName);
    const session = sessions?.[sessions.length - 1];
    if (session === undefined) throw new SwitchUnavailableError(`Cannot ${what} through the switch: no switch streams it now`);
    const restore = new RemoteRestore(
      { requestId: this.#nextRequestId++, volume, request, session, nowUs: this.#clock.nowUs() },
      { cancel: (r) => this.#cancelRestore(r), abandon: (r, error) => this.#endRestore(r, error) },
    );
    this.#restores.set(restore.requestId, restore);
    session.framed.send(messageKinds.restoreRequest, { requestId: restore.requestId, volume: volumeName, ...request }).catch(
      (error) => {
        if (!(error instanceof ConnectionClosedError)) throw error;
        this.#endRestore(restore, new SwitchUnavailableError(`Cannot ${what}: the link to switch ${session.switchId} ended`, { cause: error }));
      },
    );
    return restore;
  }

  /** Restores being followed now. */
  get restoreCount(): number {
    return this.#restores.size;
  }

  /** Serves every connection the listener accepts until it closes. */
  async serve(listener: Listener): Promise<void> {
    for await (const connection of listener) void this.handle(connection);
  }

  /** Runs one switch session to its end; never throws (errors are logged and sent as ERROR). */
  async handle(connection: Connection): Promise<void> {
    const framed = new FramedConnection(connection);
    this.#sessions.add(framed);
    const unsubscribes: (() => void)[] = [];
    try {
      const { switchId, volumes } = await this.#handshake(framed);
      // Every message after the handshake is done with before the next is received (#dispatch
      // awaits each WRITE's appends, which copy the data), so frame buffers can be reused;
      // they are the checksum's in-place memory, so each batch is checked without a copy.
      framed.lendMessages((await createChecksum()).allocate);
      this.#log(`Switch ${switchId} connected from ${framed.remoteAddress} with ${volumes.map((v) => v.name).join(", ")}`);
      const session: SwitchSession = {
        framed,
        switchId,
        volumes: new Set(volumes.map((v) => v.name)),
        pending: new Map(),
        readsInFlight: 0,
      };
      unsubscribes.push(() => this.#failPending(session));
      for (const name of session.volumes) {
        unsubscribes.push(this.#acknowledge(framed, this.#appliance.volume(name)));
        const sessions = this.#linked.get(name) ?? [];
        sessions.push(session);
        this.#linked.set(name, sessions);
        unsubscribes.push(() => {
          const left = (this.#linked.get(name) ?? []).filter((other) => other !== session);
          if (left.length > 0) this.#linked.set(name, left);
          else this.#linked.delete(name);
        });
      }
      for await (const message of framed) {
        const done = await this.#dispatch(framed, session, message);
        if (done) break;
      }
      this.#log(`Switch ${switchId} disconnected`);
    } catch (error) {
      this.#log(`Switch session from ${framed.remoteAddress} ended: ${(error as Error).message}`);
    } finally {
      for (const unsubscribe of unsubscribes) unsubscribe();
      this.#sessions.delete(framed);
      await framed.close().catch(() => {});
    }
  }

  /** Closes every session. */
  async close(): Promise<void> {
    await Promise.all([...this.#sessions].map((framed) => framed.close().catch(() => {})));
  }

  async #handshake(framed: FramedConnection): Promise<{ switchId: string; volumes: readonly VolumeResume[] }> {
    const timeoutMs = this.#options.handshakeTimeoutMs ?? 10_000;
    let finished = false;
    let timedOut = false;
    void this.#clock.sleep(timeoutMs).then(() => {
      if (finished) return;
      timedOut = true;
      return framed.close();
    });
    try {
      return await applianceHandshake(framed, {
        secret: this.#options.secret,
        registerVolumes: (_switchId, offers) => this.#register(offers),
      });
    } catch (error) {
      if (timedOut) throw new Error(`The switch did not finish the handshake within ${timeoutMs} ms`);
      throw error;
    } finally {
      finished = true;
    }
  }

  async #register(offers: readonly VolumeOffer[]): Promise<VolumeResume[]> {
    const resumes: VolumeResume[] = [];
    for (const offer of offers) {
      const volume = await this.#appliance.register({
        name: offer.name,
        sizeBytes: offer.sizeBytes,
        regionBytes: offer.regionBytes,
      });
      await volume.flush();
      resumes.push({ name: offer.name, durableSeq: volume.head.seq });
    }
    return resumes;
  }

  /** Sends cumulative ACKs as the volume's journal makes records durable, one send at a time. */
  #acknowledge(framed: FramedConnection, volume: Volume): () => void {
    let sending = false;
    let sentSeq = -1;
    let latestSeq = -1;
    const pump = async () => {
      sending = true;
      try {
        while (latestSeq > sentSeq) {
          const durableSeq = latestSeq;
          await framed.send(messageKinds.ack, { volume: volume.name, durableSeq });
          sentSeq = durableSeq;
        }
      } catch {
        // The session is ending; its receive loop reports why.
      } finally {
        sending = false;
      }
    };
    return volume.onDurable((seq) => {
      latestSeq = Math.max(latestSeq, seq);
      if (!sending) void pump();
    });
  }

  /** Handles one message; true when the session should end. */
  async #dispatch(framed: FramedConnection, session: SwitchSession, message: Message): Promise<boolean> {
    switch (message.kind) {
      case messageKinds.write:
        await this.#write(framed, session.volumes, message.body, message.payload);
        return false;
      case messageKinds.mark:
        await this.#mark(framed, session.volumes, message.body);
        return false;
      case messageKinds.snapshotReply: {
        const requestId = message.body.requestId;
        const pending = session.pending.get(requestId);
        if (pending === undefined) {
          // Its requester gave up (timeout): the marker, if taken, still arrives as a MARK.
          this.#log(`Switch ${session.switchId} answered snapshot request ${requestId}, which nobody waits for now`);
          return false;
        }
        session.pending.delete(requestId);
        pending.resolve(message.body);
        return false;
      }
      case messageKinds.restorePlanRequest: {
        const restore = this.#heardFrom(session, message.body.requestId);
        if (restore === undefined) {
          // Abandoned here: the switch gives up before it changes anything.
          await framed.send(messageKinds.restoreCancel, { requestId: message.body.requestId });
          return false;
        }
        await this.#sendPlan(session, restore, message.body.headSeq);
        return false;
      }
      case messageKinds.readRequest:
        await this.#answerRead(session, message.body);
        return false;
      case messageKinds.hashRequest:
        await this.#answerHashes(session, message.body);
        return false;
      case messageKinds.restoreStarted: {
        if (!this.#restores.has(message.body.requestId)) this.#adoptRestore(session, message.body);
        const restore = this.#heardFrom(session, message.body.requestId);
        if (restore === undefined) return false;
        restore.bytesTotal = message.body.bytesTotal;
        if (!restore.hasStarted) {
          restore.hasStarted = true;
          restore.resolveStarted({ markerSeq: message.body.markerSeq, bytesTotal: message.body.bytesTotal });
        }
        return false;
      }
      case messageKinds.restoreRefused: {
        const restore = this.#heardFrom(session, message.body.requestId);
        if (restore !== undefined) this.#endRestore(restore, new ConflictError(`Switch ${session.switchId} refused: ${message.body.refused}`));
        return false;
      }
      case messageKinds.restoreProgress: {
        // A start whose marker was not journaled yet when it came: try again now.
        const waiting = this.#unadopted.get(message.body.requestId);
        if (waiting !== undefined && !this.#restores.has(message.body.requestId)) this.#adoptRestore(session, waiting);
        if (message.body.state !== "running") this.#unadopted.delete(message.body.requestId);
        const restore = this.#heardFrom(session, message.body.requestId);
        if (restore === undefined) return false;
        restore.bytesMoved = message.body.bytesMoved;
        const { state } = message.body;
        if (state !== "running") {
          const end: RemoteRestoreEnd = {
            state,
            bytesMoved: message.body.bytesMoved,
            ...(message.body.message !== undefined ? { message: message.body.message } : {}),
          };
          this.#endRestore(restore, end);
        }
        return false;
      }
      case messageKinds.ping:
        await framed.send(messageKinds.pong, { timeUs: this.#clock.nowUs() });
        return false;
      case messageKinds.bye:
        return true;
      case messageKinds.error:
        this.#log(`Switch reported error ${message.body.code}: ${message.body.message}`);
        return true;
      default:
        await framed.sendError("unexpected", `Cannot handle a ${message.kind} message on an established link`);
        throw new ProtocolError("unexpected", `Unexpected message ${message.kind}`);
    }
  }

  async #write(framed: FramedConnection, session: ReadonlySet<string>, body: WriteBody, payload: Uint8Array): Promise<void> {
    const volume = await this.#sessionVolume(framed, session, body.volume);
    const entries = new WriteEntries(body.entries);
    const count = entries.count;
    const problem = count === 0 ? null : this.#batchProblem(volume, entries) ?? writeChecksumProblem(await createChecksum(), body, payload);
    if (problem !== null) {
      await framed.sendError("write", `Cannot journal the batch for volume "${volume.name}": ${problem}`);
      throw new ProtocolError("bad-body", problem);
    }
    // The fast path appends synchronously from this one object; a slow-path append (waiting for
    // journal space) keeps its record, so it gets a copy.
    const write = this.#writeInput;
    let atBytes = 0;
    for (let index = 0; index < count; index++) {
      const seq = entries.seq(index);
      const lengthBytes = entries.lengthBytes(index);
      const data = payload.subarray(atBytes, atBytes + lengthBytes);
      atBytes += lengthBytes;
      if (seq < volume.nextSeq) continue; // resent after a reconnect: already journaled
      write.seq = seq;
      write.timeUs = entries.timeUs(index);
      write.offsetBytes = entries.offsetBytes(index);
      write.data = data;
      write.checksum = entries.checksum(index);
      write.checksumVerified = true; // the whole batch was checked above
      const appended = volume.tryAppendWrite(write);
      write.data = noData;
      if (appended < 0) await volume.appendWrite({ ...write, data });
    }
  }

  /** Why a batch cannot be journaled whole (seqs, range), or null; checksums are checked after. */
  #batchProblem(volume: Volume, entries: WriteEntries): string | null {
    const nextSeq = volume.nextSeq;
    if (entries.seq(0) > nextSeq) {
      return `the batch starts at seq ${entries.seq(0)} but the volume's next seq is ${nextSeq} (records are missing)`;
    }
    for (let index = 0; index < entries.count; index++) {
      if (index > 0 && entries.seq(index) !== entries.seq(index - 1) + 1) return "the batch's seqs are not consecutive";
      if (entries.offsetBytes(index) + entries.lengthBytes(index) > volume.sizeBytes) {
        return `a write ends past the end of the ${volume.sizeBytes}-byte volume`;
      }
    }
    return null;
  }

  async #mark(framed: FramedConnection, session: ReadonlySet<string>, body: MarkBody): Promise<void> {
    const volume = await this.#sessionVolume(framed, session, body.volume);
    if (body.seq < volume.nextSeq) return; // resent after a reconnect
    if (body.seq > volume.nextSeq) {
      const problem = `the marker has seq ${body.seq} but the volume's next seq is ${volume.nextSeq}`;
      await framed.sendError("write", `Cannot journal the marker for volume "${volume.name}": ${problem}`);
      throw new ProtocolError("bad-body", problem);
    }
    try {
      await volume.appendMarker({ seq: body.seq, timeUs: body.timeUs, kind: journalRecordKinds[body.kind], payload: body.detail ?? {} });
    } catch (error) {
      // A marker the engine refuses (a restore to a point it does not hold, a detail too large)
      // changed nothing: say why, then end the session like any bad message.
      if (!(error instanceof RangeError || error instanceof SyntaxError || error instanceof PointUnavailableError)) throw error;
      await framed.sendError("write", `Cannot journal the ${body.kind} marker for volume "${volume.name}": ${error.message}`);
      throw new ProtocolError("bad-body", error.message);
    }
  }

  /** Takes up a restore the switch reports and this process does not follow (see {@link setAdopter}). */
  #adoptRestore(session: SwitchSession, body: RestoreStartedBody): void {
    if (this.#adopt === null) return;
    this.#unadopted.delete(body.requestId);
    for (const name of session.volumes) {
      const volume = this.#appliance.volume(name);
      const marker = volume.markers({ fromSeq: body.markerSeq, toSeq: body.markerSeq }).find((m) => m.kind === "restore");
      if (marker === undefined) continue;
      const detail = marker.detail as { toSeq?: unknown; instant?: unknown; full?: unknown };
      if (typeof detail.toSeq !== "number") return;
      if ([...this.#restores.values()].some((r) => r.volume === volume) || this.#restores.size >= wireLimits.restoresInFlightMax) return;
      let toTimeUs = marker.timeUs;
      try {
        toTimeUs = volume.resolvePoint(`seq:${detail.toSeq}`).timeUs;
      } catch {
        // The point is no longer retained: the switch's reads will say so.
      }
      const request: RemoteRestoreRequest = { toSeq: detail.toSeq, toTimeUs, instant: detail.instant === true, full: detail.full === true };
      const restore = new RemoteRestore(
        { requestId: body.requestId, volume, request, session, nowUs: this.#clock.nowUs() },
        { cancel: (r) => this.#cancelRestore(r), abandon: (r, error) => this.#endRestore(r, error) },
      );
      this.#restores.set(restore.requestId, restore);
      this.#log(
        `Switch ${session.switchId} reports restore ${body.requestId} of volume "${name}" to seq:${detail.toSeq} ` +
          `(restore marker seq:${body.markerSeq}), started before this process: following it`,
      );
      this.#adopt(restore);
      return;
    }
    // No restore marker at that seq yet (the switch is still resending it): try on its next progress.
    if (this.#unadopted.size < wireLimits.restoresInFlightMax) this.#unadopted.set(body.requestId, body);
  }

  /**
   * The restore a message of `session` is about, now heard from (and the session a cancel goes
   * to); `undefined` when this side no longer follows it (logged).
   */
  #heardFrom(session: SwitchSession, requestId: number): RemoteRestore | undefined {
    const restore = this.#restores.get(requestId);
    if (restore === undefined || !session.volumes.has(restore.volume.name)) {
      this.#log(`Switch ${session.switchId} reported on restore ${requestId}, which nobody follows now`);
      return undefined;
    }
    restore.lastHeardUs = this.#clock.nowUs();
    restore.session = session;
    if (restore.cancelRequested && restore.cancelSentOn !== session) this.#cancelRestore(restore);
    return restore;
  }

  #cancelRestore(restore: RemoteRestore): void {
    if (restore.ended) return;
    restore.cancelRequested = true;
    const session = restore.session;
    restore.cancelSentOn = session;
    session.framed.send(messageKinds.restoreCancel, { requestId: restore.requestId }).catch((error) => {
      if (!(error instanceof ConnectionClosedError)) throw error;
      if (restore.cancelSentOn === session) restore.cancelSentOn = null; // the next session that reports gets it
    });
  }

  /** Forgets a restore: with the switch's end report, or an error (refused, abandoned). */
  #endRestore(restore: RemoteRestore, outcome: RemoteRestoreEnd | Error): void {
    if (restore.ended) return;
    restore.ended = true;
    this.#restores.delete(restore.requestId);
    const image = restore.image;
    restore.image = null;
    if (image !== null) void image.close();
    if (outcome instanceof Error) {
      restore.rejectStarted(outcome);
      restore.rejectFinished(outcome);
      return;
    }
    if (!restore.hasStarted) {
      restore.rejectStarted(new SwitchUnavailableError(`Switch ${restore.session.switchId} ended restore ${restore.requestId} before it reported its start`));
    }
    restore.resolveFinished(outcome);
  }

  /**
   * Answers a RESTORE_PLAN_REQUEST: once the volume's head reaches the switch's drained head,
   * what differs between the point and it (or everything, with `full`), in frames.
   */
  async #sendPlan(session: SwitchSession, restore: RemoteRestore, headSeq: number): Promise<void> {
    const volume = restore.volume;
    const deadlineUs = this.#clock.nowUs() + (this.#options.snapshotTimeoutMs ?? wireLimits.snapshotRequestTimeoutMs) * 1000;
    await this.#waitDurable(volume, headSeq, deadlineUs, () =>
      new SwitchUnavailableError(`Cannot plan restore ${restore.requestId}: seq ${headSeq} of volume "${volume.name}" is not durable here`));
    const extents = restore.request.full
      ? [{ offsetBytes: 0, lengthBytes: volume.sizeBytes }]
      : fitPlan(volume.diff(`seq:${restore.request.toSeq}`, `seq:${headSeq}`).extents, wireLimits.restorePlanExtentsMax);
    const perFrame = wireLimits.restorePlanExtentsPerFrameMax;
    for (let first = 0; first === 0 || first < extents.length; first += perFrame) {
      const last = first + perFrame >= extents.length;
      await session.framed.send(messageKinds.restorePlan, {
        requestId: restore.requestId,
        extents: encodeRestoreExtents(extents.slice(first, first + perFrame)),
        last,
      });
    }
  }

  /**
   * The volume and description of a READ_ or HASH_REQUEST the session may take: within the
   * window of unanswered reads and inside the volume; else an ERROR to the switch and a
   * ProtocolError that ends the session.
   */
  async #admitRangeRequest(
    session: SwitchSession,
    request: { volume: string; offsetBytes: number; lengthBytes: number },
    verb: "read" | "hash",
  ): Promise<{ volume: Volume; what: string }> {
    const framed = session.framed;
    const volume = await this.#sessionVolume(framed, session.volumes, request.volume);
    const what = `${verb} ${request.lengthBytes} bytes at ${request.offsetBytes} of volume "${volume.name}"`;
    if (session.readsInFlight >= wireLimits.readRequestsInFlightMax) {
      await framed.sendError("busy", `Cannot ${what}: ${session.readsInFlight} reads are unanswered (the limit)`);
      throw new ProtocolError("bad-body", "too many reads in flight");
    }
    if (request.offsetBytes + request.lengthBytes > volume.sizeBytes) {
      await framed.sendError("volume", `Cannot ${what}: it ends past the end of the ${volume.sizeBytes}-byte volume`);
      throw new ProtocolError("bad-body", `${verb} past the end`);
    }
    return { volume, what };
  }

  /**
   * Answers a HASH_REQUEST (resync compares before it moves anything) from the image at
   * `atSeq` — once the volume's head has reached it: the switch asks only after the
   * acknowledgement — without holding up the session. No hashes when it cannot: the switch
   * then moves the range.
   */
  async #answerHashes(session: SwitchSession, request: HashRequestBody): Promise<void> {
    const framed = session.framed;
    const { volume, what } = await this.#admitRangeRequest(session, request, "hash");
    session.readsInFlight++;
    void (async () => {
      let hashes = new Uint8Array(0);
      try {
        const deadlineUs = this.#clock.nowUs() + serverLimits.acknowledgeWaitMs * 1000;
        while (request.atSeq !== undefined && volume.head.seq < request.atSeq && this.#clock.nowUs() < deadlineUs) {
          await this.#clock.sleep(serverLimits.acknowledgePollMs);
        }
        if (request.chunkBytes > hashChunkBytesMax) throw new RangeError(`chunks over ${hashChunkBytesMax} bytes are not hashed here`);
        const image = volume.openImage(request.atSeq === undefined ? "head" : `seq:${request.atSeq}`);
        try {
          const checksum = await createChecksum();
          const count = hashChunkCount(request);
          const computed = new Uint8Array(count * 8);
          const view = new DataView(computed.buffer);
          const chunk = new Uint8Array(Math.min(request.chunkBytes, request.lengthBytes));
          for (let index = 0; index < count; index++) {
            const offsetBytes = request.offsetBytes + index * request.chunkBytes;
            const piece = chunk.subarray(0, Math.min(chunk.length, request.offsetBytes + request.lengthBytes - offsetBytes));
            await image.read(offsetBytes, piece);
            view.setBigUint64(index * 8, checksum.hash64(piece), true);
          }
          hashes = computed;
        } finally {
          await image.close();
        }
      } catch (error) {
        this.#log(`Cannot ${what} for switch ${session.switchId}: ${(error as Error).message}; it will move the range`);
      } finally {
        session.readsInFlight--;
      }
      await framed.send(messageKinds.hashReply, { requestId: request.requestId, hashes }).catch(() => {});
    })();
  }

  /** Answers a READ_REQUEST from the image at `atSeq` (a restore's, kept open) or at head, without holding up the session. */
  async #answerRead(session: SwitchSession, request: ReadRequestBody): Promise<void> {
    const framed = session.framed;
    const { volume, what } = await this.#admitRangeRequest(session, request, "read");
    let restore: RemoteRestore | undefined;
    for (const candidate of this.#restores.values()) {
      if (candidate.volume === volume && candidate.request.toSeq === request.atSeq) restore = candidate;
    }
    let image: ImageDevice;
    let temporary = false;
    try {
      if (restore !== undefined) {
        restore.lastHeardUs = this.#clock.nowUs();
        restore.image ??= volume.openImage(`seq:${restore.request.toSeq}`);
        image = restore.image;
      } else {
        image = volume.openImage(request.atSeq === undefined ? "head" : `seq:${request.atSeq}`);
        temporary = true;
      }
    } catch (error) {
      // Not the switch's fault (the point faded, say): this read fails, the link goes on.
      this.#log(`Cannot ${what} for switch ${session.switchId}: ${(error as Error).message}`);
      await framed.send(messageKinds.readReply, { requestId: request.requestId, error: fitWireText(`Cannot ${what}: ${(error as Error).message}`) });
      return;
    }
    session.readsInFlight++;
    void (async () => {
      try {
        const data = new Uint8Array(request.lengthBytes);
        await image.read(request.offsetBytes, data);
        await framed.send(messageKinds.readReply, { requestId: request.requestId }, data);
      } catch (error) {
        if (!(error instanceof ConnectionClosedError)) {
          this.#log(`Cannot ${what} for switch ${session.switchId}: ${(error as Error).message}`);
          await framed.send(messageKinds.readReply, { requestId: request.requestId, error: fitWireText(`Cannot ${what}: ${(error as Error).message}`) })
            .catch(() => {}); // the link ended meanwhile: the switch asks again on the next one
        }
      } finally {
        session.readsInFlight--;
        if (temporary) await image.close();
      }
    })();
  }

  /** Sends the request and waits for its reply (or the deadline, or the session's end). */
  async #ask(session: SwitchSession, request: SnapshotRequestBody, deadlineUs: number, what: string): Promise<SnapshotReplyBody> {
    const requestId = request.requestId;
    const reply = new Promise<SnapshotReplyBody>((resolve, reject) => session.pending.set(requestId, { resolve, reject }));
    const sent = session.framed.send(messageKinds.snapshotRequest, request).catch((error) => {
      if (!(error instanceof ConnectionClosedError)) throw error;
      throw new SwitchUnavailableError(`Cannot ${what}: the link to switch ${session.switchId} ended`, { cause: error });
    });
    try {
      return await this.#beforeDeadline(
        Promise.all([sent, reply]).then(([, body]) => body),
        deadlineUs,
        () =>
          new SwitchUnavailableError(
            `Cannot ${what}: switch ${session.switchId} did not answer in time; it may still take the marker`,
          ),
      );
    } finally {
      session.pending.delete(requestId);
    }
  }

  /** Fails the session's unanswered requests: it ended. */
  #failPending(session: SwitchSession): void {
    for (const [requestId, pending] of session.pending) {
      pending.reject(
        new SwitchUnavailableError(
          `The session of switch ${session.switchId} ended before it answered snapshot request ${requestId}; ` +
            `if it took the marker, the snapshot appears once the switch reconnects`,
        ),
      );
    }
    session.pending.clear();
  }

  /** Resolves once the volume's head reaches `seq` (its markers applied), or fails at the deadline. */
  async #waitDurable(volume: Volume, seq: number, deadlineUs: number, timeoutError: () => Error): Promise<void> {
    if (volume.head.seq >= seq) return;
    let unsubscribe = () => {};
    const durable = new Promise<void>((resolve) => {
      // The volume's own listener (registered first) has applied the markers when this runs.
      unsubscribe = volume.onDurable(() => {
        if (volume.head.seq >= seq) resolve();
      });
    });
    try {
      await this.#beforeDeadline(durable, deadlineUs, timeoutError);
    } finally {
      unsubscribe();
    }
  }

  /** The durable marker at `seq` did what the switch said it would (a concurrent one may have won). */
  #checkApplied(volume: Volume, name: string, seq: number, remove: boolean): void {
    const entry = volume.snapshots().find((snapshot) => snapshot.name === name);
    if (!remove && entry?.seq !== seq) {
      throw new ConflictError(
        `Snapshot "${name}" of volume "${volume.name}" is ` +
          (entry === undefined ? "gone" : `at seq ${entry.seq}`) + `, not at seq ${seq} where the switch put its marker`,
      );
    }
    if (remove && entry !== undefined && entry.seq < seq) {
      throw new ConflictError(`Snapshot "${name}" of volume "${volume.name}" is still there after its removal at seq ${seq}`);
    }
  }

  /** `work`, or `timeoutError()` once the clock passes `deadlineUs` first. */
  async #beforeDeadline<T>(work: Promise<T>, deadlineUs: number, timeoutError: () => Error): Promise<T> {
    let settled = false;
    const watched = work.finally(() => {
      settled = true;
    });
    const timer = (async (): Promise<T> => {
      for (;;) {
        const remainingUs = deadlineUs - this.#clock.nowUs();
        if (remainingUs <= 0) throw timeoutError();
        await this.#clock.sleep(Math.min(deadlineStepMs, Math.ceil(remainingUs / 1000)));
        if (settled) return await watched;
      }
    })();
    return await Promise.race([watched, timer]);
  }

  async #sessionVolume(framed: FramedConnection, session: ReadonlySet<string>, name: string): Promise<Volume> {
    if (!session.has(name)) {
      const message = `Volume "${name}" was not registered in this session's handshake`;
      await framed.sendError("volume", message);
      throw new ProtocolError("bad-body", message);
    }
    return this.#appliance.volume(name);
  }
}

/**
 * The extents of a plan, merged with their neighbours (smallest gaps first, by doubling a
 * gap threshold) until at most `countMax` remain. A merged range also covers bytes that did
 * not change; restoring them copies equal bytes, so the result stays exact.
 */
export function fitPlan(extents: readonly PlanExtent[], countMax: number): PlanExtent[] {
  let current: PlanExtent[] = [...extents];
  for (let gapBytes = 512; current.length > countMax; gapBytes *= 2) {
    const merged: PlanExtent[] = [];
    for (const extent of current) {
      const previous = merged[merged.length - 1];
      if (previous !== undefined && extent.offsetBytes - (previous.offsetBytes + previous.lengthBytes) <= gapBytes) {
        merged[merged.length - 1] = {
          offsetBytes: previous.offsetBytes,
          lengthBytes: extent.offsetBytes + extent.lengthBytes - previous.offsetBytes,
        };
      } else {
        merged.push(extent);
      }
    }
    current = merged;
  }
  return current;
}
