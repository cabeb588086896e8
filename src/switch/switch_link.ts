/**
 * The switch side of the switch↔appliance link (DESIGN.md "Wire protocol"; SPEC.md
 * guarantees 2 and 3): connects, proves the shared secret, learns each volume's durable seq,
 * then streams every splitter's records (copied writes as WRITE batches, markers as MARKs) in
 * seq order and feeds the appliance's cumulative ACKs back to the splitters.
 *
 * Exactly once: after every (re)connect each volume resumes at the appliance's durable seq
 * (`Splitter.resume`) and the link sends each held record after it once on that connection;
 * the appliance skips records it already had. While the link is down the splitters keep their
 * records (they drop to marking mode only when their buffer fills) and the link reconnects
 * with capped exponential backoff (`switchLimits.linkBackoffMsMin` doubling to `...Max`).
 *
 * Memory: one frame buffer for a batch's header and body (`WriteBatchEncoder`, allocated at
 * start, reused per batch); a batch's data is not copied at all: the payload sent is the copy
 * buffer's own bytes, lent for the send (`Splitter.lendCopies`: one or two views of the ring)
 * and given back when the send settles (`Splitter.endCopyLoan`), so an acknowledgement or a
 * drop to marking mode that comes first cannot let new writes overwrite bytes still being
 * sent. One batch is in flight at a time, so one loan and one frame buffer suffice. A batch
 * holds at most `wireLimits.writeEntriesMax` entries and `switchLimits.linkBatchBytesMax`
 * bytes of data.
 *
 * Snapshots the appliance asks for (SNAPSHOT_REQUEST, e.g. `POST /v1/volumes/db/snapshots` on
 * the appliance's API) become markers of the splitter's stream like the switch's own: queued
 * at once after every write copied so far, so the seq lands after every write the host saw
 * acknowledged. Each is answered at once with a SNAPSHOT_REPLY carrying the marker's seq, or
 * `refused` with the splitter's reason (marking mode, marker ring full, a volume this link
 * does not stream); a refusal leaves the connection up. Nothing waits in a queue: replies
 * being sent are counted, and an appliance that keeps more than
 * `switchLimits.linkSnapshotRepliesSendingMax` of them unread loses the session.
 *
 * Restores the appliance asks for (RESTORE_REQUEST, and the RESTORE_PLAN, RESTORE_CANCEL and
 * READ_REPLY messages that follow) go to the {@link SwitchRestores} set with `setRestores`
 * (`remote_restore.ts`), which hears of every connection and its end so that a restore's reads
 * resume on the next connection; without one, a RESTORE_REQUEST is refused and the link stays up.
 *
 * States: `connecting` → `handshaking` → `streaming`, then `backoff` after any failure and
 * back to `connecting`; `stopped` after `stop()`.
 *
 * @example
 * ```ts
 * import type { Clock } from "../io/clock.ts";
 * import type { Transport } from "../io/transport.ts";
 * import type { Splitter } from "./splitter.ts";
 * import { SwitchLink } from "./switch_link.ts";
 *
 * function protect(transport: Transport, clock: Clock, splitter: Splitter, secret: Uint8Array) {
 *   const link = new SwitchLink({ transport, clock, splitters: [splitter] }, { address: "127.0.0.1:7300", secret, switchId: "sw1" });
 *   link.start();
 *   return link; // later: await link.stop()
 * }
 * ```
 */
import { assert } from "../core/assert.ts";
import { createChecksum } from "../core/checksum.ts";
import type { Clock } from "../io/clock.ts";
import { ConnectionClosedError, type Transport } from "../io/transport.ts";
import { FramedConnection } from "../wire/framed_connection.ts";
import { switchHandshake } from "../wire/handshake.ts";
import { type Message, messageKinds, type SnapshotReplyBody, type SnapshotRequestBody } from "../wire/messages.ts";
import { WriteBatchEncoder } from "../wire/write_batch.ts";
import { switchLimits, wireLimits } from "../core/limits.ts";
import type { SwitchRestores } from "./remote_restore.ts";
import { type Splitter, SplitterError } from "./splitter.ts";

assert(
  switchLimits.linkBatchBytesMax + wireLimits.writeEntriesMax * wireLimits.writeEntryBytes + 4096 <=
    wireLimits.frameBytesMax,
  "A full WRITE batch must fit one frame",
);

/** The link's states. */
export const switchLinkStates = {
  idle: "idle",
  connecting: "connecting",
  handshaking: "handshaking",
  streaming: "streaming",
  backoff: "backoff",
  stopped: "stopped",
} as const;

export type SwitchLinkState = typeof switchLinkStates[keyof typeof switchLinkStates];

/** Dependencies of {@link SwitchLink}. */
export interface SwitchLinkDeps {
  transport: Transport;
  clock: Clock;
  /** The protected volumes (names unique). */
  splitters: readonly Splitter[];
  log?: (line: string) => void;
}

/** Options of {@link SwitchLink}. */
export interface SwitchLinkOptions {
  /** The appliance's address for `transport.connect`. */
  address: string;
  /** The shared secret (at least 16 bytes). */
  secret: Uint8Array;
  switchId: string;
  /** Default `switchLimits.linkHandshakeTimeoutMs`. */
  handshakeTimeoutMs?: number;
}

/** See the module doc. */
export class SwitchLink {
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #splitters: readonly Splitter[];
  readonly #byName: ReadonlyMap<string, Splitter>;
  readonly #log: (line: string) => void;
  readonly #options: SwitchLinkOptions;
  /** Builds each batch's header and body in its one buffer (the data is lent by the copy buffer). */
  readonly #encoder: WriteBatchEncoder;
  /** Per volume (same index as the splitters): the last seq sent on this connection. */
  readonly #sentSeqs: Float64Array;
  #state: SwitchLinkState = switchLinkStates.idle;
  #framed: FramedConnection | null = null;
  #running: Promise<void> | null = null;
  /** Wakes the sender (new records, the connection ended, stop). One pending wake, not a queue. */
  #wake: (() => void) | null = null;
  #wakePending = false;
  /** Ends a backoff sleep early on stop. */
  #interruptSleep: (() => void) | null = null;
  #connectionCount = 0;
  #lastError: string | null = null;
  /** SNAPSHOT_REPLYs handed to `send` whose sends have not settled (bounded; module doc). */
  #snapshotRepliesSending = 0;
  /** Runs the restores the appliance asks for; none: they are refused. */
  #restores: SwitchRestores | null = null;
  /** HASH_REQUESTs unanswered (one per resync at a time: at most one per volume), by request id. */
  readonly #hashRequests = new Map<number, { framed: FramedConnection; resolve: (hashes: Uint8Array | null) => void }>();
  #nextHashRequestId = 0;

  constructor(deps: SwitchLinkDeps, options: SwitchLinkOptions) {
    const names = deps.splitters.map((splitter) => splitter.name);
    if (new Set(names).size !== names.length) {
      throw new RangeError(`Cannot link volumes ${names.join(", ")}: names must be unique`);
    }
    if (names.length === 0 || names.length > wireLimits.volumesPerConnectionMax) {
      throw new RangeError(`Cannot link ${names.length} volumes: 1 to ${wireLimits.volumesPerConnectionMax} per link`);
    }
    this.#transport = deps.transport;
    this.#clock = deps.clock;
    this.#splitters = deps.splitters;
    this.#byName = new Map(deps.splitters.map((splitter) => [splitter.name, splitter]));
    this.#log = deps.log ?? (() => {});
    this.#options = options;
    this.#encoder = new WriteBatchEncoder();
    this.#sentSeqs = new Float64Array(deps.splitters.length);
  }

  get state(): SwitchLinkState {
    return this.#state;
  }

  /** Connections that finished the handshake so far. */
  get connectionCount(): number {
    return this.#connectionCount;
  }

  /** Why the last connection attempt or session ended, for status. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Starts connecting (in the background); idempotent. */
  start(): void {
    if (this.#running !== null) return;
    for (const splitter of this.#splitters) splitter.setRecordListener(() => this.#signal());
    this.#running = this.#run();
  }

  /** Sends BYE if streaming, closes the connection and stops reconnecting. */
  async stop(): Promise<void> {
    if (this.#state === switchLinkStates.stopped) return;
    const wasStreaming = this.#state === switchLinkStates.streaming;
    this.#state = switchLinkStates.stopped;
    const framed = this.#framed;
    if (framed !== null) {
      if (wasStreaming) await framed.send(messageKinds.bye, { reason: "switch stopping" }).catch(() => {});
      await framed.close();
    }
    this.#interruptSleep?.();
    this.#signal();
    await this.#running;
    for (const splitter of this.#splitters) splitter.setRecordListener(null);
  }

  /**
   * Lets the appliance run restores through this link (`remote_restore.ts`): RESTORE_* and
   * READ_REPLY messages go to `restores`, which learns of every connection and its end.
   * Without it a RESTORE_REQUEST is refused.
   */
  setRestores(restores: SwitchRestores | null): void {
    this.#restores = restores;
  }

  /** Drops the current connection (tests, operator "reconnect"); the link reconnects after backoff. */
  async dropConnection(): Promise<void> {
    await this.#framed?.close();
  }

  async #run(): Promise<void> {
    let backoffMs: number = switchLimits.linkBackoffMsMin;
    while (this.#state !== switchLinkStates.stopped) {
      const streamed = await this.#session();
      if (this.#isStopped()) break;
      if (streamed) backoffMs = switchLimits.linkBackoffMsMin;
      this.#state = switchLinkStates.backoff;
      await this.#sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, switchLimits.linkBackoffMsMax);
    }
  }

  /** One connection's life; true when it reached streaming. */
  async #session(): Promise<boolean> {
    this.#state = switchLinkStates.connecting;
    let framed: FramedConnection;
    try {
      framed = new FramedConnection(await this.#transport.connect(this.#options.address));
    } catch (error) {
      this.#noteError(`Cannot connect to the appliance at ${this.#options.address}`, error);
      return false;
    }
    this.#framed = framed;
    let streamed = false;
    try {
      if (this.#isStopped()) return false;
      this.#state = switchLinkStates.handshaking;
      const volumes = await this.#handshake(framed);
      if (this.#isStopped()) return false;
      for (const [index, splitter] of this.#splitters.entries()) {
        const resume = volumes.find((volume) => volume.name === splitter.name);
        assert(resume !== undefined, `The handshake answered volume "${splitter.name}"`);
        splitter.resume(resume.durableSeq);
        this.#sentSeqs[index] = splitter.acknowledgedSeq;
      }
      this.#state = switchLinkStates.streaming;
      this.#connectionCount++;
      streamed = true;
      this.#log(`Connected to the appliance at ${framed.remoteAddress}`);
      this.#restores?.connected(framed);
      const session = { ended: false };
      await Promise.all([this.#receiveLoop(framed, session), this.#sendLoop(framed, session)]);
    } catch (error) {
      this.#noteError("The link to the appliance ended", error);
    } finally {
      this.#restores?.disconnected(framed);
      for (const [requestId, pending] of this.#hashRequests) {
        if (pending.framed !== framed) continue;
        this.#hashRequests.delete(requestId);
        pending.resolve(null); // asked on a dead connection: the range moves
      }
      for (const splitter of this.#splitters) splitter.linkLost();
      await framed.close();
      this.#framed = null;
    }
    return streamed;
  }

  async #handshake(framed: FramedConnection) {
    const timeoutMs = this.#options.handshakeTimeoutMs ?? switchLimits.linkHandshakeTimeoutMs;
    let finished = false;
    void this.#clock.sleep(timeoutMs).then(() => {
      if (!finished) return framed.close();
    });
    try {
      const result = await switchHandshake(framed, {
        secret: this.#options.secret,
        switchId: this.#options.switchId,
        volumes: this.#splitters.map((splitter) => ({
          name: splitter.name,
          sizeBytes: splitter.sizeBytes,
          regionBytes: splitter.regionBytes,
        })),
      });
      return result.volumes;
    } finally {
      finished = true;
    }
  }

  async #receiveLoop(framed: FramedConnection, session: { ended: boolean }): Promise<void> {
    try {
      for await (const message of framed) {
        if (!this.#handleMessage(framed, message)) break;
      }
    } finally {
      // The sender must not wait for records on a dead connection.
      session.ended = true;
      await framed.close();
      this.#signal();
    }
  }

  /** false when the session should end. */
  #handleMessage(framed: FramedConnection, message: Message): boolean {
    switch (message.kind) {
      case messageKinds.ack: {
        const splitter = this.#byName.get(message.body.volume);
        if (splitter === undefined) {
          void framed.sendError("unexpected", `Cannot take an ACK for volume "${message.body.volume}": not linked`);
          return false;
        }
        splitter.acknowledge(message.body.durableSeq);
        return true;
      }
      case messageKinds.snapshotRequest:
        return this.#answerSnapshotRequest(framed, message.body);
      case messageKinds.restoreRequest:
      case messageKinds.restorePlan:
      case messageKinds.restoreCancel:
      case messageKinds.readReply:
        return this.#toRestores(framed, message);
      case messageKinds.hashReply: {
        const pending = this.#hashRequests.get(message.body.requestId);
        if (pending === undefined) {
          this.#log(`The appliance answered hash request ${message.body.requestId}, which nobody waits for now`);
          return true;
        }
        this.#hashRequests.delete(message.body.requestId);
        // The hashes are a view into received bytes: copy them before the next frame reuses them.
        pending.resolve(message.body.hashes.length === 0 ? null : message.body.hashes.slice());
        return true;
      }
      case messageKinds.pong:
        return true;
      case messageKinds.error:
        this.#lastError = `The appliance reported ${message.body.code}: ${message.body.message}`;
        this.#log(this.#lastError);
        return false;
      case messageKinds.bye:
        return false;
      default:
        void framed.sendError("unexpected", `Cannot handle a ${message.kind} message on an established link`);
        return false;
    }
  }

  /**
   * Whether the appliance's image of `volumeName` after `atSeq` equals `primary` at
   * `offsetBytes` (resync compares before it moves anything; DESIGN "Resync"): one XXH64 of
   * the range each side. `false` whenever the appliance cannot say — the link is down or
   * drops, it does not answer in time, it has no hashes — so the caller moves the range.
   */
  async compareWithAppliance(volumeName: string, offsetBytes: number, primary: Uint8Array, atSeq: number): Promise<boolean> {
    const framed = this.#framed;
    if (framed === null || this.#state !== switchLinkStates.streaming) return false;
    assert(this.#hashRequests.size < this.#splitters.length, "One hash request per volume's resync at a time");
    const requestId = this.#nextHashRequestId++;
    const answered = new Promise<Uint8Array | null>((resolve) => this.#hashRequests.set(requestId, { framed, resolve }));
    try {
      await framed.send(messageKinds.hashRequest, {
        requestId,
        volume: volumeName,
        offsetBytes,
        lengthBytes: primary.length,
        chunkBytes: primary.length,
        atSeq,
      });
      // Short steps, so an answer leaves no long timer behind.
      let hashes: Uint8Array | null | undefined;
      void answered.then((answer) => (hashes = answer));
      const deadlineUs = this.#clock.nowUs() + switchLimits.remoteRestoreReadTimeoutMs * 1000;
      while (hashes === undefined && this.#clock.nowUs() < deadlineUs) await Promise.race([answered, this.#clock.sleep(100)]);
      if (hashes === undefined || hashes === null || hashes.length !== 8) return false;
      const checksum = await createChecksum();
      return new DataView(hashes.buffer, hashes.byteOffset, 8).getBigUint64(0, true) === checksum.hash64(primary);
    } catch (error) {
      if (!(error instanceof ConnectionClosedError)) throw error;
      return false;
    } finally {
      this.#hashRequests.delete(requestId);
    }
  }

  /** Hands a restore message on; false when the session should end. */
  #toRestores(framed: FramedConnection, message: Message): boolean {
    const restores = this.#restores;
    if (restores === null) {
      if (message.kind !== messageKinds.restoreRequest) {
        void framed.sendError("unexpected", `Cannot take a ${message.kind} message: switch ${this.#options.switchId} runs no restores`);
        return false;
      }
      const reason = `Switch ${this.#options.switchId} does not run restores for the appliance`;
      void framed.send(messageKinds.restoreRefused, { requestId: message.body.requestId, refused: reason }).catch((error) => {
        if (!(error instanceof ConnectionClosedError)) this.#noteError("Cannot send a restore refusal", error);
      });
      return true;
    }
    const problem = restores.handle(message);
    if (problem === null) return true;
    void framed.sendError("unexpected", problem);
    return false;
  }

  /** Queues the marker and sends the reply without waiting for it; false when the session should end. */
  #answerSnapshotRequest(framed: FramedConnection, request: SnapshotRequestBody): boolean {
    if (this.#snapshotRepliesSending >= switchLimits.linkSnapshotRepliesSendingMax) {
      void framed.sendError(
        "busy",
        `Cannot answer snapshot request ${request.requestId}: ${this.#snapshotRepliesSending} replies wait to be read ` +
          `(at most ${wireLimits.snapshotRequestsInFlightMax} requests may be unanswered)`,
      );
      return false;
    }
    const reply = this.#takeSnapshotMarker(request);
    if (reply.refused !== undefined) this.#log(reply.refused);
    this.#snapshotRepliesSending++;
    void framed.send(messageKinds.snapshotReply, reply)
      .catch((error) => {
        // The session is ending; its receive loop reports why (the marker stays queued).
        if (!(error instanceof ConnectionClosedError)) this.#noteError("Cannot send a snapshot reply", error);
      })
      .finally(() => this.#snapshotRepliesSending--);
    return true;
  }

  /** The marker's seq, or why the splitter took none. */
  #takeSnapshotMarker(request: SnapshotRequestBody): SnapshotReplyBody {
    const splitter = this.#byName.get(request.volume);
    if (splitter === undefined) {
      return refusal(request, `Volume "${request.volume}" is not protected by switch ${this.#options.switchId}`);
    }
    try {
      const seq = request.remove === true ? splitter.snapshotRemoved(request.name) : splitter.snapshot(request.name);
      return { requestId: request.requestId, seq };
    } catch (error) {
      if (!(error instanceof SplitterError || error instanceof RangeError)) throw error;
      return refusal(request, error.message);
    }
  }

  async #sendLoop(framed: FramedConnection, session: { ended: boolean }): Promise<void> {
    for (;;) {
      if (this.#isStopped() || session.ended) return;
      let sentAny = false;
      for (let index = 0; index < this.#splitters.length; index++) {
        if (await this.#sendNext(framed, index)) sentAny = true;
      }
      if (!sentAny && !session.ended) await this.#waitForSignal();
    }
  }

  /** Sends the next batch or marker of one volume; false when it has nothing to send. */
  async #sendNext(framed: FramedConnection, index: number): Promise<boolean> {
    const splitter = this.#splitters[index];
    const fromSeq = Math.max(this.#sentSeqs[index], splitter.acknowledgedSeq) + 1;
    if (fromSeq >= splitter.nextSeq) return false;
    const marker = splitter.markerAt(fromSeq);
    if (marker !== undefined) {
      await framed.send(messageKinds.mark, {
        volume: splitter.name,
        seq: marker.seq,
        timeUs: marker.timeUs,
        kind: marker.kind,
        detail: marker.detail,
      });
      this.#sentSeqs[index] = fromSeq;
      return true;
    }
    const encoder = this.#encoder;
    encoder.begin(splitter.name);
    let expectedSeq = fromSeq;
    splitter.copyBuffer.forEachFrom(fromSeq, (entry) => {
      if (entry.seq !== expectedSeq) return false; // a marker comes first
      if (encoder.isFull || encoder.payloadBytes + entry.lengthBytes > switchLimits.linkBatchBytesMax) return false;
      encoder.add(entry);
      expectedSeq++;
    });
    if (encoder.count <= 0) assert(false, `Seq ${fromSeq} of volume "${splitter.name}" is held as a write or a marker`);
    const lastSeq = expectedSeq - 1;
    const headerAndBody = encoder.finish();
    const payload = splitter.lendCopies(fromSeq, lastSeq);
    try {
      // Held: in-process, the appliance reads the ring where it lies, and the loan lasts
      // until it is done with the batch (over TCP the send copies the bytes anyway).
      await framed.sendFrame(headerAndBody, payload, { held: true });
    } finally {
      splitter.endCopyLoan();
    }
    this.#sentSeqs[index] = lastSeq;
    return true;
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = null;
    if (wake !== null) wake();
    else this.#wakePending = true;
  }

  #waitForSignal(): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#interruptSleep = resolve;
      void this.#clock.sleep(ms).then(resolve);
    });
    this.#interruptSleep = null;
  }

  #isStopped(): boolean {
    return this.#state === switchLinkStates.stopped;
  }

  #noteError(context: string, error: unknown): void {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.#lastError = `${context}: ${reason}`;
    this.#log(this.#lastError);
  }
}

function refusal(request: SnapshotRequestBody, reason: string): SnapshotReplyBody {
  const lengthMax = wireLimits.snapshotRefusalLengthMax;
  const refused = reason.length <= lengthMax ? reason : `${reason.slice(0, lengthMax - 3)}...`;
  return { requestId: request.requestId, refused };
}
