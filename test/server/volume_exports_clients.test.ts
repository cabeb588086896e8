/**
 * Proves that real NBD clients work against what a process serves (`VolumeExports` behind
 * `NbdServer` on the runtime's TcpTransport, 127.0.0.1), with the whole write path of
 * `anytime serve`: a Splitter over a memory primary linked to an in-memory appliance through
 * the in-process transport. On the switch export `db`: `qemu-io` writes and reads back
 * patterns, `nbdcopy` copies a file in, and the appliance's image at head then equals the
 * primary byte for byte. On the image `db@seq:N`: `nbdinfo` shows its size and read-only
 * flag, `qemu-img convert` copies it out and `qemu-img compare` agrees, `nbdcopy` copies it
 * out, and writes to it fail with a permission error. `nbdinfo --list` shows the volume and
 * its snapshot image. On the scratch image `db@seq:N+rw`: `qemu-io` writes read back and
 * the journal and head do not change. `fio --ioengine=nbd` random writes verify on the
 * switch export and on the scratch image. A missing client fails the test.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPeer as run, runPeerOk as runOk } from "../support/peers.ts";
import type { Listener } from "../../src/io/transport.ts";
import { NbdServer } from "../../src/nbd/nbd_server.ts";
import { VolumeExports } from "../../src/server/volume_exports.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { firstDifference, patternBytes } from "../nbd/nbd_support.ts";
import { protectedVolume, until } from "./volume_exports_support.ts";

const volumeBytes = 16 * 1024 * 1024;

function expectSame(actual: Uint8Array, expected: Uint8Array, what: string) {
  expect(actual.length, what).toBe(expected.length);
  expect(firstDifference(actual, expected), `${what}: first differing byte`).toBe(-1);
}

function fioArgs(uri: string, name: string): string[] {
  return [
    `--name=${name}`,
    "--ioengine=nbd",
    `--uri=${uri}`,
    "--rw=randwrite",
    "--bs=4k",
    "--iodepth=16",
    "--size=8m",
    "--verify=crc32c",
    "--direct=1",
    "--verify_state_save=0",
  ];
}

describe("real NBD clients against the switch export and the appliance's images", () => {
  let fixture: Awaited<ReturnType<typeof protectedVolume>>;
  let exportsOf: VolumeExports;
  let server: NbdServer;
  let listener: Listener;
  let serving: Promise<void>;
  let uri: string;
  let directory: string;
  const logs: string[] = [];
  /** The point the image tests open, and the primary's bytes at it. */
  let imageSeq = 0;
  let imageBytes: Uint8Array;

  beforeAll(async () => {
    const target = await runtimeTarget();
    fixture = await protectedVolume({ name: "db", volumeBytes, clock: new target.SystemClock() });
    exportsOf = new VolumeExports({
      appliance: fixture.appliance,
      splitters: new Map([["db", fixture.splitter]]),
      log: (line) => logs.push(line),
    });
    server = new NbdServer(exportsOf);
    listener = await new target.TcpTransport().listen("127.0.0.1:0");
    serving = server.serve(listener);
    uri = `nbd://${listener.address}`;
    directory = await target.tempDir();
  });

  afterAll(async () => {
    await listener.close();
    await serving;
    await server.close();
    await fixture.stop();
    await (await runtimeTarget()).removeDir(directory);
  });

  async function expectHeadEqualsPrimary(what: string) {
    await fixture.journaled();
    const volume = fixture.appliance.volume("db");
    const image = volume.openImage("head");
    expect(image.point.seq).toBe(fixture.splitter.nextSeq - 1);
    const bytes = new Uint8Array(volumeBytes);
    await image.read(0, bytes);
    expectSame(bytes, fixture.primary.bytes(), what);
  }

  it("qemu-io writes patterns through the switch and reads them back", async () => {
    await runOk("qemu-io", [
      "-f", "raw",
      "-c", "write -P 0xab 0 64k",
      "-c", "write -P 0x5c -f 1M 128k",
      "-c", "write -z 2M 64k",
      "-c", "flush",
      "-c", "read -P 0xab 0 64k",
      "-c", "read -P 0x5c 1M 128k",
      "-c", "read -P 0 2M 64k",
      `${uri}/db`,
    ]);
    const bytes = fixture.primary.bytes();
    expect(bytes.subarray(0, 65536).every((byte) => byte === 0xab)).toBe(true);
    expect(bytes.subarray(1 << 20, (1 << 20) + 131072).every((byte) => byte === 0x5c)).toBe(true);
    await expectHeadEqualsPrimary("the image at head after qemu-io");
    imageSeq = fixture.splitter.nextSeq - 1;
    imageBytes = fixture.primary.bytes();
    expect(fixture.splitter.snapshot("after-qemu-io")).toBe(imageSeq + 1);
  });

  it("nbdcopy copies a file in through the switch, and the image at head equals the primary", async () => {
    const source = join(directory, "source.raw");
    const contents = patternBytes(volumeBytes, 42);
    await writeFile(source, contents);
    await runOk("nbdcopy", [source, `${uri}/db`]);
    expectSame(fixture.primary.bytes(), contents, "the primary after nbdcopy");
    await expectHeadEqualsPrimary("the image at head after nbdcopy");
  });

  it("nbdinfo shows an image's size and read-only flag", async () => {
    const info = JSON.parse((await runOk("nbdinfo", ["--json", `${uri}/db@seq:${imageSeq}`])).stdout);
    expect(info.exports[0]["export-size"]).toBe(volumeBytes);
    expect(info.exports[0]["is_read_only"]).toBe(true);
    expect(info.exports[0]["description"]).toMatch(new RegExp(`^volume db at seq:${imageSeq} \\(`));
    const volume = JSON.parse((await runOk("nbdinfo", ["--json", `${uri}/db`])).stdout);
    expect(volume.exports[0]["is_read_only"]).toBe(false);
  });

  it("qemu-img convert copies an image out and qemu-img compare finds it equal", async () => {
    const file = join(directory, "image.raw");
    await runOk("qemu-img", ["convert", "-f", "raw", "-O", "raw", `${uri}/db@seq:${imageSeq}`, file]);
    expectSame(new Uint8Array(await readFile(file)), imageBytes, "qemu-img convert of the image");
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", `${uri}/db@seq:${imageSeq}`, file]);
    // The snapshot names the same state.
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", `${uri}/db@snap:after-qemu-io`, file]);
  });

  it("nbdcopy copies an image out", async () => {
    const file = join(directory, "nbdcopy-out.raw");
    await runOk("nbdcopy", [`${uri}/db@seq:${imageSeq}`, file]);
    expectSame(new Uint8Array(await readFile(file)), imageBytes, "nbdcopy of the image");
  });

  it("a write to an image fails with a permission error and changes nothing", async () => {
    const journalBytes = fixture.appliance.volume("db").journalBytes;
    const result = await run("qemu-io", ["-f", "raw", "-c", "write -P 0xcd 0 64k", `${uri}/db@seq:${imageSeq}`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/permission denied/i);
    const readOnly = await run("qemu-io", ["-r", "-f", "raw", "-c", "write -P 0xcd 0 64k", `${uri}/db@seq:${imageSeq}`]);
    expect(readOnly.code).not.toBe(0);
    expect(readOnly.stderr).toMatch(/read-only/i);
    expect(fixture.appliance.volume("db").journalBytes).toBe(journalBytes);
    const check = join(directory, "after-refused-write.raw");
    await runOk("nbdcopy", [`${uri}/db@seq:${imageSeq}`, check]);
    expectSame(new Uint8Array(await readFile(check)), imageBytes, "the image after the refused write");
  });

  it("nbdinfo --list shows the volume and its snapshot image", async () => {
    const { stdout } = await runOk("nbdinfo", ["--list", uri]);
    expect(stdout).toContain('export="db":');
    expect(stdout).toContain('export="db@snap:after-qemu-io":');
    expect(stdout).toMatch(/volume db, snapshot after-qemu-io, at seq:\d+ \(/);
  });

  it("a point outside the retained range fails, and the client is told the range", async () => {
    const info = await run("nbdinfo", [`${uri}/db@seq:999999`]);
    expect(info.code).not.toBe(0);
    // libnbd prints only the error code; qemu prints the server's message.
    const qemu = await run("qemu-img", ["info", `${uri}/db@seq:999999`]);
    expect(qemu.code).not.toBe(0);
    expect(qemu.stderr).toMatch(/server reported: .*Point seq:999999 of volume "db" is outside the retained range seq:0 \(/);
  });

  it("qemu-io writes to a scratch image read back, and the journal does not change", async () => {
    const volume = fixture.appliance.volume("db");
    const journalBytes = volume.journalBytes;
    const head = volume.head;
    await runOk("qemu-io", [
      "-f", "raw",
      "-c", "write -P 0x77 0 64k",
      "-c", "write -P 0x78 4608 1k",
      "-c", "read -P 0x77 0 4608",
      "-c", "read -P 0x78 4608 1k",
      "-c", "read -P 0x77 5632 59904",
      "-c", "read -P 0x5c 1M 128k",
      `${uri}/db@seq:${imageSeq}+rw`,
    ]);
    expect(volume.journalBytes).toBe(journalBytes);
    expect(volume.head).toEqual(head);
    // The server closes the scratch image when it sees the connection end (after qemu-io exits).
    await until(() => exportsOf.openWritableImageCount === 0, "the scratch image is closed");
  });

  it("fio random writes verify with crc32c on the switch export", async () => {
    const { stdout } = await runOk("fio", fioArgs(`${uri}/db`, "switch-randwrite"));
    expect(stdout).toMatch(/err= 0/);
    await expectHeadEqualsPrimary("the image at head after fio");
  });

  it("fio random writes verify with crc32c on a scratch image, leaving the journal alone", async () => {
    const volume = fixture.appliance.volume("db");
    const journalBytes = volume.journalBytes;
    const { stdout } = await runOk("fio", fioArgs(`${uri}/db@seq:${imageSeq}+rw`, "overlay-randwrite"));
    expect(stdout).toMatch(/err= 0/);
    expect(volume.journalBytes).toBe(journalBytes);
    expect(logs.filter((line) => /Unexpected/.test(line))).toEqual([]);
  });
});
