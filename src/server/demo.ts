/**
 * `anytime demo`: a guided tour on a temporary directory that needs nothing else (SPEC.md).
 * It starts a real `anytime serve` in this process (NBD and HTTP on free loopback ports),
 * writes a recognizable "document" through the switch (the path an NBD host's writes take),
 * takes a snapshot through the real CLI and HTTP API, keeps editing, "corrupts" the
 * document, walks back write by write to find the last good point, shows the diff, restores
 * the volume to it, and prints at each step the command a user would type to do the same.
 *
 * @module
 */
import { runCli } from "../cli/main.ts";
import type { CliDeps } from "../cli/cli_deps.ts";
import { formatTimeUs } from "../core/units.ts";
import { startServe, type ServerRuntime } from "./processes.ts";

/** What the demo needs beyond a server runtime. */
export interface DemoDeps {
  readonly runtime: ServerRuntime;
  /** The CLI's dependencies (fetch, terminal...); env and processCommands are the demo's own. */
  readonly cli: Omit<CliDeps, "env" | "processCommands">;
  makeTempDirectory(): Promise<string>;
  removeDirectory(path: string): Promise<void>;
}

const documentOffsetBytes = 1024 * 1024;
const documentBytes = 4096;
const volumeBytes = 64 * 1024 * 1024;

/** Runs the tour; resolves to the exit code (0 when every step worked). */
export async function runDemo(deps: DemoDeps, options: { keep?: boolean } = {}): Promise<number> {
  const { runtime } = deps;
  const say = (text: string) => deps.cli.stdout(`${text}\n`);
  const directory = await deps.makeTempDirectory();
  const imagePath = runtime.fileSystem.joinPath(directory, "demo.img");
  const dataDirectory = runtime.fileSystem.joinPath(directory, "data");
  await say("== 1. Protect a volume (switch and appliance in one process)");
  await say(`$ anytime serve --data ${dataDirectory} --volume demo=${imagePath}:64MiB --nbd 127.0.0.1:0 --http 127.0.0.1:0`);
  const quietRuntime: ServerRuntime = { ...runtime, log: () => {} };
  const running = await startServe(quietRuntime, {
    dataDirectory,
    volumes: [{ name: "demo", path: imagePath, sizeBytes: volumeBytes }],
    nbdAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
  });
  let exitCode = 0;
  try {
    await say(running.banner.join("\n"));
    const cliEnv = {
      ANYTIME_API: `http://${running.httpAddress}`,
      ANYTIME_TOKEN_FILE: runtime.fileSystem.joinPath(dataDirectory, "token"),
    };
    const cli = async (...argv: string[]) => {
      await say(`\n$ anytime ${argv.join(" ")}`);
      const code = await runCli(argv, { ...deps.cli, env: cliEnv });
      if (code !== 0) exitCode = code;
      return code;
    };
    const splitter = running.switchNode!.splitter("demo");
    const volume = running.appliance!.volume("demo");
    const nbd = `nbd://${running.nbdAddress}/demo`;
    const write = async (text: string) => {
      await splitter.write(documentOffsetBytes, documentOf(text));
      await running.switchNode!.waitAcknowledged("demo", splitter.nextSeq - 1);
      await volume.flush();
    };

    await say("\n== 2. A host writes a document");
    await say(`   (a host does the same with: nbdcopy report.txt ${nbd}  or  qemu-io -f raw -c "write -P 0x41 1M 4k" ${nbd})`);
    for (const text of ["Quarterly report, draft 1: revenue up.", "Quarterly report, draft 2: revenue up 12%."]) {
      await write(text);
      await say(`   wrote "${text}" at 1 MiB`);
      await runtime.clock.sleep(1100);
    }
    await cli("snapshot", "demo", "report-draft-2");

    await say("\n== 3. More edits, then something goes wrong");
    await write("Quarterly report, final: revenue up 12%, costs down 3%.");
    await say('   wrote "Quarterly report, final: ..."');
    await runtime.clock.sleep(1100);
    for (let i = 0; i < 3; i++) {
      await splitter.write(documentOffsetBytes, garbageOf(i));
      await say("   !! a buggy program overwrote the document with garbage");
    }
    await running.switchNode!.waitAcknowledged("demo", splitter.nextSeq - 1);
    await volume.flush();
    await cli("status", "demo");

    await say("\n== 4. Find the last good point: open images at earlier points, newest first");
    await say("   (each is a read-only NBD export, opened in milliseconds, no data copied)");
    let lastGoodSeq = -1;
    for (let seq = volume.head.seq; seq >= 1 && lastGoodSeq < 0; seq--) {
      const image = volume.openImage(`seq:${seq}`);
      const bytes = new Uint8Array(documentBytes);
      await image.read(documentOffsetBytes, bytes);
      await image.close();
      const text = textOf(bytes);
      const report = volume.resolvePoint(`seq:${seq}`);
      await say(`   seq:${seq}  ${formatTimeUs(report.timeUs)}  ${report.landedOn.padEnd(8)}  ${text === undefined ? "garbage" : `"${text}"`}`);
      if (text !== undefined) lastGoodSeq = seq;
    }
    if (lastGoodSeq < 0) {
      await say("   no good point found");
      return 1;
    }
    await say(`\n   The last good state is seq:${lastGoodSeq}. Serve it to any NBD client:`);
    await cli("image", "demo", "--at", `seq:${lastGoodSeq}`);
    await say(`   (then: nbdcopy nbd://${running.nbdAddress}/demo@seq:${lastGoodSeq} good.img  or  nbdinfo nbd://${running.nbdAddress}/demo@seq:${lastGoodSeq})`);

    await say("\n== 5. What changed since the snapshot");
    await cli("diff", "demo", "--from", "snap:report-draft-2", "--to", "head");
    await cli("timeline", "demo");

    await say("\n== 6. Put the volume back (only what differs moves; the host could keep working with --instant)");
    if ((await cli("restore", "demo", "--at", `seq:${lastGoodSeq}`)) === 0) {
      const bytes = new Uint8Array(documentBytes);
      await splitter.read(documentOffsetBytes, bytes);
      await say(`\n   The host reads its document again: "${textOf(bytes) ?? "garbage"}"`);
      await say("   The history is all still there: the damaged states open as images too.");
      await cli("timeline", "demo");
    }
    await say("\nDone. Every write was kept; any point can be opened, compared and copied out.");
  } finally {
    await running.stop();
    if (options.keep) await say(`(kept ${directory})`);
    else await deps.removeDirectory(directory);
  }
  return exitCode;
}

/** A 4 KiB block holding `text` then spaces and a newline. */
function documentOf(text: string): Uint8Array {
  const bytes = new Uint8Array(documentBytes).fill(0x20);
  bytes.set(new TextEncoder().encode(text));
  bytes[documentBytes - 1] = 0x0a;
  return bytes;
}

/** Bytes no one would call a document (deterministic, so the demo reads the same each run). */
function garbageOf(round: number): Uint8Array {
  const bytes = new Uint8Array(documentBytes);
  let state = 0x9e3779b9 ^ round;
  for (let i = 0; i < bytes.length; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

/** The document's text, or undefined when the block is not printable text. */
function textOf(bytes: Uint8Array): string | undefined {
  const text = new TextDecoder().decode(bytes).trimEnd();
  return text.length > 0 && /^[\x20-\x7e]+$/.test(text) ? text : undefined;
}
