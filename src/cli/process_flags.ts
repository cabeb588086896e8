/**
 * The flags of the commands that run the product (`serve`, `appliance`, `switch`) and their
 * defaults (SPEC.md "Command line"): one table, which the runtime's commands parse with
 * (`server/process_commands.ts`) and the help prints (`usage.ts`), so the two cannot differ.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * import { serveFlags } from "./process_flags.ts";
 * const { flags } = parseArgs(["--data", "/var/lib/anytime", "--volume", "db=/dev/vg0/db"], serveFlags);
 * flags.volume; // ["db=/dev/vg0/db"]
 * ```
 *
 * @module
 */

/** Defaults of SPEC.md: everything on loopback unless told otherwise. */
export const processDefaults = {
  nbdAddress: "127.0.0.1:10809",
  httpAddress: "127.0.0.1:7380",
  linkAddress: "127.0.0.1:7300",
} as const;

const switchSideFlags = {
  volume: { kind: "list", valueName: "NAME=PATH[:SIZE]", summary: "a volume to protect (repeat for more); SIZE creates PATH if missing" },
  buffer: { kind: "string", valueName: "SIZE", summary: "copy buffer per volume, at least 4MiB (default 64MiB)" },
  region: { kind: "string", valueName: "SIZE", summary: "dirty region log region size (default 1MiB)" },
  "on-full": { kind: "string", valueName: "mark|wait", summary: "what a full copy buffer does (default mark)" },
} as const;

const imageFlags = {
  "overlay-max": {
    kind: "string",
    valueName: "SIZE",
    summary: "scratch per writable image VOL@POINT+rw, in memory (default 256MiB)",
  },
} as const;

const keyFlags = {
  "token-file": { kind: "string", valueName: "FILE", summary: "HTTP bearer token (created, mode 0600, if missing)" },
  "secret-file": { kind: "string", valueName: "FILE", summary: "switch-appliance shared secret (same rule)" },
} as const;

/** `anytime serve`: the switch and the appliance together, in one OS process (all-in-one). */
export const serveFlags = {
  data: { kind: "string", valueName: "DIR", summary: "where the journal, maps and DRL live (required)" },
  nbd: { kind: "string", valueName: "HOST:PORT", summary: `NBD for volumes and images (default ${processDefaults.nbdAddress})` },
  http: { kind: "string", valueName: "HOST:PORT", summary: `HTTP API (default ${processDefaults.httpAddress})` },
  "no-initial-copy": { kind: "boolean", summary: "do not journal an existing PATH first; its unjournaled blocks read as zeros in images" },
  ...switchSideFlags,
  ...imageFlags,
  ...keyFlags,
} as const;

/** `anytime appliance`: the data protection server. */
export const applianceFlags = {
  data: { kind: "string", valueName: "DIR", summary: "where the journal and maps live (required)" },
  listen: { kind: "string", valueName: "HOST:PORT", summary: `where switches connect (default ${processDefaults.linkAddress})` },
  nbd: { kind: "string", valueName: "HOST:PORT", summary: `NBD for images (default ${processDefaults.nbdAddress})` },
  http: { kind: "string", valueName: "HOST:PORT", summary: `HTTP API (default ${processDefaults.httpAddress})` },
  ...imageFlags,
  ...keyFlags,
} as const;

/** `anytime switch`: the splitter in front of the primaries. */
export const switchFlags = {
  state: { kind: "string", valueName: "DIR", summary: "holds the dirty region log and restore checkpoints (required)" },
  appliance: { kind: "string", valueName: "HOST:PORT", summary: `the appliance's --listen address (default ${processDefaults.linkAddress})` },
  nbd: { kind: "string", valueName: "HOST:PORT", summary: `NBD for the volumes, read-write (default ${processDefaults.nbdAddress})` },
  http: { kind: "string", valueName: "HOST:PORT", summary: `HTTP API: status, resync (default ${processDefaults.httpAddress})` },
  ...switchSideFlags,
  ...keyFlags,
} as const;

/** The flag table of each command that runs the product. */
export const processCommandFlags = { serve: serveFlags, appliance: applianceFlags, switch: switchFlags } as const;
