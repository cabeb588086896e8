/**
 * The journal's ceiling on this disk, measured in the same run as the figure it bounds: what
 * a plain writer gets when it writes as the journal does (`journal.ts`,
 * `file_segment_store.ts`): group-sized writes (`limits.journalGroupBytesMax`) around the
 * page cache (O_DIRECT, page-aligned memory) into fresh sparse files of the segment size,
 * one fdatasync per write. A durable ingest cannot beat it on the same disk, so a figure
 * whose peer is not bound by the disk (loopback TCP, qemu-nbd writing into the page cache)
 * can be read against it.
 *
 * {@link directDiskBytesPerSecond} returns null where the file system refuses direct writes
 * (tmpfs) or the platform has none: the journal then writes through the page cache, and the
 * same writer through the page cache ({@link rawSequentialBytesPerSecond}) is its ceiling.
 */
import { closeSync, constants, fdatasyncSync, ftruncateSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { limits } from "../src/core/limits.ts";
import { allocateAligned } from "../src/io/aligned_memory.ts";

/** Sequential direct writes of `limits.journalGroupBytesMax`, fdatasync each; bytes/s or null. */
export function directDiskBytesPerSecond(directory: string, totalBytes: number): number | null {
  if (constants.O_DIRECT === undefined) return null; // not Linux: the journal writes buffered too
  try {
    return rawSequentialBytesPerSecond(directory, totalBytes, { chunkBytes: limits.journalGroupBytesMax, direct: true });
  } catch (error) {
    if ((error as { code?: string }).code === "EINVAL") return null;
    throw error;
  }
}

/** A note's phrase: `raw direct disk write 812 MiB/s (8 MiB writes, fdatasync each, ...)`. */
export function diskCeilingPhrase(directory: string, totalBytes: number): { bytesPerSecond: number; phrase: string } {
  const direct = directDiskBytesPerSecond(directory, totalBytes);
  const how = `${limits.journalGroupBytesMax / (1024 * 1024)} MiB writes, fdatasync each, fresh sparse files, as the journal writes`;
  if (direct !== null) return { bytesPerSecond: direct, phrase: `raw direct disk write ${(direct / 2 ** 20).toFixed(0)} MiB/s (${how})` };
  const buffered = rawSequentialBytesPerSecond(directory, totalBytes, { chunkBytes: limits.journalGroupBytesMax, direct: false });
  return { bytesPerSecond: buffered, phrase: `raw disk write ${(buffered / 2 ** 20).toFixed(0)} MiB/s (no direct writes here; ${how})` };
}

/**
 * A plain sequential writer with the journal's sync policy: `chunkBytes` writes (through the
 * page cache, or around it with `direct`) into fresh sparse files of the segment size, an
 * fdatasync after every `limits.journalGroupBytesMax` bytes and before each file is closed.
 */
export function rawSequentialBytesPerSecond(
  directory: string,
  totalBytes: number,
  options: { chunkBytes: number; direct: boolean },
): number {
  const segmentBytes = limits.journalSegmentBytes;
  const { chunkBytes, direct } = options;
  const chunk = direct ? allocateAligned(chunkBytes) : new Uint8Array(chunkBytes);
  chunk.fill(0x5a);
  const flags = constants.O_RDWR | constants.O_CREAT | (direct ? constants.O_DIRECT : 0);
  const paths: string[] = [];
  let fd = -1;
  try {
    const started = performance.now();
    let sinceSyncBytes = 0;
    for (let written = 0; written < totalBytes; written += chunkBytes) {
      if (written % segmentBytes === 0) {
        if (fd >= 0) {
          fdatasyncSync(fd);
          closeSync(fd);
        }
        fd = -1;
        paths.push(join(directory, `raw-disk-${paths.length}.seg`));
        fd = openSync(paths[paths.length - 1], flags, 0o644);
        ftruncateSync(fd, segmentBytes);
        sinceSyncBytes = 0;
      }
      writeSync(fd, chunk, 0, chunkBytes, written % segmentBytes);
      sinceSyncBytes += chunkBytes;
      if (sinceSyncBytes >= limits.journalGroupBytesMax) {
        fdatasyncSync(fd);
        sinceSyncBytes = 0;
      }
    }
    if (sinceSyncBytes > 0) fdatasyncSync(fd);
    return totalBytes / ((performance.now() - started) / 1000);
  } finally {
    if (fd >= 0) closeSync(fd);
    for (const path of paths) rmSync(path, { force: true });
  }
}
