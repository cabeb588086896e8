/**
 * Where the client finds the API and its token (SPEC.md, "Command line"): `--api URL`, else
 * `ANYTIME_API`, else `http://127.0.0.1:7380`; the token from `--token`, else `--token-file F`,
 * else `ANYTIME_TOKEN`, else `ANYTIME_TOKEN_FILE`. Flags win over the environment so a
 * one-off command can point elsewhere without unsetting anything.
 *
 * @module
 */
import { UsageError } from "./args.ts";
import { cliLimits } from "./cli_limits.ts";

/** SPEC: the HTTP API listens on 127.0.0.1:7380 unless told otherwise. */
export const DEFAULT_API_URL = "http://127.0.0.1:7380";

/** The API to talk to, and where the token came from (said back when the server refuses it). */
export interface ApiConnection {
  readonly baseUrl: string;
  readonly token?: string;
  /** `--token`, `--token-file "F"`, `ANYTIME_TOKEN`, `ANYTIME_TOKEN_FILE "F"`, or `none`. */
  readonly tokenSource: string;
}

/** What {@link resolveApiConnection} reads: the environment and, for a token file, the file. */
export interface ApiConnectionDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readTextFile(path: string): Promise<string>;
}

/**
 * Resolves the base URL and token from flags and environment.
 *
 * @example
 * ```ts
 * const connection = await resolveApiConnection(
 *   { env: { ANYTIME_TOKEN: "secret" }, readTextFile: () => Promise.reject(new Error("unused")) },
 *   { api: "127.0.0.1:9000" },
 * );
 * connection.baseUrl;     // "http://127.0.0.1:9000"
 * connection.tokenSource; // "ANYTIME_TOKEN"
 * ```
 * @throws {UsageError} for a URL that is not http(s), or a token file that cannot be read or
 * holds no token.
 */
export async function resolveApiConnection(
  deps: ApiConnectionDeps,
  flags: { api?: string; token?: string; tokenFile?: string },
): Promise<ApiConnection> {
  const apiText = flags.api ?? nonEmpty(deps.env.ANYTIME_API) ?? DEFAULT_API_URL;
  const baseUrl = normalizeBaseUrl(apiText, flags.api === undefined ? "ANYTIME_API" : "--api");
  if (flags.token !== undefined) {
    return { baseUrl, token: checkToken(flags.token, "--token"), tokenSource: "--token" };
  }
  if (flags.tokenFile !== undefined) {
    const source = `--token-file "${flags.tokenFile}"`;
    return { baseUrl, token: await readToken(deps, flags.tokenFile, source), tokenSource: source };
  }
  const envToken = nonEmpty(deps.env.ANYTIME_TOKEN);
  if (envToken !== undefined) {
    return { baseUrl, token: checkToken(envToken, "ANYTIME_TOKEN"), tokenSource: "ANYTIME_TOKEN" };
  }
  const envTokenFile = nonEmpty(deps.env.ANYTIME_TOKEN_FILE);
  if (envTokenFile !== undefined) {
    const source = `ANYTIME_TOKEN_FILE "${envTokenFile}"`;
    return { baseUrl, token: await readToken(deps, envTokenFile, source), tokenSource: source };
  }
  return { baseUrl, tokenSource: "none" };
}

/**
 * Turns what a user types into a base URL: `host:port` gets `http://`, a trailing `/` goes.
 * A path is kept (an API behind a reverse proxy at `https://ops.example/anytime`).
 *
 * @example
 * ```ts
 * normalizeBaseUrl("127.0.0.1:7380", "--api"); // "http://127.0.0.1:7380"
 * normalizeBaseUrl("https://ops.example/anytime/", "--api"); // "https://ops.example/anytime"
 * ```
 * @throws {UsageError} when the text is not an http or https URL.
 */
export function normalizeBaseUrl(text: string, source: string): string {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`Cannot use API URL "${text}" from ${source}: not a URL`, { flag: "--api" });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`Cannot use API URL "${text}" from ${source}: expected http:// or https://`, {
      flag: "--api",
    });
  }
  if (url.search !== "" || url.hash !== "") {
    throw new UsageError(`Cannot use API URL "${text}" from ${source}: a base URL has no query or fragment`, {
      flag: "--api",
    });
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

async function readToken(deps: ApiConnectionDeps, path: string, source: string): Promise<string> {
  let text: string;
  try {
    text = await deps.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`Cannot read token file "${path}": ${reason}`, { flag: "--token-file" });
  }
  if (text.length > cliLimits.tokenFileCharsMax) {
    throw new UsageError(
      `Cannot use token file "${path}": ${text.length} characters, a token file has at most ${cliLimits.tokenFileCharsMax}`,
      { flag: "--token-file" },
    );
  }
  return checkToken(text, source);
}

/** A token is one line of visible ASCII (it goes in an HTTP header). */
function checkToken(text: string, source: string): string {
  const token = text.trim();
  if (token === "") throw new UsageError(`The token from ${source} is empty`, { flag: "--token" });
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(`The token from ${source} has spaces or characters that cannot go in an HTTP header`, {
      flag: "--token",
    });
  }
  return token;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
