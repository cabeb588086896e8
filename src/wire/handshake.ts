/**
 * The connection handshake between a switch and an appliance: protocol version, role, mutual
 * proof of a shared secret, then the switch's volumes and, for each, the last seq the
 * appliance holds durably (so a reconnecting switch resumes exactly).
 *
 * ```
 * switch                                          appliance
 *   HELLO {protocol, role, switchId, nonceS}  →
 *                                             ←  CHALLENGE {nonceA, proofA}
 *   (checks proofA before revealing anything)
 *   PROOF {proofS, volumes}                   →
 *                                                (checks proofS before looking at volumes)
 *                                             ←  WELCOME {volumes: [{name, durableSeq}]}
 * ```
 *
 * proofA = HMAC-SHA256(secret, "anytime-appliance" ‖ nonceS ‖ nonceA) and
 * proofS = HMAC-SHA256(secret, "anytime-switch" ‖ nonceA ‖ nonceS): each side's nonce makes
 * the other side's proof fresh, and the distinct labels stop a proof being reflected back.
 * The appliance proves first, so a switch never tells an impostor its volumes; the appliance
 * says nothing about volumes until the switch has proved too. Proofs are compared in constant
 * time. A peer without the secret gets an ERROR `"auth"` and a closed connection.
 *
 * What it does not do: it authenticates the peers but neither encrypts the connection nor
 * binds the proof to it, so an attacker on the path could relay a whole handshake and then
 * read the stream. Run it over a trusted network, or a tunnel (TLS, WireGuard) otherwise.
 *
 * Every failure closes the connection, after an ERROR when this side is the one refusing:
 * `"auth"` (proof mismatch), `"volume"` (the appliance refused a volume), `"unexpected"` (a
 * valid message out of order, or a WELCOME that does not answer every volume), `"internal"`
 * (`registerVolumes` returned a broken answer: an assertion fails on the appliance), or a
 * {@link ProtocolError} code (bad frames or bodies, `"version"` for a HELLO of another
 * protocol version). The functions reject with
 * {@link AuthenticationError}, {@link PeerError} (the peer sent ERROR), {@link ProtocolError},
 * or the error `registerVolumes` threw.
 *
 * Timeouts are the caller's job: a peer that stops answering leaves a step waiting forever.
 * Race the handshake against `clock.sleep(...)` and close the connection when the sleep wins;
 * the pending step then rejects (`ProtocolError` `"closed"`, or the transport's error).
 *
 * @example
 * ```ts
 * import type { FramedConnection } from "./framed_connection.ts";
 * import { applianceHandshake, switchHandshake } from "./handshake.ts";
 *
 * async function connectSwitch(framed: FramedConnection, secret: Uint8Array) {
 *   const { volumes } = await switchHandshake(framed, {
 *     secret,
 *     switchId: "switch-1",
 *     volumes: [{ name: "db", sizeBytes: 1 << 30, regionBytes: 1 << 20 }],
 *   });
 *   return volumes; // [{ name: "db", durableSeq: -1 }] for a new volume
 * }
 *
 * async function acceptSwitch(framed: FramedConnection, secret: Uint8Array) {
 *   return await applianceHandshake(framed, {
 *     secret,
 *     registerVolumes: (switchId, volumes) => volumes.map((volume) => ({ name: volume.name, durableSeq: -1 })),
 *   });
 * }
 * ```
 */
import { assert } from "../core/assert.ts";
import { fillRandom, type Random } from "../io/random.ts";
import { AuthenticationError, PeerError, ProtocolError } from "./errors.ts";
import type { FramedConnection } from "./framed_connection.ts";
import {
  type Message,
  type MessageKind,
  messageKindName,
  messageKinds,
  type MessageOf,
  messageProblem,
  type VolumeOffer,
  type VolumeResume,
  wireProtocolVersion,
} from "./messages.ts";
import { wireLimits } from "../core/limits.ts";

/** A volume as the appliance accepted it: the switch's offer and where to resume. */
export interface RegisteredVolume extends VolumeOffer {
  readonly durableSeq: number;
}

/** Options of {@link switchHandshake}. */
export interface SwitchHandshakeOptions {
  /** The shared secret, at least {@link wireLimits.secretBytesMin} bytes. */
  readonly secret: Uint8Array;
  readonly switchId: string;
  /** The volumes this switch protects (names unique). */
  readonly volumes: readonly VolumeOffer[];
  /**
   * The switch nonce, or the `Random` to draw it from (simulation); by default
   * `crypto.getRandomValues`. Never reuse a fixed nonce outside tests.
   */
  readonly nonce?: Uint8Array | Random;
}

/** What the switch learns: where to resume each volume. */
export interface SwitchHandshakeResult {
  readonly volumes: readonly VolumeResume[];
}

/** Options of {@link applianceHandshake}. */
export interface ApplianceHandshakeOptions {
  readonly secret: Uint8Array;
  /**
   * Accepts the volumes of an authenticated switch and says where each resumes (one entry per
   * volume, any order), or throws to refuse (unknown volume, size mismatch): the switch gets
   * ERROR `"volume"` with the error's message.
   */
  readonly registerVolumes: (
    switchId: string,
    volumes: readonly VolumeOffer[],
  ) => readonly VolumeResume[] | Promise<readonly VolumeResume[]>;
  /** The appliance nonce, or the `Random` to draw it from; by default `crypto.getRandomValues`. */
  readonly nonce?: Uint8Array | Random;
}

/** What the appliance learns: who connected and its volumes with their resume points. */
export interface ApplianceHandshakeResult {
  readonly switchId: string;
  readonly volumes: readonly RegisteredVolume[];
}

const encoder = new TextEncoder();
const applianceLabel = encoder.encode("anytime-appliance");
const switchLabel = encoder.encode("anytime-switch");

/**
 * The switch's side of the handshake.
 *
 * @throws {RangeError} for bad options (short secret, bad nonce, volumes that no PROOF could
 * carry), before anything is sent.
 */
export async function switchHandshake(
  connection: FramedConnection,
  options: SwitchHandshakeOptions,
): Promise<SwitchHandshakeResult> {
  const key = await importSecret(options.secret);
  const switchNonce = drawNonce(options.nonce);
  const hello = {
    protocol: wireProtocolVersion,
    role: "switch",
    switchId: options.switchId,
    nonce: switchNonce,
  } as const;
  checkOwnBody(messageKinds.hello, hello);
  checkOwnBody(messageKinds.proof, { proof: new Uint8Array(wireLimits.proofBytes), volumes: options.volumes });

  type State =
    | { readonly name: "awaitChallenge" }
    | { readonly name: "awaitWelcome" };
  let state: State = { name: "awaitChallenge" };
  await connection.send(messageKinds.hello, hello);
  for (;;) {
    switch (state.name) {
      case "awaitChallenge": {
        const challenge = await receiveExpected(connection, messageKinds.challenge);
        const applianceNonce = challenge.body.nonce;
        const expected = await prove(key, applianceLabel, switchNonce, applianceNonce);
        if (constantTimeEqual(applianceNonce, switchNonce) || !constantTimeEqual(challenge.body.proof, expected)) {
          return await refuse(
            connection,
            "auth",
            new AuthenticationError(
              `The appliance at ${connection.remoteAddress} did not prove the shared secret (check the secret file on both sides)`,
            ),
          );
        }
        const proof = await prove(key, switchLabel, applianceNonce, switchNonce);
        await connection.send(messageKinds.proof, { proof, volumes: options.volumes });
        state = { name: "awaitWelcome" };
        break;
      }
      case "awaitWelcome": {
        const welcome = await receiveExpected(connection, messageKinds.welcome);
        const problem = resumeListProblem(options.volumes, welcome.body.volumes);
        if (problem !== null) {
          return await refuse(connection, "unexpected", new ProtocolError("unexpected", `Invalid WELCOME: ${problem}`));
        }
        return { volumes: welcome.body.volumes };
      }
    }
  }
}

/**
 * The appliance's side of the handshake.
 *
 * @throws {RangeError} for bad options (short secret, bad nonce), before anything is received.
 */
export async function applianceHandshake(
  connection: FramedConnection,
  options: ApplianceHandshakeOptions,
): Promise<ApplianceHandshakeResult> {
  const key = await importSecret(options.secret);
  const applianceNonce = drawNonce(options.nonce);

  type State =
    | { readonly name: "awaitHello" }
    | { readonly name: "awaitProof"; readonly switchId: string; readonly switchNonce: Uint8Array };
  let state: State = { name: "awaitHello" };
  for (;;) {
    switch (state.name) {
      case "awaitHello": {
        const hello = await receiveExpected(connection, messageKinds.hello);
        const switchNonce = hello.body.nonce;
        if (constantTimeEqual(switchNonce, applianceNonce)) {
          return await refuse(connection, "auth", new AuthenticationError("The switch sent the appliance's own nonce"));
        }
        const proof = await prove(key, applianceLabel, switchNonce, applianceNonce);
        await connection.send(messageKinds.challenge, { nonce: applianceNonce, proof });
        state = { name: "awaitProof", switchId: hello.body.switchId, switchNonce };
        break;
      }
      case "awaitProof": {
        const proofMessage = await receiveExpected(connection, messageKinds.proof);
        const expected = await prove(key, switchLabel, applianceNonce, state.switchNonce);
        if (!constantTimeEqual(proofMessage.body.proof, expected)) {
          return await refuse(
            connection,
            "auth",
            new AuthenticationError(
              `The switch "${state.switchId}" at ${connection.remoteAddress} did not prove the shared secret`,
            ),
          );
        }
        const offers = proofMessage.body.volumes;
        let resumes: readonly VolumeResume[];
        try {
          resumes = await options.registerVolumes(state.switchId, offers);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          await connection.sendError("volume", message);
          throw error;
        }
        const problem = messageProblem(messageKinds.welcome, { volumes: resumes }, 0) ??
          resumeListProblem(offers, resumes);
        if (problem !== null) {
          // A bug on this side: tell the switch, so it does not wait, then fail loudly.
          await connection.sendError("internal", "The appliance failed to register the volumes");
          assert(false, `registerVolumes returned an invalid answer: ${problem}`);
        }
        await connection.send(messageKinds.welcome, { volumes: resumes });
        const durableSeqs = new Map(resumes.map((resume) => [resume.name, resume.durableSeq]));
        return {
          switchId: state.switchId,
          volumes: offers.map((offer) => ({ ...offer, durableSeq: durableSeqs.get(offer.name) ?? -1 })),
        };
      }
    }
  }
}

/**
 * The next message, which must be of `kind`. An ERROR from the peer becomes
 * {@link AuthenticationError} (code `"auth"`) or {@link PeerError}; any other kind is refused
 * with ERROR `"unexpected"`; the end of the connection is a {@link ProtocolError} `"closed"`.
 */
async function receiveExpected<K extends MessageKind>(connection: FramedConnection, kind: K): Promise<MessageOf<K>> {
  const expected = messageKindName(kind);
  const message: Message | undefined = await connection.receive();
  if (message === undefined) {
    await connection.close();
    throw new ProtocolError(
      "closed",
      `The peer at ${connection.remoteAddress} closed the connection before ${expected}`,
    );
  }
  if (message.kind === messageKinds.error) {
    await connection.close();
    const { code, message: text } = message.body;
    if (code === "auth") {
      throw new AuthenticationError(`The peer at ${connection.remoteAddress} refused our proof: ${text}`);
    }
    throw new PeerError(code, `The peer at ${connection.remoteAddress} refused the handshake (${code}): ${text}`);
  }
  if (message.kind !== kind) {
    const got = messageKindName(message.kind);
    return await refuse(
      connection,
      "unexpected",
      new ProtocolError("unexpected", `Expected ${expected} during the handshake, got ${got}`),
    );
  }
  return message as MessageOf<K>;
}

/** Sends ERROR `code` with the error's message, closes, and throws `error`. */
async function refuse(connection: FramedConnection, code: string, error: Error): Promise<never> {
  await connection.sendError(code, error.message);
  throw error;
}

/** Every offered volume answered exactly once, nothing else. */
function resumeListProblem(offers: readonly VolumeOffer[], resumes: readonly VolumeResume[]): string | null {
  const offered = new Set(offers.map((offer) => offer.name));
  for (const resume of resumes) {
    if (!offered.has(resume.name)) return `volume "${resume.name}" was not offered`;
    offered.delete(resume.name);
  }
  if (offered.size > 0) {
    return `no answer for volume${offered.size > 1 ? "s" : ""} ${[...offered].map((n) => `"${n}"`).join(", ")}`;
  }
  return null;
}

/** A body this side is about to send must be valid; bad options are the caller's mistake. */
function checkOwnBody(kind: MessageKind, body: unknown): void {
  const problem = messageProblem(kind, body, 0);
  if (problem !== null) {
    throw new RangeError(`Cannot start the handshake: invalid ${messageKindName(kind)}: ${problem}`);
  }
}

async function importSecret(secret: Uint8Array): Promise<CryptoKey> {
  if (!(secret instanceof Uint8Array) || secret.length < wireLimits.secretBytesMin) {
    throw new RangeError(
      `Cannot use a shared secret of ${secret?.length} bytes: at least ${wireLimits.secretBytesMin} are needed`,
    );
  }
  // A copy: the key must not change if the caller reuses its buffer.
  return await crypto.subtle.importKey("raw", new Uint8Array(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

function drawNonce(source: Uint8Array | Random | undefined): Uint8Array {
  const nonce = new Uint8Array(wireLimits.nonceBytes);
  if (source === undefined) {
    crypto.getRandomValues(nonce);
  } else if (source instanceof Uint8Array) {
    if (source.length !== wireLimits.nonceBytes) {
      throw new RangeError(`Cannot use a nonce of ${source.length} bytes: it must be ${wireLimits.nonceBytes}`);
    }
    nonce.set(source);
  } else {
    fillRandom(source, nonce);
  }
  return nonce;
}

/** HMAC-SHA256(key, label ‖ first ‖ second). */
async function prove(key: CryptoKey, label: Uint8Array, first: Uint8Array, second: Uint8Array): Promise<Uint8Array> {
  const data = new Uint8Array(label.length + first.length + second.length);
  data.set(label, 0);
  data.set(first, label.length);
  data.set(second, label.length + first.length);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

/**
 * Byte-wise equality whose time depends only on the lengths (public: both are fixed sizes),
 * never on where the bytes differ.
 */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}
