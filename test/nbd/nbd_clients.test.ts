/**
 * Proves real NBD clients work against the server over the runtime's TcpTransport on
 * 127.0.0.1 (one suite, Node and Deno): `nbdinfo` lists the exports and reads the size;
 * `qemu-io` writes and reads back a pattern (checked on the device too); `qemu-img convert`
 * copies the export to a file and `qemu-img compare` agrees; `nbdcopy` copies a file in and
 * back out; writes to the read-only export fail with a permission error and change nothing;
 * an unknown export fails cleanly; `fio --ioengine=nbd` random writes verify with crc32c.
 * A missing client fails the test: CI installs them all.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPeer as run, runPeerOk as runOk } from "../support/peers.ts";
import type { Listener } from "../../src/io/transport.ts";
import { runtimeTarget } from "../support/runtime.ts";
import { firstDifference, memoryServer, patternBytes } from "./nbd_support.ts";

const sizeBytes = 16 * 1024 * 1024;

describe("real NBD clients over TCP", () => {
  const fixture = memoryServer({ sizeBytes });
  let listener: Listener;
  let serving: Promise<void>;
  let uri: string;
  let directory: string;

  beforeAll(async () => {
    const target = await runtimeTarget();
    listener = await new target.TcpTransport().listen("127.0.0.1:0");
    serving = fixture.server.serve(listener);
    uri = `nbd://${listener.address}`;
    directory = await target.tempDir();
  });

  afterAll(async () => {
    await listener.close();
    await serving;
    await fixture.server.close();
    await (await runtimeTarget()).removeDir(directory);
  });

  it("nbdinfo lists the exports", async () => {
    const { stdout } = await runOk("nbdinfo", ["--list", uri]);
    expect(stdout).toContain("export=\"disk\"");
    expect(stdout).toContain("export=\"image\"");
    expect(stdout).toContain("a writable disk");
  });

  it("nbdinfo shows an export's size, block sizes and read-only flag", async () => {
    const disk = JSON.parse((await runOk("nbdinfo", ["--json", `${uri}/disk`])).stdout);
    const exportInfo = disk.exports[0];
    expect(exportInfo["export-size"]).toBe(sizeBytes);
    expect(exportInfo["is_read_only"]).toBe(false);
    expect(exportInfo["block_size_minimum"]).toBe(512);
    expect(exportInfo["block_size_preferred"]).toBe(4096);
    expect(exportInfo["block_size_maximum"]).toBe(4 * 1024 * 1024);
    const image = JSON.parse((await runOk("nbdinfo", ["--json", `${uri}/image`])).stdout);
    expect(image.exports[0]["is_read_only"]).toBe(true);
  });

  it("qemu-io writes a pattern and reads it back, and the device holds it", async () => {
    await runOk("qemu-io", ["-f", "raw", "-c", "write -P 0xab 0 64k", "-c", "read -P 0xab 0 64k", `${uri}/disk`]);
    const bytes = fixture.disk.bytes();
    expect(bytes.subarray(0, 65536).every((byte) => byte === 0xab)).toBe(true);
    expect(bytes[65536]).toBe(0);
  });

  it("qemu-io's FUA write, flush, write_zeroes and discard work", async () => {
    await runOk("qemu-io", [
      "-f", "raw",
      "-c", "write -P 0x11 -f 1M 128k",
      "-c", "flush",
      "-c", "write -z 1M 64k",
      "-c", "read -P 0 1M 64k",
      "-c", "read -P 0x11 1088k 64k",
      "-c", "discard 2M 64k",
      `${uri}/disk`,
    ]);
    const bytes = fixture.disk.bytes();
    expect(bytes.subarray(1 << 20, (1 << 20) + 65536).every((byte) => byte === 0)).toBe(true);
    expect(bytes.subarray((1 << 20) + 65536, (1 << 20) + 131072).every((byte) => byte === 0x11)).toBe(true);
  });

  it("qemu-img convert copies the export to a file that qemu-img compare finds equal", async () => {
    const file = join(directory, "copy.raw");
    await runOk("qemu-img", ["convert", "-f", "raw", "-O", "raw", `${uri}/image`, file]);
    expect(firstDifference(new Uint8Array(await readFile(file)), fixture.imageContents)).toBe(-1);
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", `${uri}/image`, file]);
  });

  it("nbdcopy copies a file into the export and back out", async () => {
    const source = join(directory, "source.raw");
    const back = join(directory, "back.raw");
    const contents = patternBytes(sizeBytes, 42);
    await writeFile(source, contents);
    await runOk("nbdcopy", [source, `${uri}/disk`]);
    expect(firstDifference(fixture.disk.bytes(), contents)).toBe(-1);
    await runOk("nbdcopy", [`${uri}/disk`, back]);
    expect(firstDifference(new Uint8Array(await readFile(back)), contents)).toBe(-1);
  });

  it("a write to the read-only export fails with a permission error and changes nothing", async () => {
    const result = await run("qemu-io", ["-f", "raw", "-c", "write -P 0xcd 0 64k", `${uri}/image`]);
    // qemu sees NBD_FLAG_READ_ONLY and refuses to open the export read-write ("Permission
    // denied"); the server's own EPERM for writes is proven in nbd_server.test.ts.
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/permission denied/i);
    const readOnly = await run("qemu-io", ["-r", "-f", "raw", "-c", "write -P 0xcd 0 64k", `${uri}/image`]);
    expect(readOnly.code).not.toBe(0);
    expect(readOnly.stderr).toMatch(/read-only/i);
    expect(result.stdout).not.toMatch(/wrote 65536/);
    expect(firstDifference(fixture.image.bytes(), fixture.imageContents)).toBe(-1);
  });

  it("an unknown export fails cleanly and the server keeps serving", async () => {
    const info = await run("nbdinfo", [`${uri}/nonexistent`]);
    expect(info.code).not.toBe(0);
    expect(info.stderr).toMatch(/unknown|nonexistent/i);
    const qemu = await run("qemu-io", ["-f", "raw", "-c", "read 0 4k", `${uri}/nonexistent`]);
    expect(qemu.code).not.toBe(0);
    await runOk("nbdinfo", [`${uri}/disk`]);
  });

  it("fio random writes over its nbd engine verify with crc32c", async () => {
    const { stdout } = await runOk("fio", [
      "--name=nbd-randwrite",
      "--ioengine=nbd",
      `--uri=${uri}/disk`,
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=16",
      "--size=8m",
      "--verify=crc32c",
      "--direct=1",
      "--verify_state_save=0",
    ]);
    expect(stdout).toMatch(/err= 0/);
  });
});
