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
 */
import { createChecksum } from "../core/checksum.ts";
import type { Clock } from "../io/clock.ts";
import type { Connection, Listener } from "../io/transport.ts";
import { ProtocolError } from "../wire/errors.ts";
import { FramedConnection } from "../wire/framed_connection.ts";
import { applianceHandshake } from "../wire/handshake.ts";
import {
  checksumFromBytes,
  type MarkBody,
  type Message,
  messageKinds,
  type VolumeOffer,
  type VolumeResume,
  type WriteBody,
  writeChecksumProblem,
} from "../wire/messages.ts";
import type { Appliance } from "./appliance.ts";
import { journalRecordKinds } from "./journal_record.ts";
import type { Volume } from "./volume.ts";

/** Options of {@link ApplianceLink}. */
export interface ApplianceLinkOptions {
  /** The switch↔appliance shared secret (at least 16 bytes). */
  readonly secret: Uint8Array;
  /** A switch that has not finished the handshake by then is dropped. */
  readonly handshakeTimeoutMs?: number;
}

/** Accepts switches and journals what they send. */
export class ApplianceLink {
  readonly #appliance: Appliance;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  readonly #options: ApplianceLinkOptions;
  readonly #sessions = new Set<FramedConnection>();
  /** Volume name → sessions streaming it now (a reconnect may overlap the old session's end). */
  readonly #linked = new Map<string, number>();

  constructor(deps: { appliance: Appliance; clock: Clock; log?: (line: string) => void }, options: ApplianceLinkOptions) {
    this.#appliance = deps.appliance;
    this.#clock = deps.clock;
    this.#log = deps.log ?? (() => {});
    this.#options = options;
  }

  /** Switches connected now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Whether a switch streaming `volumeName` is connected now. */
  isLinked(volumeName: string): boolean {
    return (this.#linked.get(volumeName) ?? 0) > 0;
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
      this.#log(`Switch ${switchId} connected from ${framed.remoteAddress} with ${volumes.map((v) => v.name).join(", ")}`);
      const session = new Set(volumes.map((v) => v.name));
      for (const name of session) {
        unsubscribes.push(this.#acknowledge(framed, this.#appliance.volume(name)));
        this.#linked.set(name, (this.#linked.get(name) ?? 0) + 1);
        unsubscribes.push(() => {
          const count = (this.#linked.get(name) ?? 1) - 1;
          if (count > 0) this.#linked.set(name, count);
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
  async #dispatch(framed: FramedConnection, session: ReadonlySet<string>, message: Message): Promise<boolean> {
    switch (message.kind) {
      case messageKinds.write:
        await this.#write(framed, session, message.body, message.payload);
        return false;
      case messageKinds.mark:
        await this.#mark(framed, session, message.body);
        return false;
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
    const entries = body.entries;
    const nextSeq = volume.nextSeq;
    const problem = entries.length === 0
      ? null
      : entries[0].seq > nextSeq
      ? `the batch starts at seq ${entries[0].seq} but the volume's next seq is ${nextSeq} (records are missing)`
      : entries.some((entry, i) => i > 0 && entry.seq !== entries[i - 1].seq + 1)
      ? "the batch's seqs are not consecutive"
      : entries.some((entry) => entry.offsetBytes + entry.lengthBytes > volume.sizeBytes)
      ? `a write ends past the end of the ${volume.sizeBytes}-byte volume`
      : writeChecksumProblem(await createChecksum(), body, payload);
    if (problem !== null) {
      await framed.sendError("write", `Cannot journal the batch for volume "${volume.name}": ${problem}`);
      throw new ProtocolError("bad-body", problem);
    }
    let atBytes = 0;
    for (const entry of entries) {
      const data = payload.subarray(atBytes, atBytes + entry.lengthBytes);
      atBytes += entry.lengthBytes;
      if (entry.seq < volume.nextSeq) continue; // resent after a reconnect: already journaled
      const write = {
        seq: entry.seq,
        timeUs: entry.timeUs,
        offsetBytes: entry.offsetBytes,
        data,
        checksum: checksumFromBytes(entry.checksum),
        checksumVerified: true, // the whole batch was checked above
      };
      if (volume.tryAppendWrite(write) < 0) await volume.appendWrite(write);
    }
  }

  async #mark(framed: FramedConnection, session: ReadonlySet<string>, body: MarkBody): Promise<void> {
    const volume = await this.#sessionVolume(framed, session, body.volume);
    if (body.seq < volume.nextSeq) return; // resent after a reconnect
    if (body.seq > volume.nextSeq) {
      const problem = `the marker has seq ${body.seq} but the volume's next seq is ${volume.nextSeq}`;
      await framed.sendError("write", `Cannot journal the marker for volume "${volume.name}": ${problem}`);
      throw new ProtocolError("bad-body", problem);
    }
    await volume.appendMarker({ seq: body.seq, timeUs: body.timeUs, kind: journalRecordKinds[body.kind], payload: body.detail ?? {} });
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
