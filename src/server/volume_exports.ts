/**
 * What the NBD server serves in a process (SPEC.md, "NBD"): the {@link NbdServerDeps} built
 * from the switch's splitters and the appliance's volumes, whichever of them run here (both in
 * `anytime serve`, one in `anytime switch` / `anytime appliance`).
 *
 * - `VOL`: the protected volume, read-write through its {@link Splitter} (a
 *   {@link SplitterDevice} per connection), when the switch runs here too.
 * - `VOL@POINT`: the read-only image at POINT, opened on connect with `Volume.openImage` (maps
 *   only, no data copied) and closed when the connection ends. The point is resolved once, at
 *   connect: `VOL@head` stays at the state it opened at while writes go on.
 * - `VOL@POINT+rw`: that image under an {@link OverlayBlockDevice}: writes go to a throw-away
 *   scratch overlay in memory (up to `overlayBytesMax` per image, at most
 *   `writableImagesMax` open at once), never to the journal.
 * - NBD_OPT_LIST shows every volume (`VOL` when its switch runs here, else `VOL@head`) and
 *   every snapshot image (`VOL@snap:NAME`), each with its size and point.
 *
 * Suspect points (guarantee 3: "images inside [a gap] are marked suspect (they open, with a
 * warning)"): when `isSuspect(volume, point)` gives a reason (by default the appliance's
 * `Volume.suspectReason`: the point's seq, and for a time or relative POINT the time asked
 * for, which may lie inside a gap while its seq does not), the image opens, a warning is
 * logged and the export's description says why; never silently.
 *
 * Errors: a bad name is a SyntaxError, an unknown volume a NotFoundError naming the volumes,
 * a point outside what is retained a PointUnavailableError naming the available range; the
 * server answers each with NBD_REP_ERR_UNKNOWN carrying the message (and hangs up after
 * NBD_OPT_EXPORT_NAME, which has no error reply). Nothing is opened when one is thrown.
 *
 * Layering: this module is where the NBD layer meets the engine (like `api/` it sits above
 * `switch/` and `appliance/`); it lives here because it is the NBD server's dependencies.
 *
 * @example
 * ```ts
 * import type { Appliance } from "../appliance/appliance.ts";
 * import type { Listener } from "../io/transport.ts";
 * import type { Splitter } from "../switch/splitter.ts";
 * import { NbdServer } from "../nbd/nbd_server.ts";
 * import { VolumeExports } from "./volume_exports.ts";
 *
 * function serveNbd(listener: Listener, appliance: Appliance, splitter: Splitter) {
 *   const exports = new VolumeExports({
 *     appliance,
 *     splitters: new Map([[splitter.name, splitter]]),
 *     log: (line) => console.log(line),
 *   });
 *   return new NbdServer(exports).serve(listener); // db, db@seq:12, db@snap:nightly+rw, ...
 * }
 * ```
 *
 * @module
 */
import type { Appliance } from "../appliance/appliance.ts";
import { NotFoundError } from "../appliance/errors.ts";
import type { ImageDevice, ResolvedPoint } from "../appliance/image.ts";
import type { Volume } from "../appliance/volume.ts";
import { assert } from "../core/assert.ts";
import type { Point } from "../core/point.ts";
import { formatBytes, formatTimeUs } from "../core/units.ts";
import type { BlockDevice } from "../io/block_device.ts";
import { checkOverlayOptions, OverlayBlockDevice, overlayLimits } from "../io/overlay_block_device.ts";
import type { Splitter } from "../switch/splitter.ts";
import { SplitterDevice } from "../switch/splitter_device.ts";
import { formatExportName, parseExportName } from "./export_name.ts";
import type { NbdExport, NbdExportListing, NbdLogEvent, NbdServerDeps } from "../nbd/nbd_server.ts";

/** Limits of one process's exports. */
export const volumeExportLimits = {
  /** Writable scratch images open at once: each may hold `overlayBytesMax` of memory. */
  writableImagesMaxDefault: 8,
  /** Scratch bytes per writable image (see {@link overlayLimits}). */
  overlayBytesMaxDefault: overlayLimits.overlayBytesMaxDefault,
} as const;

/** A resolved point as the suspect check takes it (`ResolvedPoint`'s seq and requested time). */
export type SuspectQuery = Pick<ResolvedPoint, "seq" | "requestedTimeUs">;

/** What {@link VolumeExports} serves from. */
export interface VolumeExportsDeps {
  /** The appliance, when it runs in this process: images. */
  readonly appliance?: Appliance;
  /** The switch's splitters by volume name, when the switch runs in this process: volumes. */
  readonly splitters?: ReadonlyMap<string, Splitter>;
  /**
   * Why the image of `volumeName` at `point` is suspect (it lies in a gap), or undefined;
   * default: the appliance's `Volume.suspectReason`.
   */
  readonly isSuspect?: (volumeName: string, point: SuspectQuery) => string | undefined;
  readonly log: (line: string) => void;
}

/** Options of {@link VolumeExports}. */
export interface VolumeExportsOptions {
  /** Scratch bytes per writable image; default 256 MiB. */
  readonly overlayBytesMax?: number;
  /** Overlay block size; default 4 KiB. */
  readonly overlayBlockBytes?: number;
  /** Writable images open at once; default 8. */
  readonly writableImagesMax?: number;
}

/** The NBD server's dependencies for a process; see the module doc. */
export class VolumeExports implements NbdServerDeps {
  readonly #appliance: Appliance | undefined;
  readonly #splitters: ReadonlyMap<string, Splitter>;
  readonly #isSuspect: (volumeName: string, point: SuspectQuery) => string | undefined;
  readonly #log: (line: string) => void;
  readonly #overlayBytesMax: number;
  readonly #overlayBlockBytes: number;
  readonly #writableImagesMax: number;
  #openImages = 0;
  #openWritableImages = 0;

  /** @throws {RangeError} for a writable-image limit that is not a positive integer, or bad overlay options. */
  constructor(deps: VolumeExportsDeps, options: VolumeExportsOptions = {}) {
    this.#appliance = deps.appliance;
    this.#splitters = deps.splitters ?? new Map();
    const appliance = deps.appliance;
    this.#isSuspect = deps.isSuspect ??
      ((volumeName, point) => appliance?.volume(volumeName).suspectReason(point));
    this.#log = deps.log;
    this.#overlayBytesMax = options.overlayBytesMax ?? volumeExportLimits.overlayBytesMaxDefault;
    this.#overlayBlockBytes = options.overlayBlockBytes ?? overlayLimits.blockBytesDefault;
    this.#writableImagesMax = options.writableImagesMax ?? volumeExportLimits.writableImagesMaxDefault;
    if (!Number.isSafeInteger(this.#writableImagesMax) || this.#writableImagesMax < 1) {
      throw new RangeError(`Cannot allow ${this.#writableImagesMax} writable images: not a positive integer`);
    }
    // Fails now, not at the first `+rw` connection, when the overlay options are bad.
    checkOverlayOptions({ blockBytes: this.#overlayBlockBytes, overlayBytesMax: this.#overlayBytesMax });
  }

  /** Images open now (one per connection serving an image). */
  get openImageCount(): number {
    return this.#openImages;
  }

  /** Writable scratch images open now. */
  get openWritableImageCount(): number {
    return this.#openWritableImages;
  }

  /**
   * The export for a name, opened for one connection.
   *
   * @throws {SyntaxError} for a name that is not `VOL`, `VOL@POINT` or `VOL@POINT+rw`.
   * @throws {NotFoundError} for a volume not served here (naming those that are).
   * @throws {PointUnavailableError} for a point outside the retained range (naming the range).
   * @throws {Error} for an image asked of a process without an appliance, or one writable
   *   image too many.
   */
  resolveExport(name: string): Promise<NbdExport | undefined> {
    try {
      const parsed = parseExportName(name);
      if (parsed.kind === "volume") return Promise.resolve(this.#openVolume(parsed.volumeName));
      return Promise.resolve(this.#openImage(name, parsed.volumeName, parsed.point, parsed.writable));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Every volume and snapshot image, by name. */
  listExports(): NbdExportListing[] {
    const listings: NbdExportListing[] = [];
    const names = new Set<string>(this.#splitters.keys());
    const volumes = new Map<string, Volume>();
    for (const volume of this.#appliance?.volumes() ?? []) {
      names.add(volume.name);
      volumes.set(volume.name, volume);
    }
    for (const volumeName of [...names].sort()) {
      const splitter = this.#splitters.get(volumeName);
      const volume = volumes.get(volumeName);
      if (splitter !== undefined) {
        listings.push({ name: volumeName, description: volumeDescription(splitter, volume) });
      } else if (volume !== undefined) {
        const head = volume.head;
        listings.push({
          name: formatExportName({ volumeName, point: "head" }),
          description: this.#imageDescription(volume, { seq: head.seq, timeUs: head.timeUs }, false, "newest durable state"),
        });
      }
      for (const snapshot of volume?.snapshots() ?? []) {
        listings.push({
          name: formatExportName({ volumeName, point: { kind: "snapshot", name: snapshot.name } }),
          description: this.#imageDescription(volume!, snapshot, false, `snapshot ${snapshot.name}`),
        });
      }
    }
    return listings;
  }

  /** The NBD server's log, as lines in this process's log. */
  log(event: NbdLogEvent): void {
    const cause = event.error instanceof Error ? `: ${event.error.message}` : "";
    this.#log(`NBD ${event.remoteAddress}: ${event.message}${cause}`);
  }

  // -------------------------------------------------------------------------------------

  #openVolume(volumeName: string): NbdExport {
    const splitter = this.#splitters.get(volumeName);
    if (splitter === undefined) {
      if (this.#appliance?.volumes().some((volume) => volume.name === volumeName)) {
        throw new NotFoundError(
          `Volume "${volumeName}" is served read-write by its switch, not by this process; ` +
            `open an image such as "${volumeName}@head" here`,
        );
      }
      throw new NotFoundError(this.#unknownVolume(volumeName));
    }
    const device = new SplitterDevice(splitter);
    const volume = this.#appliance?.volumes().find((candidate) => candidate.name === volumeName);
    return {
      device,
      readOnly: false,
      description: volumeDescription(splitter, volume),
      close: () => device.close(),
    };
  }

  #openImage(exportName: string, volumeName: string, point: Point, writable: boolean): NbdExport {
    const appliance = this.#appliance;
    if (appliance === undefined) {
      const served = this.#splitters.has(volumeName) ? `; "${volumeName}" itself is served here` : "";
      throw new Error(`Cannot open image "${exportName}": images are served by the appliance, which does not run in this process${served}`);
    }
    if (!appliance.volumes().some((volume) => volume.name === volumeName)) {
      throw new NotFoundError(this.#unknownVolume(volumeName));
    }
    if (writable && this.#openWritableImages >= this.#writableImagesMax) {
      throw new Error(
        `Cannot open writable image "${exportName}": ${this.#openWritableImages} writable images are open, the limit`,
      );
    }
    const volume = appliance.volume(volumeName);
    const image: ImageDevice = volume.openImage(point); // throws PointUnavailableError, opens nothing
    const reason = this.#isSuspect(volumeName, image.point);
    const description = this.#imageDescription(volume, image.point, writable, undefined, reason);
    if (reason !== undefined) {
      this.#log(`Warning: image "${exportName}" opens at seq:${image.point.seq}, a suspect point: ${reason}`);
    }
    let device: BlockDevice = image;
    if (writable) {
      device = new OverlayBlockDevice(image, { blockBytes: this.#overlayBlockBytes, overlayBytesMax: this.#overlayBytesMax });
      this.#openWritableImages++;
    }
    this.#openImages++;
    let closed = false;
    return {
      device,
      readOnly: !writable,
      description,
      close: async () => {
        assert(!closed, `Image "${exportName}" is closed once`);
        closed = true;
        this.#openImages--;
        if (writable) this.#openWritableImages--;
        if (device !== image) await device.close();
        await image.close();
      },
    };
  }

  #imageDescription(
    volume: Volume,
    point: SuspectQuery & { readonly timeUs: number },
    writable: boolean,
    what?: string,
    suspectReason: string | undefined = this.#isSuspect(volume.name, point),
  ): string {
    const kind = writable
      ? `writable scratch image (writes are thrown away, up to ${formatBytes(this.#overlayBytesMax)})`
      : "read-only image";
    const at = `seq:${point.seq} (${formatTimeUs(point.timeUs)})`;
    const subject = what === undefined ? `volume ${volume.name} at ${at}` : `volume ${volume.name}, ${what}, at ${at}`;
    const suspect = suspectReason === undefined ? "" : `; WARNING: suspect point: ${suspectReason}`;
    return `${subject}, ${formatBytes(volume.sizeBytes)}, ${kind}${suspect}`;
  }

  #unknownVolume(volumeName: string): string {
    const names = new Set<string>(this.#splitters.keys());
    for (const volume of this.#appliance?.volumes() ?? []) names.add(volume.name);
    const known = [...names].sort();
    return `Volume "${volumeName}" is not served here` + (known.length > 0 ? `; volumes: ${known.join(", ")}` : "; no volumes yet");
  }
}

/** A volume served read-write, for LIST and NBD_INFO_DESCRIPTION. */
function volumeDescription(splitter: Splitter, volume: Volume | undefined): string {
  const head = volume === undefined ? "" : `, head seq:${volume.head.seq} (${formatTimeUs(volume.head.timeUs)})`;
  return `volume ${splitter.name}, ${formatBytes(splitter.sizeBytes)}, read-write, ${splitter.state}${head}`;
}
