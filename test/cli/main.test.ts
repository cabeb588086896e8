/**
 * Proves `runCli` end to end against the fake API (`fake_api.ts`, SPEC's routes on a Hono app
 * passed as `fetch`): every client command with its human and `--json` output, the exit codes
 * scripts rely on (0 success, 1 refused with the server's message on stderr, 2 usage errors
 * that make no request), token and URL resolution, `image` printing only the URI on stdout,
 * `restore` waiting with progress until the job ends (the fake job advances per poll) or
 * returning at once with `--no-wait`, and dispatch of the commands that run the product.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.ts";
import { processCommandFlags } from "../../src/cli/process_flags.ts";
import { CLI_VERSION } from "../../src/cli/version.ts";
import { cli } from "./cli_harness.ts";
import { createFakeApi, FAKE_TOKEN, fakeProcess } from "./fake_api.ts";

const auth = ["--token", FAKE_TOKEN];

describe("status and volumes", () => {
  it("status VOL shows one screen with local and UTC times", async () => {
    const run = await cli(["status", "db", ...auth]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toContain("Volume db: protecting, 1.00 GiB, switch linked\n");
    expect(run.stdout).toContain("Window to    seq:812     2026-11-22 11:15:10 +01:00 (2026-11-22T10:15:10.123456Z)");
    expect(run.stdout).toContain("Lag (RPO)    0s");
    expect(run.stdout).toContain("seq:400 .. seq:401");
    expect(run.stdout).toContain("link down");
  });

  it("status without VOL shows the process and the volumes table", async () => {
    const run = await cli(["status", ...auth], { timeZone: "UTC" });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^anytime serve 0\.1\.0 on node v22\.11\.0, up since 2026-11-22 07:55:00 \+00:00/);
    expect(run.stdout).toContain("NBD nbd://127.0.0.1:10809\n");
    expect(run.stdout).toMatch(/\ndb +protecting +1\.00 GiB +2026-11-22 08:00:00 → 10:15:10 \(2h 15m\)/);
    expect(run.stdout).toMatch(/\nlogs +marking +256 MiB .* 12s .*switch not linked, 1 gap, 1 suspect interval/);
  });

  it("--json prints the API's JSON, parseable back", async () => {
    const fake = createFakeApi();
    const volumes = JSON.parse((await cli(["volumes", "--json", ...auth], { fake })).stdout);
    expect(volumes).toEqual({ volumes: fake.volumes });
    const status = JSON.parse((await cli(["status", "db", "--json", ...auth], { fake })).stdout);
    expect(status).toEqual(fake.volumes[0]);
    const all = JSON.parse((await cli(["status", "--json", ...auth], { fake })).stdout);
    expect(all).toEqual({ process: fakeProcess, volumes: fake.volumes });
  });

  it("reads lists the same when a server answers bare arrays", async () => {
    const fake = createFakeApi({ bareLists: true });
    const volumes = JSON.parse((await cli(["volumes", "--json", ...auth], { fake })).stdout);
    expect(volumes.volumes.map((volume: { name: string }) => volume.name)).toEqual(["db", "logs"]);
    const snapshots = JSON.parse((await cli(["snapshots", "db", "--json", ...auth], { fake })).stdout);
    expect(snapshots.volume).toBe("db");
    expect(snapshots.snapshots).toHaveLength(2);
  });
});

describe("refused requests exit 1 and say why", () => {
  it("a wrong token: 401, the server's message, where the token came from", async () => {
    const run = await cli(["status", "db", "--token-file", "/etc/anytime/token"], {
      files: { "/etc/anytime/token": "not-the-token\n" },
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
      "anytime: refused (401 unauthorized): Missing or wrong bearer token\n" +
        '  The token came from --token-file "/etc/anytime/token"; check it is this server\'s token.\n',
    );
  });

  it("no token at all: 401 and how to give one", async () => {
    const run = await cli(["volumes"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("No token was given: pass --token-file F");
  });

  it("an unknown volume: 404 with the server's message", async () => {
    const run = await cli(["status", "nope", ...auth]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('anytime: refused (404 not_found): Unknown volume "nope"\n');
  });

  it("a malformed POINT: 400 quoting the point", async () => {
    const fake = createFakeApi();
    const run = await cli(["image", "db", "--at", "seq:x", ...auth], { fake });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe('anytime: refused (400 bad_point): Cannot parse point "seq:x": "x" is not a sequence number\n');
    expect(fake.requests.at(-1)?.body).toEqual({ at: "seq:x", writable: false });
  });

  it("a point outside the window: 422 with the available range", async () => {
    const run = await cli(["restore", "db", "--at", "seq:99999", ...auth]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("refused (422 point_unavailable)");
    expect(run.stderr).toContain("  Available: seq:1 .. seq:812\n");
  });

  it("a conflict: 409", async () => {
    const run = await cli(["snapshot", "db", "nightly", ...auth]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('anytime: refused (409 conflict): Snapshot "nightly" of db exists\n');
  });

  it("an API that is not running: says where it looked and what to start", async () => {
    const refused = () => {
      throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:7380") });
    };
    const run = await cli(["status", ...auth], { fetch: refused });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "anytime: Cannot reach the Anytime API at http://127.0.0.1:7380: connect ECONNREFUSED 127.0.0.1:7380" +
        " — is `anytime serve` running?\n",
    );
  });

  it("a real connection refused through the runtime's fetch", async () => {
    const run = await cli(["volumes", "--api", "http://127.0.0.1:1", ...auth], { fetch: globalThis.fetch });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^anytime: Cannot reach the Anytime API at http:\/\/127\.0\.0\.1:1: .+ — is `anytime serve` running\?\n$/);
  });

  it("something that is not the API (a proxy's page, a missing route): quoted, exit 1", async () => {
    const proxy = () => new Response("<html>502 Bad Gateway</html>", { status: 502 });
    const run = await cli(["volumes", ...auth], { fetch: proxy });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'anytime: refused (502 http_502): The API answered GET http://127.0.0.1:7380/v1/volumes with HTTP 502: "<html>502 Bad Gateway</html>"\n',
    );
    const notJson = () => new Response("hello", { status: 200 });
    const second = await cli(["volumes", ...auth], { fetch: notJson });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('with a body that is not JSON: "hello"');
  });
});

describe("usage errors exit 2 and make no request", () => {
  const cases: [string[], string][] = [
    [["fooo"], 'anytime: Unknown command "fooo"\n'],
    [["snapshto", "db", "x"], 'anytime: Unknown command "snapshto": did you mean "snapshot"?\n'],
    [["restore", "db", "--at", "now", "--fulll"], 'anytime: Unknown flag "--fulll": did you mean --full?\n'],
    [["image", "db"], "anytime: Missing flag --at POINT\nUsage: anytime image VOL --at POINT [--writable]\n"],
    [["image", "db", "--at"], "anytime: Flag --at needs a value POINT\n"],
    [["snapshot", "db"], 'anytime: Missing argument NAME for "snapshot"\n'],
    [["snapshot", "rm", "db"], 'anytime: Missing argument NAME for "snapshot rm"\n'],
    [["snapshots"], 'anytime: Missing argument VOL for "snapshots"\n'],
    [["volumes", "extra"], 'anytime: Unexpected argument "extra" for "volumes"\n'],
    [["status", ""], 'anytime: Argument VOL of "status" is empty\n'],
    [["diff", "db", "--from", "seq:1"], "anytime: Missing flag --to POINT\n"],
    [["diff", "db", "--from", "seq:1", "--to", "now", "--limit", "ten"], 'anytime: Cannot use --limit "ten"'],
    [["volumes", "--api", "ftp://host"], 'anytime: Cannot use API URL "ftp://host" from --api: expected http:// or https://\n'],
    [["volumes", "--token-file", "/missing"], 'anytime: Cannot read token file "/missing": ENOENT'],
    [["volumes", "--token", "two words"], "anytime: The token from --token has spaces"],
    [["serve", "--data", "/tmp/x"], 'anytime: Command "serve" is not available in this build'],
    [["help", "nothing"], 'anytime: Unknown command "nothing"\n'],
  ];
  for (const [argv, message] of cases) {
    it(`anytime ${argv.join(" ")}`, async () => {
      const fake = createFakeApi();
      const run = await cli(argv, { fake });
      expect(run.code).toBe(2);
      expect(run.stdout).toBe("");
      expect(run.stderr.startsWith(message)).toBe(true);
      expect(fake.requests).toEqual([]);
    });
  }

  it("no arguments at all: the usage on stderr", async () => {
    const run = await cli([]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("anytime restore VOL --at POINT");
  });
});

describe("help and version", () => {
  it("help lists every command, including the ones that run the product", async () => {
    for (const argv of [["help"], ["--help"], ["-h"]]) {
      const run = await cli(argv);
      expect(run.code).toBe(0);
      for (
        const synopsis of [
          "anytime serve --data DIR --volume NAME=PATH[:SIZE]",
          "anytime appliance --data DIR",
          "anytime switch --state DIR --appliance HOST:PORT",
          "anytime demo [--keep]",
          "anytime status [VOL]",
          "anytime volumes",
          "anytime snapshot VOL NAME",
          "anytime snapshots VOL",
          "anytime snapshot rm VOL NAME",
          "anytime image VOL --at POINT [--writable]",
          "anytime diff VOL --from POINT --to POINT",
          "anytime restore VOL --at POINT [--instant] [--no-wait] [--full] [--force]",
          "anytime resync VOL [--full]",
          "anytime retention VOL [--window DURATION] [--keep GRID]",
          "anytime timeline VOL",
          "anytime jobs",
          "anytime job ID",
          "anytime job cancel ID",
          "anytime help [COMMAND]",
          "Exit codes: 0 success, 1 request refused",
        ]
      ) {
        expect(run.stdout).toContain(synopsis);
      }
    }
  });

  it("COMMAND --help and help COMMAND show its flags", async () => {
    const one = await cli(["restore", "--help"]);
    const two = await cli(["help", "restore"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(two.stdout);
    expect(one.stdout).toMatch(/^Usage: anytime restore VOL --at POINT/);
    expect(one.stdout).toContain("--no-wait");
    expect(one.stdout).toContain("--token-file F");
    expect((await cli(["help", "snapshot", "rm"])).stdout).toMatch(/^Usage: anytime snapshot rm VOL NAME/);
    expect((await cli(["help", "serve"])).stdout).toMatch(/^Usage: anytime serve --data DIR/);
  });

  it("the commands that run the product list every flag they parse, with its default", async () => {
    for (const [name, specs] of Object.entries(processCommandFlags)) {
      const help = (await cli(["help", name])).stdout;
      for (const flag of Object.keys(specs)) expect(help, `${name} --${flag}`).toMatch(new RegExp(`^  --${flag}\\b.* \\S`, "m"));
    }
    const serve = (await cli(["serve", "--help"])).stdout;
    expect(serve).toMatch(/^  --nbd HOST:PORT +NBD for volumes and images \(default 127\.0\.0\.1:10809\)$/m);
    expect(serve).toMatch(/^  --buffer SIZE +copy buffer per volume, at least 4MiB \(default 64MiB\)$/m);
    expect((await cli(["help", "switch"])).stdout).toMatch(/^  --http HOST:PORT +HTTP API: status, resync \(default 127\.0\.0\.1:7380\)$/m);
  });

  it("--version prints the package's version", async () => {
    const run = await cli(["--version"]);
    expect(run).toMatchObject({ code: 0, stdout: `anytime ${CLI_VERSION}\n` });
    const pkg = JSON.parse(await readFile("package.json", "utf8"));
    const deno = JSON.parse(await readFile("deno.json", "utf8"));
    expect(CLI_VERSION).toBe(pkg.version);
    expect(CLI_VERSION).toBe(deno.version);
  });
});

describe("connection", () => {
  it("takes --api, else ANYTIME_API, else 127.0.0.1:7380", async () => {
    const fake = createFakeApi();
    await cli(["volumes", ...auth], { fake });
    await cli(["volumes", ...auth], { fake, env: { ANYTIME_API: "http://10.0.0.5:9000/" } });
    await cli(["volumes", "--api", "backup.example:7380", ...auth], { fake, env: { ANYTIME_API: "http://10.0.0.5:9000" } });
    await cli(["--api=https://ops.example/anytime", "volumes", ...auth], { fake });
    expect(fake.requests.map((request) => request.url)).toEqual([
      "http://127.0.0.1:7380/v1/volumes",
      "http://10.0.0.5:9000/v1/volumes",
      "http://backup.example:7380/v1/volumes",
      "https://ops.example/anytime/v1/volumes",
    ]);
  });

  it("takes the token from --token, --token-file, ANYTIME_TOKEN, ANYTIME_TOKEN_FILE, in that order", async () => {
    const files = { "/run/token": `${FAKE_TOKEN}\n` };
    expect((await cli(["volumes", "--token-file", "/run/token"], { files })).code).toBe(0);
    expect((await cli(["volumes"], { env: { ANYTIME_TOKEN: FAKE_TOKEN } })).code).toBe(0);
    expect((await cli(["volumes"], { files, env: { ANYTIME_TOKEN_FILE: "/run/token" } })).code).toBe(0);
    const flagWins = await cli(["volumes", "--token", "wrong"], { env: { ANYTIME_TOKEN: FAKE_TOKEN } });
    expect(flagWins.code).toBe(1);
    expect(flagWins.stderr).toContain("The token came from --token;");
    const fake = createFakeApi();
    await cli(["volumes"], { fake, env: { ANYTIME_TOKEN: FAKE_TOKEN } });
    expect(fake.requests[0].authorization).toBe(`Bearer ${FAKE_TOKEN}`);
  });

  it("finds the command after global flags that take values", async () => {
    const run = await cli(["--token", FAKE_TOKEN, "--json", "snapshots", "db"]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).snapshots[0].name).toBe("nightly");
  });
});

describe("snapshots, images, diff, timeline, retention", () => {
  it("snapshot, snapshots, snapshot rm", async () => {
    const fake = createFakeApi();
    const created = await cli(["snapshot", "db", "before-migration", ...auth], { fake });
    expect(created.code).toBe(0);
    expect(created.stdout).toBe(
      'Snapshot "before-migration" of db: seq:813 at 2026-11-22 11:15:20 +01:00 (2026-11-22T10:15:20.123456Z)\n' +
        "Open it with: anytime image db --at snap:before-migration\n",
    );
    const list = await cli(["snapshots", "db", ...auth], { fake });
    expect(list.stdout.split("\n")[0]).toBe("NAME              SEQ      TIME (Europe/Berlin)        UTC");
    expect(list.stdout).toContain("before-migration  seq:813  2026-11-22 11:15:20 +01:00  2026-11-22T10:15:20.123456Z\n");
    const removed = await cli(["snapshot", "rm", "db", "before-migration", ...auth], { fake });
    expect(removed).toMatchObject({ code: 0, stdout: 'Removed snapshot "before-migration" of db.\n' });
    expect(fake.requests.at(-1)).toMatchObject({ method: "DELETE", path: "/v1/volumes/db/snapshots/before-migration" });
    const again = await cli(["snapshot", "rm", "db", "before-migration", "--json", ...auth], { fake });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('No snapshot "before-migration" of db');
  });

  it("names with ':' and '.' travel escaped in the path and come back whole", async () => {
    const fake = createFakeApi();
    expect((await cli(["snapshot", "db", "release:1.2", ...auth], { fake })).code).toBe(0);
    const removed = await cli(["snapshot", "rm", "db", "release:1.2", ...auth], { fake });
    expect(removed.code).toBe(0);
    expect(fake.requests.at(-1)?.path).toBe("/v1/volumes/db/snapshots/release%3A1.2");
    expect(fake.snapshots.get("db")?.map((snapshot) => snapshot.name)).toEqual(["nightly", "before-upgrade"]);
  });

  it("image prints only the URI on stdout; the point and any warning go to stderr", async () => {
    const run = await cli(["image", "logs", "--at", "seq:55", ...auth]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("nbd://127.0.0.1:10809/logs@seq:55\n");
    expect(run.stderr).toBe(
      "logs as of seq:55 at 2026-11-22 09:09:00 +01:00 (2026-11-22T08:09:00.123456Z), read-only image\n" +
        "Warning: seq:55 lies in a suspect interval (marking mode): data may be inconsistent\n",
    );
    const writable = await cli(["image", "db", "--at", "snap:before-upgrade", "--writable", ...auth]);
    expect(writable.stdout).toBe("nbd://127.0.0.1:10809/db@seq:700+rw\n");
    expect(writable.stderr).toContain("writable scratch image");
    expect(writable.stderr).not.toContain("Warning");
  });

  it("image --at takes a relative point (a value starting with '-') and --json", async () => {
    const fake = createFakeApi();
    const run = await cli(["image", "db", "--at", "-5m", "--json", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    const image = JSON.parse(run.stdout);
    expect(image).toMatchObject({ export: "db@seq:782", suspect: false, writable: false, point: { seq: 782 } });
    expect(fake.requests.at(-1)?.body).toEqual({ at: "-5m", writable: false });
  });

  it("diff summarizes and lists the first extents; --limit and --json", async () => {
    const fake = createFakeApi();
    const run = await cli(["diff", "db", "--from", "snap:nightly", "--to", "now", "--limit", "2", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("db: 25 extents differ, 1.56 MiB changed\n");
    expect(run.stdout).toContain("  from seq:120 at 2026-11-22 09:19:50 +01:00");
    expect(run.stdout).toContain("1048576  65536   1.00 MiB        64.0 KiB\n");
    expect(run.stdout).toContain("... and 23 more extents");
    expect(fake.requests.at(-1)?.path).toBe("/v1/volumes/db/diff?from=snap%3Anightly&to=now");
    const json = JSON.parse((await cli(["diff", "db", "--from", "seq:1", "--to", "seq:2", "--json", ...auth])).stdout);
    expect(json.extents).toHaveLength(25);
    expect(json.changedBytes).toBe(25 * 65536);
  });

  it("timeline lists the markers; --limit goes to the server", async () => {
    const fake = createFakeApi();
    const run = await cli(["timeline", "db", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Timeline of db: window seq:1 → seq:812 (2h 15m)\n");
    expect(run.stdout).toMatch(/seq:400 +2026-11-22 10:06:30 \+01:00 +2026-11-22T09:06:30\.123456Z +gap +reason="link down" writes=0\n/);
    expect(fake.requests.at(-1)?.path).toBe("/v1/volumes/db/timeline");
    const limited = JSON.parse((await cli(["timeline", "db", "--limit", "1", "--json", ...auth], { fake })).stdout);
    expect(limited.entries).toHaveLength(1);
    expect(fake.requests.at(-1)?.path).toBe("/v1/volumes/db/timeline?limit=1");
  });

  it("retention shows without flags and PUTs only the flags given", async () => {
    const fake = createFakeApi();
    const shown = await cli(["retention", "db", ...auth], { fake });
    expect(shown.stdout).toBe("Retention of db:\n  Any point  48h\n  Keep       24 x 1h, 14 x 1d, 8 x 1w\n");
    expect(fake.requests.at(-1)?.method).toBe("GET");
    const set = await cli(["retention", "db", "--window", "72h", ...auth], { fake });
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("Any point  72h");
    expect(fake.requests.at(-1)).toMatchObject({ method: "PUT", body: { window: "72h" } });
    const cleared = await cli(["retention", "db", "--keep", "", "--json", ...auth], { fake });
    expect(JSON.parse(cleared.stdout)).toEqual({ window: "72h", keep: "" });
    expect(fake.requests.at(-1)?.body).toEqual({ keep: "" });
    const bad = await cli(["retention", "db", "--window", "forever", ...auth], { fake });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Cannot parse duration "forever"');
  });
});

describe("restore and resync", () => {
  it("restore waits with progress until the job is done, then prints the exact point", async () => {
    const fake = createFakeApi({ jobPollsToFinish: 4 });
    const run = await cli(["restore", "db", "--at", "snap:before-upgrade", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("Restored db to seq:700 at 2026-11-22 10:56:30 +01:00 (2026-11-22T09:56:30.123456Z)\n");
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "Restoring db to seq:700 at 2026-11-22 10:56:30 +01:00 (2026-11-22T09:56:30.123456Z): job job-1;" +
        " Ctrl-C stops watching, not the job (anytime job cancel job-1)",
    );
    expect(lines[1]).toBe("restore db queued");
    expect(lines[2]).toMatch(/^restore db \[#######\.+\]  25\.0%  16\.0 MiB \/ 64\.0 MiB  32\.0 MiB\/s  ETA 2s$/);
    expect(lines.at(-1)).toMatch(/^restore db \[#{30}\]  100\.0%  64\.0 MiB \/ 64\.0 MiB  done$/);
    const polls = fake.requests.filter((request) => request.path === "/v1/jobs/job-1");
    expect(polls).toHaveLength(4);
    expect(run.sleeps).toEqual([500, 500, 500, 500]);
    expect(fake.requests[0]).toMatchObject({
      method: "POST",
      path: "/v1/volumes/db/restore",
      body: { at: "snap:before-upgrade", instant: false, full: false, force: false },
    });
  });

  it("restore on a terminal redraws one line with \\r", async () => {
    const run = await cli(["restore", "db", "--at", "seq:700", "--instant", ...auth], { isTty: true, columns: 100 });
    expect(run.code).toBe(0);
    const progress = run.stderr.split("\n")[1];
    expect(progress.split("\r").length).toBe(6);
    expect(progress).toContain("\rrestore db [###############...............]  50.0%");
  });

  it("restore passes --instant, --full and --force", async () => {
    const fake = createFakeApi();
    await cli(["restore", "db", "--at", "seq:700", "--instant", "--full", "--force", "--no-wait", ...auth], { fake });
    expect(fake.requests[0].body).toEqual({ at: "seq:700", instant: true, full: true, force: true });
  });

  it("restore --no-wait prints only the job id on stdout and does not poll", async () => {
    const fake = createFakeApi();
    const run = await cli(["restore", "db", "--at", "seq:700", "--no-wait", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("job-1\n");
    expect(run.stderr).toContain("Follow it with: anytime job job-1");
    expect(fake.requests.map((request) => request.path)).toEqual(["/v1/volumes/db/restore"]);
    expect(run.sleeps).toEqual([]);
    const json = await cli(["restore", "db", "--at", "seq:700", "--no-wait", "--json", ...auth], { fake });
    expect(JSON.parse(json.stdout)).toMatchObject({ id: "job-2", kind: "restore", state: "queued", point: { seq: 700 } });
    expect(json.stderr).toBe("");
  });

  it("restore --json waits without progress and prints the final job", async () => {
    const run = await cli(["restore", "db", "--at", "seq:700", "--json", ...auth]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(JSON.parse(run.stdout)).toMatchObject({ state: "done", progress: 1, point: { seq: 700, landedOn: "write" } });
  });

  it("a restore job that fails exits 1 with the job's error", async () => {
    const fake = createFakeApi({ restoreFailsAtPoll: 2 });
    const run = await cli(["restore", "db", "--at", "seq:700", ...auth], { fake });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain(
      "anytime: restore job job-1 of db failed: Write to the primary failed at offset 1048576: EIO (primary_write_error)\n",
    );
  });

  it("resync waits too; --full re-baselines", async () => {
    const fake = createFakeApi();
    const run = await cli(["resync", "logs", ...auth], { fake });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("Resynchronized logs: 2.56 MiB copied\n");
    const full = await cli(["resync", "db", "--full", "--no-wait", ...auth], { fake });
    expect(full.stdout).toBe("job-2\n");
    expect(fake.requests.at(-1)?.body).toEqual({ full: true });
  });
});

describe("jobs", () => {
  it("jobs, job ID, job cancel ID", async () => {
    const fake = createFakeApi();
    await cli(["restore", "db", "--at", "seq:700", "--no-wait", ...auth], { fake });
    const list = await cli(["jobs", ...auth], { fake });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID +KIND +VOLUME +STATE +DONE +MOVED +STARTED \(Europe\/Berlin\) +NOTE\n/);
    expect(list.stdout).toMatch(/\njob-1 +restore +db +queued +0\.0% +0 B +2026-11-22 11:20:00 \+01:00 +to seq:700\n/);
    const one = await cli(["job", "job-1", ...auth], { fake });
    expect(one.stdout).toContain("Job job-1: restore of db\n");
    expect(one.stdout).toContain("Point     seq:700 at 2026-11-22 10:56:30 +01:00");
    const cancelled = await cli(["job", "cancel", "job-1", ...auth], { fake });
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe("Cancel requested: job job-1: restore db, cancelled after 16.0 MiB\n");
    expect(fake.requests.at(-1)).toMatchObject({ method: "DELETE", path: "/v1/jobs/job-1" });
    const json = JSON.parse((await cli(["jobs", "--json", ...auth], { fake })).stdout);
    expect(json.jobs[0]).toMatchObject({ id: "job-1", state: "cancelled" });
    const unknown = await cli(["job", "job-9", ...auth], { fake });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('anytime: refused (404 not_found): Unknown job "job-9"\n');
  });
});

describe("commands that run the product", () => {
  it("are dispatched to processCommands with their arguments and exit code", async () => {
    const calls: [string, readonly string[]][] = [];
    const processCommands = {
      serve: (args: readonly string[]) => {
        calls.push(["serve", args]);
        return Promise.resolve(0);
      },
      demo: (args: readonly string[]) => {
        calls.push(["demo", args]);
        return Promise.resolve(3);
      },
    };
    const serve = await cli(["serve", "--data", "/var/lib/anytime", "--volume", "db=/dev/sdb", "--volume", "logs=/x:1GiB"], {
      processCommands,
    });
    expect(serve.code).toBe(0);
    expect((await cli(["demo"], { processCommands })).code).toBe(3);
    expect(calls).toEqual([
      ["serve", ["--data", "/var/lib/anytime", "--volume", "db=/dev/sdb", "--volume", "logs=/x:1GiB"]],
      ["demo", []],
    ]);
    const missing = await cli(["switch", "--state", "/s"], { processCommands });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Command "switch" is not available in this build');
    const help = await cli(["serve", "--help"], { processCommands });
    expect(help).toMatchObject({ code: 0 });
    expect(help.stdout).toMatch(/^Usage: anytime serve --data DIR/);
    expect(calls).toHaveLength(2);
  });

  it("a usage error thrown by one of them exits 2 with its usage", async () => {
    const processCommands = {
      appliance: () => Promise.reject(new UsageError("anytime appliance needs --data", { flag: "--data", command: "appliance" })),
    };
    const run = await cli(["appliance"], { processCommands });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("anytime: anytime appliance needs --data\nUsage: anytime appliance --data DIR [--listen HOST:PORT]" +
      " [--http HOST:PORT] [--nbd HOST:PORT] [--token-file F] [--secret-file F]\n");
  });
});
