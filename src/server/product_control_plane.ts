/**
 * The {@link ControlPlane} of a running process, over the parts it has: the appliance
 * (volumes, journal, images; `anytime appliance` and `serve`), the switch (splitters, DRL,
 * link; `anytime switch` and `serve`), or both. What a part this process lacks would answer is
 * reported as {@link UnavailableError} (503) with where to ask instead.
 *
 * Volume state (SPEC): `stopped` when no switch streams it; `marking` while the splitter
 * only marks the DRL; else `protecting`. Lag (RPO) comes from the switch: the age of the
 * oldest record it holds unacknowledged (0 when none). An appliance alone cannot see what
 * hosts were acknowledged: it reports 0 while a switch is linked and the time since the last
 * durable write while none is (an upper bound of what may be missing).
 *
 * @module
 */
import type { Appliance } from "../appliance/appliance.ts";
import { type ApplianceLink, SwitchUnavailableError } from "../appliance/appliance_link.ts";
import type { JournalCounters } from "../appliance/journal.ts";
import type { Volume } from "../appliance/volume.ts";
import type { TimelineInterval } from "../appliance/volume_timeline.ts";
import {
  ConflictError,
  type ControlPlane,
  type DiffJson,
  type ImageJson,
  type IntervalJson,
  type JobJson,
  type MetricFamily,
  NotFoundError,
  NotImplementedError,
  type PointJson,
  type ProcessJson,
  type ResolvedPointJson,
  type RetentionJson,
  type SnapshotJson,
  type TimelineJson,
  UnavailableError,
  type VolumeState,
  type VolumeStatusJson,
} from "../api/control_plane.ts";
import { serverLimits } from "../core/limits.ts";
import { parsePoint } from "../core/point.ts";
import { parseRetention, RETENTION_DEFAULT } from "../core/retention.ts";
import { formatTimeUs } from "../core/units.ts";
import type { Clock } from "../io/clock.ts";
import { checkSnapshotName } from "../core/point.ts";
import type { Splitter, SplitterCounters } from "../switch/splitter.ts";
import type { Jobs } from "./jobs.ts";
import { adoptRemoteRestore, restoreRemotely } from "./remote_restore.ts";
import { resyncLocally } from "./resync_job.ts";
import { restoreLocally } from "./restore_job.ts";
import type { SwitchNode } from "./switch_node.ts";

/** What the control plane reads. */
export interface ProductControlPlaneDeps {
  readonly clock: Clock;
  readonly process: ProcessJson;
  readonly appliance?: Appliance;
  readonly applianceLink?: ApplianceLink;
  readonly switchNode?: SwitchNode;
  /** `host:port` of the NBD listener serving images (appliance side), if any. */
  readonly nbdAddress?: string;
  /** NBD connections open now (metrics). */
  readonly nbdConnections?: () => number;
  /** The process's jobs (restore, resync); none: jobs are not run here. */
  readonly jobs?: Jobs;
  readonly log?: (line: string) => void;
}

/** See the module doc. */
export class ProductControlPlane implements ControlPlane {
  readonly #deps: ProductControlPlaneDeps;

  constructor(deps: ProductControlPlaneDeps) {
    this.#deps = deps;
    const { appliance, applianceLink, jobs } = deps;
    if (appliance !== undefined && applianceLink !== undefined && jobs !== undefined && deps.switchNode === undefined) {
      // A switch in another process may report a restore this process did not start (it restarted meanwhile).
      applianceLink.setAdopter((remote) => adoptRemoteRestore({ clock: deps.clock, appliance, applianceLink, log: deps.log }, jobs, remote));
    }
  }

  process(): ProcessJson {
    return this.#deps.process;
  }

  volumes(): readonly VolumeStatusJson[] {
    return this.#volumeNames().map((name) => this.volume(name));
  }

  volume(name: string): VolumeStatusJson {
    const appliance = this.#deps.appliance;
    const splitter = this.#deps.switchNode?.splitters.get(name);
    const volume = appliance === undefined ? undefined : this.#volume(name);
    if (volume === undefined && splitter === undefined) this.#unknownVolume(name);
    const nowUs = this.#deps.clock.nowUs();
    const linked = this.#linked(name, splitter);
    // A restore the appliance runs through a switch in another process shows here as its job.
    const restoring = splitter === undefined && this.#deps.jobs?.runningFor(name)?.kind === "restore";
    const state = restoring ? "restoring" : this.#state(splitter, linked);
    const head = volume !== undefined ? volume.head : splitter !== undefined
      ? { seq: splitter.acknowledgedSeq, timeUs: nowUs }
      : { seq: 0, timeUs: nowUs };
    const window = volume?.window() ?? { from: head, to: head };
    const lagSeconds = splitter !== undefined
      ? lagOf(splitter, nowUs)
      : linked
      ? 0
      : Math.max(0, (nowUs - head.timeUs) / 1e6);
    return {
      name,
      size: volume?.sizeBytes ?? splitter!.sizeBytes,
      state,
      head: pointJson(head),
      window: { from: pointJson(window.from), to: pointJson(window.to) },
      lagSeconds,
      journalBytes: volume?.journalBytes ?? 0,
      suspect: volume?.suspectIntervals().map((i) => intervalJson(i, head)) ?? [],
      gaps: volume?.gaps().map((i) => intervalJson(i, head)) ?? [],
      ...(volume !== undefined
        ? { writesIngested: volume.durableRecords, bytesIngested: volume.bytesIngested, snapshots: volume.snapshots().length }
        : {}),
      ...(splitter !== undefined ? { regionSize: splitter.regionBytes, dirtyRegions: splitter.dirtyRegionCount } : {}),
      linked,
    };
  }

  timeline(name: string, options: { from?: string; to?: string; limit?: number } = {}): TimelineJson {
    const volume = this.#needVolume(name, "timeline");
    const fromSeq = options.from === undefined ? 0 : volume.resolvePoint(options.from).seq;
    const toSeq = options.to === undefined ? Infinity : volume.resolvePoint(options.to).seq;
    const limit = Math.min(options.limit ?? serverLimits.timelineEntriesMax, serverLimits.timelineEntriesMax);
    const window = volume.window();
    return {
      volume: name,
      window: { from: pointJson(window.from), to: pointJson(window.to) },
      entries: volume.markers({ fromSeq, toSeq, limit }).map((marker) => ({
        seq: marker.seq,
        time: formatTimeUs(marker.timeUs),
        kind: marker.kind,
        detail: marker.detail,
      })),
    };
  }

  snapshots(name: string): readonly SnapshotJson[] {
    return this.#needVolume(name, "snapshots").snapshots().map((s) => ({ name: s.name, seq: s.seq, time: formatTimeUs(s.timeUs) }));
  }

  async createSnapshot(name: string, snapshotName: string): Promise<SnapshotJson> {
    checkSnapshotName(snapshotName);
    const switchNode = this.#deps.switchNode;
    const volume = this.#deps.appliance === undefined ? undefined : this.#volume(name);
    if (volume?.snapshots().some((s) => s.name === snapshotName)) {
      throw new ConflictError(`Snapshot "${snapshotName}" of volume "${name}" exists`);
    }
    if (switchNode?.splitters.has(name)) {
      // In the write stream: after every write the host saw acknowledged before the request.
      const { seq, timeUs } = await switchNode.snapshot(name, snapshotName);
      await this.#waitIndexed(volume, seq);
      return { name: snapshotName, seq, time: formatTimeUs(timeUs) };
    }
    if (volume === undefined) this.#unknownVolume(name);
    const applianceLink = this.#deps.applianceLink;
    if (applianceLink?.isLinked(name)) {
      // A switch in another process streams it: it gives the marker a seq of its write stream.
      const { seq } = await throughSwitch(applianceLink.requestSnapshot(name, snapshotName));
      const entry = volume.snapshots().find((s) => s.name === snapshotName && s.seq === seq);
      if (entry === undefined) throw new ConflictError(`Snapshot "${snapshotName}" of volume "${name}" changed meanwhile`);
      return { name: entry.name, seq: entry.seq, time: formatTimeUs(entry.timeUs) };
    }
    // No switch streams the volume: nothing can race the marker for its seq.
    const entry = await volume.snapshot(snapshotName);
    return { name: entry.name, seq: entry.seq, time: formatTimeUs(entry.timeUs) };
  }

  async removeSnapshot(name: string, snapshotName: string): Promise<void> {
    const volume = this.#needVolume(name, "snapshots");
    const splitter = this.#deps.switchNode?.splitters.get(name);
    const applianceLink = this.#deps.applianceLink;
    if (splitter === undefined && applianceLink?.isLinked(name)) {
      // A switch in another process streams it: the removal marker takes a seq of its stream.
      await throughSwitch(applianceLink.requestSnapshot(name, snapshotName, { remove: true }));
      return;
    }
    if (splitter !== undefined && splitter.state !== "closed") {
      // The switch is in this process: the removal marker goes into its write stream.
      if (!volume.snapshots().some((s) => s.name === snapshotName)) {
        throw new NotFoundError(`Snapshot "${snapshotName}" of volume "${name}" does not exist`);
      }
      const seq = splitter.snapshotRemoved(snapshotName);
      await this.#deps.switchNode!.waitAcknowledged(name, seq);
      await this.#waitIndexed(volume, seq);
      return;
    }
    await volume.removeSnapshot(snapshotName);
  }

  retention(name: string): RetentionJson {
    const volume = this.#needVolume(name, "retention");
    return volume.retention ?? { ...RETENTION_DEFAULT };
  }

  async setRetention(name: string, policy: Partial<RetentionJson>): Promise<RetentionJson> {
    const volume = this.#needVolume(name, "retention");
    const current = volume.retention ?? RETENTION_DEFAULT;
    const parsed = parseRetention({ window: policy.window ?? current.window, keep: policy.keep ?? current.keep });
    await volume.setRetention({ window: parsed.window, keep: parsed.keep });
    return { window: parsed.window, keep: parsed.keep };
  }

  async openImage(name: string, options: { at: string; writable: boolean }): Promise<ImageJson> {
    const volume = this.#needVolume(name, "images");
    const parsed = parsePoint(options.at);
    const report = volume.resolvePoint(parsed);
    const nbdAddress = this.#deps.nbdAddress;
    if (nbdAddress === undefined) {
      throw new UnavailableError("Cannot serve images: this process has no NBD listener (start it with --nbd HOST:PORT)");
    }
    const reason = volume.suspectReason(report);
    const exportName = `${name}@seq:${report.seq}${options.writable ? "+rw" : ""}`;
    return {
      uri: `nbd://${nbdAddress}/${exportName}`,
      export: exportName,
      point: resolvedJson(report),
      suspect: reason !== undefined,
      writable: options.writable,
      ...(reason !== undefined ? { warning: `The image of volume "${name}" at seq:${report.seq} is suspect: ${reason}` } : {}),
    };
  }

  diff(name: string, from: string, to: string): DiffJson {
    const volume = this.#needVolume(name, "diff");
    const result = volume.diff(from, to);
    let changedBytes = 0;
    const extents = result.extents.map((extent) => {
      changedBytes += extent.lengthBytes;
      return { offset: extent.offsetBytes, length: extent.lengthBytes };
    });
    return { from: resolvedJson(result.from), to: resolvedJson(result.to), extents, changedBytes };
  }

  async restore(name: string, options: { at: string; instant: boolean; full?: boolean; force?: boolean }): Promise<JobJson> {
    this.volume(name);
    const { appliance, applianceLink, switchNode, jobs } = this.#deps;
    const request = { volume: name, at: options.at, instant: options.instant, full: options.full, force: options.force };
    const local = switchNode?.splitters.has(name) === true;
    if (appliance === undefined || jobs === undefined || (!local && applianceLink === undefined)) {
      throw new UnavailableError(`Cannot restore volume "${name}" here: ask the appliance's API, which runs restore jobs`);
    }
    const running = jobs.runningFor(name);
    if (running !== undefined) throw new ConflictError(`Volume "${name}" has job ${running.id} (${running.kind}) running`);
    if (local) {
      return await jobs.start(
        { kind: "restore", volume: name },
        (handle, ready) =>
          restoreLocally({ clock: this.#deps.clock, appliance, switchNode: switchNode!, log: this.#deps.log }, handle, ready, request),
      );
    }
    // The switch runs in another process: it copies, reading this appliance's image over the link.
    return await jobs.start(
      { kind: "restore", volume: name },
      (handle, ready) =>
        restoreRemotely({ clock: this.#deps.clock, appliance, applianceLink: applianceLink!, log: this.#deps.log }, handle, ready, request),
    );
  }

  async resync(name: string, options: { full: boolean }): Promise<JobJson> {
    this.volume(name);
    const { switchNode, jobs } = this.#deps;
    if (switchNode === undefined || jobs === undefined || !switchNode.splitters.has(name)) {
      throw new UnavailableError(
        `Resync of volume "${name}" runs where its switch runs: ask the switch's API (anytime switch --http), or use anytime serve`,
      );
    }
    const running = jobs.runningFor(name);
    if (running !== undefined) throw new ConflictError(`Volume "${name}" has job ${running.id} (${running.kind}) running`);
    return await jobs.start(
      { kind: "resync", volume: name },
      (handle, ready) =>
        resyncLocally(
          { clock: this.#deps.clock, switchNode, appliance: this.#deps.appliance, log: this.#deps.log },
          handle,
          ready,
          { volume: name, full: options.full },
        ),
    );
  }

  jobs(): readonly JobJson[] {
    return this.#deps.jobs?.list() ?? [];
  }

  job(id: string): JobJson {
    if (this.#deps.jobs === undefined) throw new NotFoundError(`Job "${id}" does not exist: this process runs no jobs`);
    return this.#deps.jobs.get(id);
  }

  cancelJob(id: string): Promise<JobJson> {
    return Promise.resolve().then(() => {
      if (this.#deps.jobs === undefined) throw new NotFoundError(`Job "${id}" does not exist: this process runs no jobs`);
      return this.#deps.jobs.cancel(id);
    });
  }

  metrics(): readonly MetricFamily[] {
    const statuses = this.volumes();
    const gauge = (
      name: string,
      help: string,
      value: (status: VolumeStatusJson) => number | undefined,
      type: "gauge" | "counter" = "gauge",
    ): MetricFamily => ({
      name,
      help,
      type,
      samples: statuses.flatMap((status) => {
        const sample = value(status);
        return sample === undefined ? [] : [{ labels: { volume: status.name }, value: sample }];
      }),
    });
    const states: VolumeState[] = ["protecting", "marking", "resyncing", "restoring", "initializing", "stopped"];
    const families: MetricFamily[] = [
      gauge("anytime_volume_head_seq", "Newest seq durable on the appliance.", (s) => s.head.seq),
      gauge("anytime_volume_lag_seconds", "Current RPO: age of the oldest acknowledged write not yet durable on the appliance.", (s) => s.lagSeconds),
      gauge("anytime_volume_window_start_seconds", "Oldest point that opens, seconds since the epoch.", (s) => Date.parse(s.window.from.time) / 1000),
      gauge("anytime_volume_window_length_seconds", "Length of the protected window.", (s) => (Date.parse(s.window.to.time) - Date.parse(s.window.from.time)) / 1000),
      gauge("anytime_volume_journal_bytes", "Journal bytes in use.", (s) => s.journalBytes),
      gauge("anytime_volume_writes_ingested_total", "Records journaled (writes, baseline chunks, markers).", (s) => s.writesIngested, "counter"),
      gauge("anytime_volume_bytes_ingested_total", "Data bytes journaled (writes and baseline chunks).", (s) => s.bytesIngested, "counter"),
      gauge("anytime_volume_gaps", "Recorded gaps (intervals whose writes were missed).", (s) => s.gaps.length),
      gauge("anytime_volume_suspect_intervals", "Suspect intervals (after a gap, until resync repaired it).", (s) => s.suspect.length),
      gauge("anytime_volume_dirty_regions", "Dirty regions in the switch's dirty region log.", (s) => s.dirtyRegions),
      {
        name: "anytime_volume_state",
        help: "The volume's state (1 for the current one).",
        type: "gauge",
        samples: statuses.flatMap((s) => states.map((state) => ({ labels: { volume: s.name, state }, value: s.state === state ? 1 : 0 }))),
      },
    ];
    const switchNode = this.#deps.switchNode;
    if (switchNode !== undefined) {
      const splitters = [...switchNode.splitters.values()];
      const perSplitter = (
        name: string,
        help: string,
        type: "gauge" | "counter",
        value: (splitter: Splitter, counters: SplitterCounters) => number,
      ): MetricFamily => ({
        name,
        help,
        type,
        samples: splitters.map((s) => ({ labels: { volume: s.name }, value: value(s, s.counters) })),
      });
      families.push(
        perSplitter("anytime_switch_buffer_used_bytes", "Copy buffer bytes held for the appliance.", "gauge", (s) => s.bufferUsedBytes),
        perSplitter("anytime_switch_buffer_bytes", "Copy buffer size (--buffer).", "gauge", (s) => s.copyBuffer.bytesMax),
        perSplitter("anytime_switch_host_writes_total", "Host writes the primary took.", "counter", (_, c) => c.hostWrites),
        perSplitter("anytime_switch_host_write_bytes_total", "Bytes of host writes the primary took.", "counter", (_, c) => c.hostWriteBytes),
        perSplitter("anytime_switch_primary_write_errors_total", "Host writes the primary refused.", "counter", (_, c) => c.primaryWriteErrors),
        perSplitter("anytime_switch_copied_writes_total", "Host writes copied for the appliance.", "counter", (_, c) => c.copiedWrites),
        perSplitter(
          "anytime_switch_buffer_waits_total",
          "Host writes held because the copy buffer was full (--on-full=wait).",
          "counter",
          (_, c) => c.bufferWaits,
        ),
        perSplitter(
          "anytime_switch_buffer_wait_seconds_total",
          "Time host writes were held for copy-buffer room, in all.",
          "counter",
          (_, c) => c.bufferWaitSeconds,
        ),
        perSplitter(
          "anytime_switch_missed_writes_total",
          "Host writes left to the dirty region log alone (marking mode); resync repairs them.",
          "counter",
          (_, c) => c.missedWrites,
        ),
        perSplitter("anytime_switch_marking_entries_total", "Times the switch dropped to marking mode.", "counter", (_, c) => c.markingEntries),
      );
    }
    const volumes = this.#deps.appliance?.volumes() ?? [];
    if (volumes.length > 0) {
      const perJournal = (name: string, help: string, value: (counters: JournalCounters) => number): MetricFamily => ({
        name,
        help,
        type: "counter",
        samples: volumes.map((v) => ({ labels: { volume: v.name }, value: value(v.journalCounters) })),
      });
      families.push(
        perJournal("anytime_journal_group_writes_total", "Group commits the journal wrote.", (c) => c.groupWrites),
        perJournal("anytime_journal_group_write_bytes_total", "Record bytes the journal's group commits wrote.", (c) => c.groupWriteBytes),
        perJournal(
          "anytime_journal_write_seconds_total",
          "Time a group write was outstanding (one at a time; hand-off to the disk and back included): near the elapsed time, the write stage paces the ingest.",
          (c) => c.writeInFlightUs / 1e6,
        ),
        perJournal("anytime_journal_syncs_total", "Syncs the journal completed.", (c) => c.syncs),
        perJournal("anytime_journal_sync_seconds_total", "Time a sync was outstanding (one at a time).", (c) => c.syncInFlightUs / 1e6),
      );
    }
    if (this.#deps.nbdConnections !== undefined) {
      families.push({ name: "anytime_nbd_connections", help: "NBD connections open now.", type: "gauge", samples: [{ labels: {}, value: this.#deps.nbdConnections() }] });
    }
    return families;
  }

  // -------------------------------------------------------------------------------------

  #volumeNames(): string[] {
    const names = new Set<string>();
    for (const volume of this.#deps.appliance?.volumes() ?? []) names.add(volume.name);
    for (const name of this.#deps.switchNode?.splitters.keys() ?? []) names.add(name);
    return [...names].sort();
  }

  #volume(name: string): Volume | undefined {
    try {
      return this.#deps.appliance?.volume(name);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The appliance's volume, or why this process cannot answer. */
  #needVolume(name: string, what: string): Volume {
    if (this.#deps.appliance === undefined) {
      if (this.#deps.switchNode?.splitters.has(name)) {
        throw new UnavailableError(`Cannot answer ${what} of volume "${name}" on the switch: ask the appliance's API`);
      }
      this.#unknownVolume(name);
    }
    const volume = this.#volume(name);
    if (volume === undefined) this.#unknownVolume(name);
    return volume;
  }

  #unknownVolume(name: string): never {
    const names = this.#volumeNames();
    throw new NotFoundError(
      `Volume "${name}" is not protected here` + (names.length > 0 ? `; volumes: ${names.join(", ")}` : "; no volumes yet"),
    );
  }

  #linked(name: string, splitter: Splitter | undefined): boolean {
    if (splitter !== undefined) return this.#deps.switchNode?.link.state === "streaming";
    return this.#deps.applianceLink?.isLinked(name) ?? false;
  }

  #state(splitter: Splitter | undefined, linked: boolean): VolumeState {
    if (splitter !== undefined) {
      if (splitter.state === "closed") return "stopped";
      if (splitter.restoring) return "restoring";
      if (splitter.resyncing) return "resyncing";
      return splitter.state === "marking" ? "marking" : "protecting";
    }
    return linked ? "protecting" : "stopped";
  }

  /** In one process the appliance indexes a record when durable: wait for that too. */
  async #waitIndexed(volume: Volume | undefined, seq: number): Promise<void> {
    if (volume === undefined) return;
    const deadlineUs = this.#deps.clock.nowUs() + serverLimits.acknowledgeWaitMs * 1000;
    while (volume.head.seq < seq && this.#deps.clock.nowUs() < deadlineUs) {
      await this.#deps.clock.sleep(serverLimits.acknowledgePollMs);
    }
  }
}

/** A request through the switch; no answer from it is the API's 503. */
async function throughSwitch<T>(request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (error) {
    if (!(error instanceof SwitchUnavailableError)) throw error;
    throw new UnavailableError(error.message, { cause: error });
  }
}

function lagOf(splitter: Splitter, nowUs: number): number {
  const oldestUs = splitter.oldestUnacknowledgedTimeUs;
  return oldestUs === undefined ? 0 : Math.max(0, (nowUs - oldestUs) / 1e6);
}

function pointJson(point: { seq: number; timeUs: number }): PointJson {
  return { seq: point.seq, time: formatTimeUs(point.timeUs) };
}

function resolvedJson(report: { seq: number; timeUs: number; landedOn: string }): ResolvedPointJson {
  return { seq: report.seq, time: formatTimeUs(report.timeUs), landedOn: report.landedOn };
}

function intervalJson(interval: TimelineInterval, head: { seq: number; timeUs: number }): IntervalJson {
  return { from: pointJson(interval.from), to: pointJson(interval.to ?? head), reason: interval.reason };
}
