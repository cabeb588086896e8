/**
 * Wire benchmarks (issue: "The switch ... wire protocol"), Node target, loopback TCP:
 * WRITE batches of 64 KiB and 4 KiB writes sent to a real `ApplianceLink` + `Appliance` on
 * file stores and journaled durably (the sender waits for the cumulative ACK of everything),
 * next to raw loopback TCP throughput measured in the same run with the same transport.
 *
 * The first two figures use a synthetic switch (handshake + batches straight from memory), not
 * the splitter: they measure the link and the appliance's ingest, the path every write takes.
 * The figures after them (`wire_switch.ts`) go through the real switch: host writes into the
 * splitter, the switch link, an appliance process, and the switch's memory under overload.
 *
 * Environment: BENCH_DIR (default the OS temp dir); BENCH_WIRE_PARTS (default
 * `synthetic,switch64k,switch4k,latency,overload`: the figures to run); BENCH_OVERLOAD_SECONDS (default 20);
 * BENCH_CPU_PROFILE_DIR (unset: no profiles): CPU profiles of both processes over each real-switch
 * throughput run's timed window (`cpu_profile.ts`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../src/appliance/appliance.ts";
import { ApplianceLink } from "../src/appliance/appliance_link.ts";
import { createChecksum } from "../src/core/checksum.ts";
import { FramedConnection } from "../src/wire/framed_connection.ts";
import { switchHandshake } from "../src/wire/handshake.ts";
import { messageKinds } from "../src/wire/messages.ts";
import { WriteBatchEncoder } from "../src/wire/write_batch.ts";
import { FileDurableCell, FileSegmentStore, SystemClock, TcpTransport } from "../targets/node/mod.ts";
import { diskCeilingPhrase } from "./raw_disk.ts";
import { report } from "./report.ts";
import { switchFigures } from "./wire_switch.ts";

const MiB = 1024 * 1024;
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "anytime-wire-"));
const clock = new SystemClock();
const secret = new TextEncoder().encode("benchmark shared secret, 32 bytes");
const transport = new TcpTransport();

/** Raw loopback TCP: 64 KiB chunks, the receiver counts bytes. */
async function rawTcpBytesPerSecond(totalBytes: number): Promise<number> {
  const listener = await transport.listen("127.0.0.1:0");
  const received = (async () => {
    for await (const connection of listener) {
      let bytes = 0;
      for await (const chunk of connection) {
        bytes += chunk.length;
        if (bytes >= totalBytes) break;
      }
      await connection.close();
      return bytes;
    }
    return 0;
  })();
  const client = await transport.connect(listener.address);
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const started = performance.now();
  for (let sent = 0; sent < totalBytes; sent += chunk.length) await client.send(chunk);
  await received;
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  await listener.close();
  return totalBytes / seconds;
}

/** Writes forwarded over loopback TCP to the appliance and journaled durably. */
async function forwardedWritesPerSecond(name: string, count: number, lengthBytes: number, batchEntries: number): Promise<number> {
  const directory = join(root, name);
  const appliance = await Appliance.open({
    clock,
    registry: await FileDurableCell.open(join(directory, "volumes.json")),
    storesFor: async (volume) => ({
      journalStore: await FileSegmentStore.open(join(directory, volume, "journal")),
      mapStore: await FileSegmentStore.open(join(directory, volume, "maps")),
    }),
  });
  const link = new ApplianceLink({ appliance, clock }, { secret });
  const listener = await transport.listen("127.0.0.1:0");
  const serving = link.serve(listener);
  const framed = new FramedConnection(await transport.connect(listener.address));
  const sizeBytes = 16 * 1024 * MiB;
  await switchHandshake(framed, { secret, switchId: "bench", volumes: [{ name: "vol", sizeBytes, regionBytes: MiB }] });
  const checksum = await createChecksum();
  const payload = new Uint8Array(batchEntries * lengthBytes);
  for (let i = 0; i < payload.length; i++) payload[i] = i * 31;
  const entryChecksum = checksum.hash64(payload.subarray(0, lengthBytes));
  const encoder = new WriteBatchEncoder();
  const entry = { seq: 0, timeUs: 0, offsetBytes: 0, lengthBytes, checksum: entryChecksum };
  let ackedSeq = 0;
  const acks = (async () => {
    for await (const message of framed) {
      if (message.kind === messageKinds.ack) ackedSeq = message.body.durableSeq;
      if (ackedSeq >= count) return;
    }
  })();
  const slots = sizeBytes / lengthBytes;
  const started = performance.now();
  for (let seq = 1; seq <= count; seq += batchEntries) {
    encoder.begin("vol");
    for (let i = 0; i < batchEntries && seq + i <= count; i++) {
      // Every slice of the payload holds the same bytes (the pattern's period, 256, divides the
      // write length), so one checksum serves every entry.
      entry.seq = seq + i;
      entry.timeUs = clock.nowUs();
      entry.offsetBytes = ((seq + i) * 7919 % slots) * lengthBytes;
      encoder.add(entry);
    }
    // As the switch link sends: header and body from the encoder's buffer, the data by reference.
    await framed.sendFrame(encoder.finish(), [payload.subarray(0, encoder.payloadBytes)]);
  }
  await acks;
  const seconds = (performance.now() - started) / 1000;
  await framed.send(messageKinds.bye, { reason: "done" });
  await framed.close();
  await listener.close();
  await serving.catch(() => {});
  await appliance.close();
  rmSync(directory, { recursive: true, force: true });
  return count / seconds;
}

/** The link alone: a synthetic switch sending batches from memory. */
async function syntheticFigures(): Promise<void> {
  const raw = await rawTcpBytesPerSecond(4096 * MiB);
  {
    const lengthBytes = 64 * 1024;
    const count = 32_768; // 2 GiB
    const rate = await forwardedWritesPerSecond("w64k", count, lengthBytes, 16);
    const disk = diskCeilingPhrase(root, 1024 * MiB);
    report({
      name: "64 KiB writes forwarded over loopback TCP, journaled durably (synthetic switch)",
      value: (rate * lengthBytes) / MiB,
      unit: "MiB/s",
      peer: "raw loopback TCP, 64 KiB chunks, same transport",
      peerValue: raw / MiB,
      ratio: (rate * lengthBytes) / raw,
      target: "ratio >= 0.7",
      met: (rate * lengthBytes) / raw >= 0.7,
      // Every byte is journaled durably, so the disk bounds the figure: the note says where.
      note: `the journal's ceiling here: ${disk.phrase}, ${(disk.bytesPerSecond / raw).toFixed(2)} of loopback; ` +
        `journaled ${((rate * lengthBytes) / disk.bytesPerSecond).toFixed(2)} of it`,
    });
  }
  {
    const lengthBytes = 4096;
    const count = 300_000;
    const rate = await forwardedWritesPerSecond("w4k", count, lengthBytes, 256);
    report({
      name: "4 KiB writes forwarded over loopback TCP, journaled durably (synthetic switch)",
      value: rate,
      unit: "writes/s",
      peer: "target",
      peerValue: 100_000,
      ratio: rate / 100_000,
      target: ">= 100000 writes/s",
      met: rate >= 100_000,
    });
  }
}

const parts = (process.env.BENCH_WIRE_PARTS ?? "synthetic,switch64k,switch4k,latency,overload").split(",");
if (parts.includes("synthetic")) await syntheticFigures();
await switchFigures(root, parts);
rmSync(root, { recursive: true, force: true });
