/**
 * A short tour of the engine on real files (Node target), until `anytime demo` exists:
 * protect a small volume, write a "document", snapshot, keep writing, "corrupt" it, then find
 * the last good point by opening images and show what changed. Run: `npm run tour`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Volume } from "../src/appliance/volume.ts";
import { formatBytes, formatTimeUs } from "../src/core/units.ts";
import { FileSegmentStore, SystemClock } from "../targets/node/mod.ts";

const directory = mkdtempSync(join(tmpdir(), "anytime-tour-"));
const clock = new SystemClock();
const say = (line: string) => console.log(line);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).replace(/\0+$/, "");
const block = (content: string) => {
  const bytes = new Uint8Array(4096);
  bytes.set(new TextEncoder().encode(content));
  return bytes;
};

say(`Journal and maps in ${directory}`);
const volume = await Volume.open(
  {
    journalStore: await FileSegmentStore.open(join(directory, "journal")),
    mapStore: await FileSegmentStore.open(join(directory, "maps")),
    clock,
  },
  { name: "docs", sizeBytes: 64 * 1024 * 1024, segmentSizeBytes: 16 * 1024 * 1024 },
);
const write = async (offsetBytes: number, content: string) => {
  await volume.appendWrite({ seq: volume.nextSeq, timeUs: clock.nowUs(), offsetBytes, data: block(content) });
  await volume.flush();
};

await write(0, "Quarterly report, draft 1");
await write(8192, "Appendix A");
const snapshot = await volume.snapshot("draft-1");
say(`Snapshot "draft-1" at seq ${snapshot.seq} (${formatTimeUs(snapshot.timeUs)})`);
for (let draft = 2; draft <= 5; draft++) await write(0, `Quarterly report, draft ${draft}`);
await write(0, "xxxxxxxxxxxx RANSOMWARE xxxxxxxxxxxx");
await write(8192, "xxxxxxxxxxxx RANSOMWARE xxxxxxxxxxxx");
say(`Head is seq ${volume.head.seq}; the document now reads: "${await readDocument("head")}"`);

say("Looking back write by write for the last good point:");
let good = volume.head.seq;
while (good > 0 && (await readDocument(`seq:${good}`)).includes("RANSOMWARE")) good--;
const report = volume.resolvePoint(`seq:${good}`);
say(`  seq:${good} (${formatTimeUs(report.timeUs)}, a ${report.landedOn}) reads "${await readDocument(`seq:${good}`)}"`);
const { extents } = volume.diff(`seq:${good}`, "head");
say(`Changed since then: ${extents.map((e) => `${formatBytes(e.lengthBytes)} at ${e.offsetBytes}`).join(", ")}`);
say(`At the snapshot: "${await readDocument("snap:draft-1")}"`);
await volume.close();
rmSync(directory, { recursive: true });
say("Done. Restoring a point onto the primary comes with the switch and `anytime restore`.");

async function readDocument(point: string): Promise<string> {
  const bytes = new Uint8Array(4096);
  await volume.openImage(point).read(0, bytes);
  return text(bytes);
}
