// Proves the switch ↔ appliance handshake over an in-test duplex pair: with the same secret
// both sides agree on the volumes and resume points (and seeded nonces reproduce the bytes on
// the wire exactly); with a wrong secret on either side, or an impostor without it, the side
// that checks fails with AuthenticationError and the other side receives nothing but an ERROR
// "auth" (the switch never reveals its volumes, registerVolumes is never called); a version
// mismatch, a refused volume, messages out of order and a peer that hangs up all end in the
// named errors; and fuzzed handshake messages (random valid messages, random bytes, mutated
// transcripts) always end in a named error or a valid handshake, never anything else.
import { frameHeaderBytes } from "../../src/wire/frame.ts";
import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { AssertionError } from "../../src/core/assert.ts";
import { type Checksum, createChecksum } from "../../src/core/checksum.ts";
import { SeededRandom } from "../../src/io/random.ts";
import { ConnectionClosedError } from "../../src/io/transport.ts";
import { AuthenticationError, PeerError, ProtocolError } from "../../src/wire/errors.ts";
import { FramedConnection } from "../../src/wire/framed_connection.ts";
import {
  applianceHandshake,
  type ApplianceHandshakeOptions,
  switchHandshake,
  type SwitchHandshakeOptions,
} from "../../src/wire/handshake.ts";
import { type Message, messageKinds, type VolumeOffer } from "../../src/wire/messages.ts";
import {
  concatBytes,
  duplexPair,
  messageArbitrary,
  rawFrame,
  sampleData,
  type TestConnection,
} from "./wire_support.ts";

let checksum: Checksum;

beforeAll(async () => {
  checksum = await createChecksum();
});

const secret = new TextEncoder().encode("correct horse battery staple");
const otherSecret = new TextEncoder().encode("incorrect horse battery staple");
const volumes: VolumeOffer[] = [
  { name: "db", sizeBytes: 2 ** 30, regionBytes: 2 ** 20 },
  { name: "logs", sizeBytes: 2 ** 28, regionBytes: 2 ** 20 },
];

function switchOptions(overrides: Partial<SwitchHandshakeOptions> = {}): SwitchHandshakeOptions {
  return { secret, switchId: "switch-1", volumes, ...overrides };
}

/** An appliance that knows "db" at seq 41 and takes new volumes; records what it was asked. */
function applianceOptions(overrides: Partial<ApplianceHandshakeOptions> = {}) {
  const calls: { switchId: string; volumes: readonly VolumeOffer[] }[] = [];
  const options: ApplianceHandshakeOptions = {
    secret,
    registerVolumes: (switchId, offered) => {
      calls.push({ switchId, volumes: offered });
      return offered.map((volume) => ({ name: volume.name, durableSeq: volume.name === "db" ? 41 : -1 }));
    },
    ...overrides,
  };
  return { options, calls };
}

async function settle<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

/** The kinds of the messages in a byte transcript (whatever one end sent). */
function kindsIn(end: TestConnection): number[] {
  const kinds: number[] = [];
  const bytes = end.sentBytes;
  let atBytes = 0;
  while (atBytes + frameHeaderBytes <= bytes.length) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + atBytes);
    kinds.push(view.getUint8(3));
    atBytes += frameHeaderBytes + view.getUint32(4, true) + view.getUint32(8, true);
  }
  return kinds;
}

/** A fresh end that receives, then sees closed, everything `end` sent. */
function replay(end: TestConnection): TestConnection {
  const [writer, reader] = duplexPair();
  void writer.send(end.sentBytes).then(() => writer.close());
  return reader;
}

/** Every message a raw end received, decoded (what a misbehaving peer was told). */
async function receivedBy(end: TestConnection): Promise<Message[]> {
  const messages: Message[] = [];
  try {
    for await (const message of new FramedConnection(end)) messages.push(message);
  } catch (error) {
    if (!(error instanceof ProtocolError || error instanceof ConnectionClosedError)) throw error;
  }
  return messages;
}

/** HMAC-SHA256 of the concatenated parts, computed independently of handshake.ts. */
async function hmac(key: Uint8Array, parts: Uint8Array[]): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, concatBytes(parts)));
}

describe("success", () => {
  test("with the same secret both sides agree on volumes and resume points", async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const appliance = applianceOptions();
    const [switchResult, applianceResult] = await Promise.all([
      switchHandshake(new FramedConnection(switchEnd), switchOptions()),
      applianceHandshake(new FramedConnection(applianceEnd), appliance.options),
    ]);
    expect(switchResult.volumes).toEqual([{ name: "db", durableSeq: 41 }, { name: "logs", durableSeq: -1 }]);
    expect(applianceResult).toEqual({
      switchId: "switch-1",
      volumes: [{ ...volumes[0], durableSeq: 41 }, { ...volumes[1], durableSeq: -1 }],
    });
    expect(appliance.calls).toEqual([{ switchId: "switch-1", volumes }]);
    expect(kindsIn(switchEnd)).toEqual([messageKinds.hello, messageKinds.proof]);
    expect(kindsIn(applianceEnd)).toEqual([messageKinds.challenge, messageKinds.welcome]);
    expect(switchEnd.closed || applianceEnd.closed).toBe(false);
  });

  test("the connection carries on after the handshake", async () => {
    const [switchEnd, applianceEnd] = duplexPair({ random: new SeededRandom(3) });
    const switchFramed = new FramedConnection(switchEnd);
    const applianceFramed = new FramedConnection(applianceEnd);
    await Promise.all([
      switchHandshake(switchFramed, switchOptions()),
      applianceHandshake(applianceFramed, applianceOptions().options),
    ]);
    await switchFramed.send(messageKinds.ping, { timeUs: 9 });
    expect(await applianceFramed.receive()).toMatchObject({ kind: messageKinds.ping, body: { timeUs: 9 } });
  });

  test("seeded nonces reproduce the handshake byte for byte; different seeds differ", async () => {
    async function run(seed: number): Promise<Uint8Array> {
      const [switchEnd, applianceEnd] = duplexPair();
      await Promise.all([
        switchHandshake(new FramedConnection(switchEnd), switchOptions({ nonce: new SeededRandom(seed) })),
        applianceHandshake(
          new FramedConnection(applianceEnd),
          applianceOptions({ nonce: new SeededRandom(seed + 1000) }).options,
        ),
      ]);
      return concatBytes([switchEnd.sentBytes, applianceEnd.sentBytes]);
    }
    expect(await run(1)).toEqual(await run(1));
    expect(await run(1)).not.toEqual(await run(2));
  });

  test("the proofs on the wire are HMAC-SHA256 over the label and both nonces, as specified", async () => {
    const switchNonce = sampleData(32, 21);
    const applianceNonce = sampleData(32, 22);
    const [switchEnd, applianceEnd] = duplexPair();
    await Promise.all([
      switchHandshake(new FramedConnection(switchEnd), switchOptions({ nonce: switchNonce })),
      applianceHandshake(new FramedConnection(applianceEnd), applianceOptions({ nonce: applianceNonce }).options),
    ]);
    const [challenge] = await receivedBy(replay(applianceEnd));
    const [, proof] = await receivedBy(replay(switchEnd));
    const label = (text: string) => new TextEncoder().encode(text);
    expect(challenge.body).toEqual({
      nonce: applianceNonce,
      proof: await hmac(secret, [label("anytime-appliance"), switchNonce, applianceNonce]),
    });
    expect((proof.body as { proof: Uint8Array }).proof).toEqual(
      await hmac(secret, [label("anytime-switch"), applianceNonce, switchNonce]),
    );
  });

  test("a switch with no volumes is welcomed with none", async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const [result] = await Promise.all([
      switchHandshake(new FramedConnection(switchEnd), switchOptions({ volumes: [] })),
      applianceHandshake(new FramedConnection(applianceEnd), applianceOptions().options),
    ]);
    expect(result.volumes).toEqual([]);
  });
});

describe("authentication", () => {
  test("different secrets: the switch refuses the appliance's proof and never reveals its volumes", async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const appliance = applianceOptions({ secret: otherSecret });
    const [switchOutcome, applianceOutcome] = await Promise.all([
      settle(switchHandshake(new FramedConnection(switchEnd), switchOptions())),
      settle(applianceHandshake(new FramedConnection(applianceEnd), appliance.options)),
    ]);
    expect(switchOutcome.error).toBeInstanceOf(AuthenticationError);
    expect((switchOutcome.error as Error).message).toMatch(/did not prove the shared secret/);
    expect(applianceOutcome.error).toBeInstanceOf(AuthenticationError);
    expect((applianceOutcome.error as Error).message).toMatch(/refused our proof/);
    expect(kindsIn(switchEnd)).toEqual([messageKinds.hello, messageKinds.error]);
    expect(appliance.calls).toEqual([]);
    expect(switchEnd.closed && applianceEnd.closed).toBe(true);
  });

  test('an impostor switch without the secret gets a CHALLENGE, then only ERROR "auth"', async () => {
    const [impostorEnd, applianceEnd] = duplexPair();
    const appliance = applianceOptions();
    const handshake = settle(applianceHandshake(new FramedConnection(applianceEnd), appliance.options));
    const impostor = new FramedConnection(impostorEnd);
    await impostor.send(messageKinds.hello, {
      protocol: 2,
      role: "switch",
      switchId: "mallory",
      nonce: sampleData(32, 1),
    });
    const challenge = await impostor.receive();
    expect(challenge?.kind).toBe(messageKinds.challenge);
    await impostor.send(messageKinds.proof, { proof: sampleData(32, 2), volumes });
    const told: Message[] = [];
    for await (const message of impostor) told.push(message);
    expect(told.map((message) => message.body)).toEqual([
      { code: "auth", message: expect.stringMatching(/switch "mallory" .* did not prove the shared secret/) },
    ]);
    expect((await handshake).error).toBeInstanceOf(AuthenticationError);
    expect(appliance.calls).toEqual([]);
  });

  test("a switch that echoes the appliance's proof back is refused (labels differ)", async () => {
    const [impostorEnd, applianceEnd] = duplexPair();
    const handshake = settle(applianceHandshake(new FramedConnection(applianceEnd), applianceOptions().options));
    const impostor = new FramedConnection(impostorEnd);
    await impostor.send(messageKinds.hello, {
      protocol: 2,
      role: "switch",
      switchId: "mallory",
      nonce: sampleData(32, 1),
    });
    const challenge = await impostor.receive();
    if (challenge?.kind !== messageKinds.challenge) throw new Error("expected a CHALLENGE");
    await impostor.send(messageKinds.proof, { proof: challenge.body.proof, volumes });
    expect((await handshake).error).toBeInstanceOf(AuthenticationError);
  });

  test("an impostor appliance without the secret learns the switch id and nothing else", async () => {
    const [switchEnd, impostorEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    const impostor = new FramedConnection(impostorEnd);
    expect((await impostor.receive())?.kind).toBe(messageKinds.hello);
    await impostor.send(messageKinds.challenge, { nonce: sampleData(32, 3), proof: sampleData(32, 4) });
    const told: Message[] = [];
    for await (const message of impostor) told.push(message);
    expect(told.map((message) => message.kind)).toEqual([messageKinds.error]);
    expect(told[0].body).toMatchObject({ code: "auth" });
    expect((await handshake).error).toBeInstanceOf(AuthenticationError);
  });

  test("an appliance that reflects the switch's nonce is refused", async () => {
    const [switchEnd, impostorEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    const impostor = new FramedConnection(impostorEnd);
    const hello = await impostor.receive();
    if (hello?.kind !== messageKinds.hello) throw new Error("expected a HELLO");
    await impostor.send(messageKinds.challenge, { nonce: hello.body.nonce, proof: sampleData(32, 4) });
    expect((await handshake).error).toBeInstanceOf(AuthenticationError);
  });

  test("a short secret or a bad nonce is refused before anything is sent", async () => {
    const [switchEnd] = duplexPair();
    await expect(switchHandshake(new FramedConnection(switchEnd), switchOptions({ secret: new Uint8Array(8) })))
      .rejects.toBeInstanceOf(RangeError);
    await expect(switchHandshake(new FramedConnection(switchEnd), switchOptions({ nonce: new Uint8Array(16) })))
      .rejects.toBeInstanceOf(RangeError);
    await expect(switchHandshake(new FramedConnection(switchEnd), switchOptions({ switchId: "" })))
      .rejects.toThrow(/Cannot start the handshake: invalid HELLO/);
    await expect(
      switchHandshake(new FramedConnection(switchEnd), switchOptions({ volumes: [volumes[0], volumes[0]] })),
    ).rejects.toThrow(/repeats volume name "db"/);
    expect(switchEnd.sentChunks).toEqual([]);
  });
});

describe("refusals", () => {
  test('a switch of another protocol version gets ERROR "version" naming both versions', async () => {
    const [peerEnd, applianceEnd] = duplexPair();
    const handshake = settle(applianceHandshake(new FramedConnection(applianceEnd), applianceOptions().options));
    await peerEnd.send(
      rawFrame(checksum, messageKinds.hello, {
        protocol: 3,
        role: "switch",
        switchId: "s",
        nonce: sampleData(32, 1),
        v3: true,
      }),
    );
    const told = await receivedBy(peerEnd);
    expect(told.map((message) => message.body)).toEqual([
      { code: "version", message: "The peer speaks protocol version 3; this side speaks version 2" },
    ]);
    const { error } = await handshake;
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("version");
  });

  test('a switch told "version" by an appliance of another version fails with PeerError "version"', async () => {
    const [switchEnd, peerEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    const peer = new FramedConnection(peerEnd);
    await peer.receive();
    await peer.sendError("version", "The peer speaks protocol version 1; this side speaks version 2");
    const { error } = await handshake;
    expect(error).toBeInstanceOf(PeerError);
    expect((error as PeerError).code).toBe("version");
    expect((error as Error).message).toMatch(/version 1; this side speaks version 2/);
  });

  test('registerVolumes refusing a volume sends ERROR "volume" with its message to the switch', async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const refusal = new RangeError('Volume "logs" is 268435456 bytes here, the switch says 1073741824');
    const [switchOutcome, applianceOutcome] = await Promise.all([
      settle(switchHandshake(new FramedConnection(switchEnd), switchOptions())),
      settle(applianceHandshake(
        new FramedConnection(applianceEnd),
        applianceOptions({
          registerVolumes: () => {
            throw refusal;
          },
        }).options,
      )),
    ]);
    expect(switchOutcome.error).toBeInstanceOf(PeerError);
    expect((switchOutcome.error as PeerError).code).toBe("volume");
    expect((switchOutcome.error as Error).message).toContain(refusal.message);
    expect(applianceOutcome.error).toBe(refusal);
  });

  test("an asynchronous registerVolumes works like a synchronous one", async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const [result] = await Promise.all([
      switchHandshake(new FramedConnection(switchEnd), switchOptions()),
      applianceHandshake(
        new FramedConnection(applianceEnd),
        applianceOptions({
          registerVolumes: async (_switchId, offered) => {
            await Promise.resolve();
            return offered.map((volume) => ({ name: volume.name, durableSeq: 7 })).reverse();
          },
        }).options,
      ),
    ]);
    expect(result.volumes).toEqual([{ name: "logs", durableSeq: 7 }, { name: "db", durableSeq: 7 }]);
  });

  test('a WRITE instead of HELLO gets ERROR "unexpected"', async () => {
    const [peerEnd, applianceEnd] = duplexPair();
    const handshake = settle(applianceHandshake(new FramedConnection(applianceEnd), applianceOptions().options));
    await new FramedConnection(peerEnd).send(messageKinds.ping, { timeUs: 1 });
    const told = await receivedBy(peerEnd);
    expect(told.map((message) => message.body)).toEqual([
      { code: "unexpected", message: "Expected HELLO during the handshake, got PING" },
    ]);
    expect(((await handshake).error as ProtocolError).code).toBe("unexpected");
  });

  test('a WELCOME before the CHALLENGE gets ERROR "unexpected" and no volumes', async () => {
    const [switchEnd, peerEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    const peer = new FramedConnection(peerEnd);
    await peer.receive();
    await peer.send(messageKinds.welcome, { volumes: [{ name: "db", durableSeq: 1 }] });
    const told = await receivedBy(peerEnd);
    expect(told.map((message) => message.kind)).toEqual([messageKinds.error]);
    expect(((await handshake).error as ProtocolError).code).toBe("unexpected");
  });

  test('a WELCOME that leaves out a volume is refused with ERROR "unexpected"', async () => {
    // An appliance that knows the secret but answers for "db" only.
    const [switchEnd, peerEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    const peer = new FramedConnection(peerEnd);
    const hello = await peer.receive();
    if (hello?.kind !== messageKinds.hello) throw new Error("expected a HELLO");
    const applianceNonce = sampleData(32, 5);
    const proof = await hmac(secret, [new TextEncoder().encode("anytime-appliance"), hello.body.nonce, applianceNonce]);
    await peer.send(messageKinds.challenge, { nonce: applianceNonce, proof });
    expect((await peer.receive())?.kind).toBe(messageKinds.proof);
    await peer.send(messageKinds.welcome, { volumes: [{ name: "db", durableSeq: 1 }] });
    const told = await receivedBy(peerEnd);
    expect(told.map((message) => message.body)).toEqual([
      { code: "unexpected", message: 'Invalid WELCOME: no answer for volume "logs"' },
    ]);
    expect(((await handshake).error as ProtocolError).code).toBe("unexpected");
  });

  test("a registerVolumes answer that leaves out a volume fails an assertion, and the switch is told", async () => {
    const [switchEnd, applianceEnd] = duplexPair();
    const [switchOutcome, applianceOutcome] = await Promise.all([
      settle(switchHandshake(new FramedConnection(switchEnd), switchOptions())),
      settle(applianceHandshake(
        new FramedConnection(applianceEnd),
        applianceOptions({
          registerVolumes: () => [{ name: "db", durableSeq: 1 }],
        }).options,
      )),
    ]);
    expect(applianceOutcome.error).toBeInstanceOf(AssertionError);
    expect(switchOutcome.error).toBeInstanceOf(PeerError);
    expect((switchOutcome.error as PeerError).code).toBe("internal");
  });

  test('a peer that hangs up mid-handshake is ProtocolError "closed"', async () => {
    const [switchEnd, peerEnd] = duplexPair();
    const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
    await new FramedConnection(peerEnd).receive();
    await peerEnd.close();
    const { error } = await handshake;
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("closed");
  });
});

describe("fuzzing", () => {
  /** A named, expected failure (or a transport end caused by the peer's close). */
  function isNamedFailure(error: unknown): boolean {
    return error instanceof AuthenticationError || error instanceof PeerError || error instanceof ProtocolError ||
      error instanceof ConnectionClosedError;
  }

  test("random valid messages sent to the appliance never get past authentication", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(messageArbitrary(checksum), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        async (samples, seed) => {
          const [peerEnd, applianceEnd] = duplexPair({ random: new SeededRandom(seed) });
          const appliance = applianceOptions();
          const handshake = settle(applianceHandshake(new FramedConnection(applianceEnd), appliance.options));
          const peer = new FramedConnection(peerEnd);
          for (const sample of samples) {
            await peer.send(sample.kind, sample.body as never, sample.payload).catch(() => undefined);
          }
          await peer.close();
          const { error } = await handshake;
          expect(isNamedFailure(error)).toBe(true);
          expect(appliance.calls).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  test("random valid messages sent to the switch never get its volumes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(messageArbitrary(checksum), { minLength: 1, maxLength: 4 }), async (samples) => {
        const [switchEnd, peerEnd] = duplexPair();
        const handshake = settle(switchHandshake(new FramedConnection(switchEnd), switchOptions()));
        const peer = new FramedConnection(peerEnd);
        for (const sample of samples) {
          await peer.send(sample.kind, sample.body as never, sample.payload).catch(() => undefined);
        }
        await peer.close();
        expect(isNamedFailure((await handshake).error)).toBe(true);
        expect(kindsIn(switchEnd)).not.toContain(messageKinds.proof);
      }),
      { numRuns: 150 },
    );
  });

  test("random bytes sent to either side end in a named failure", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, toSwitch) => {
        const [peerEnd, end] = duplexPair();
        const framed = new FramedConnection(end);
        const handshake = settle<unknown>(
          toSwitch ? switchHandshake(framed, switchOptions()) : applianceHandshake(framed, applianceOptions().options),
        );
        await peerEnd.send(bytes).catch(() => undefined);
        await peerEnd.close();
        expect(isNamedFailure((await handshake).error)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  test("a mutated switch transcript replayed to the appliance ends in a named failure or a valid handshake", async () => {
    // Record a real switch transcript with fixed nonces, so that replaying it is a valid run.
    const switchNonce = sampleData(32, 11);
    const applianceNonce = sampleData(32, 12);
    const [switchEnd, applianceEnd] = duplexPair();
    await Promise.all([
      switchHandshake(new FramedConnection(switchEnd), switchOptions({ nonce: switchNonce })),
      applianceHandshake(new FramedConnection(applianceEnd), applianceOptions({ nonce: applianceNonce }).options),
    ]);
    const transcript = switchEnd.sentBytes;
    await fc.assert(
      fc.asyncProperty(fc.nat(transcript.length - 1), fc.integer({ min: 1, max: 255 }), async (at, delta) => {
        const mutated = transcript.slice();
        mutated[at] = (mutated[at] + delta) & 0xff;
        const [peerEnd, end] = duplexPair();
        const appliance = applianceOptions({ nonce: applianceNonce });
        const handshake = settle(applianceHandshake(new FramedConnection(end), appliance.options));
        await peerEnd.send(mutated).catch(() => undefined);
        const outcome = await handshake;
        if (outcome.error !== undefined) {
          expect(isNamedFailure(outcome.error)).toBe(true);
        } else {
          // Only bytes the proof does not cover (switch id, volume fields) can change and pass.
          expect(appliance.calls.length).toBe(1);
        }
        await peerEnd.close();
      }),
      { numRuns: 400 },
    );
  });
});
