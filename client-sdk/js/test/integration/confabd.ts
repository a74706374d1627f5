/**
 * A real `confabd` as a child process, on free loopback ports with a
 * temporary data directory: what the integration tests talk to.
 *
 * The binary is $CONFABD, else ../../target/debug/confabd relative to
 * client-sdk/js (where the workspace's `cargo build` puts it). A missing
 * binary fails the tests; it never skips them.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import { ConfabClient, type ConfabClientOptions, type WebSocketConstructor } from "../../src/index.js";

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The confabd binary the tests run. */
export function confabdPath(): string {
  const path = resolve(PACKAGE_DIR, process.env["CONFABD"] ?? "../../target/debug/confabd");
  if (!existsSync(path)) {
    throw new Error(
      `confabd not found at ${path}: build it (cargo build --bin confabd) or set CONFABD to its path. ` +
        "The integration tests never skip.",
    );
  }
  return path;
}

/** A port on 127.0.0.1 that was free when asked. */
export async function sparePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => ok(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Confabd {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dataDir: string,
    readonly tcpPort: number,
    readonly httpPort: number,
    private readonly extra: string[],
  ) {}

  /** Starts confabd on fresh ports and a fresh data directory. */
  static async start(extra: string[] = []): Promise<Confabd> {
    const dataDir = mkdtempSync(join(tmpdir(), "confab-js-"));
    const server = new Confabd(dataDir, await sparePort(), await sparePort(), extra);
    await server.launch();
    return server;
  }

  /** The WebSocket address. */
  get url(): string {
    return `ws://127.0.0.1:${this.httpPort}/ws`;
  }

  get logPath(): string {
    return join(this.dataDir, "confabd.log");
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  /** (Re)starts the process on the same ports and data directory, and waits until it is ready. */
  async launch(): Promise<void> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      // Hermetic: only the flags below configure it.
      if (!k.startsWith("CONFAB_") && k !== "DATABASE_URL") env[k] = v;
    }
    env["RUST_LOG"] = "info,sqlx=warn";
    const log = openSync(this.logPath, "a");
    const child = spawn(
      confabdPath(),
      [
        "--listen", `127.0.0.1:${this.tcpPort}`,
        "--http-listen", `127.0.0.1:${this.httpPort}`,
        "--metrics-listen", "off",
        "--data-dir", this.dataDir,
        "--shards", "2",
        "--kdf-memory-kib", "64",
        "--kdf-iterations", "1",
        ...this.extra,
      ],
      { env, stdio: ["ignore", log, log] },
    );
    closeSync(log);
    this.child = child;
    this.exited = new Promise((r) => child.once("exit", () => r()));
    let exitedEarly = false;
    void this.exited.then(() => {
      exitedEarly = true;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exitedEarly) throw new Error(`confabd exited at start-up:\n${this.log()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`confabd not ready within 60 s:\n${this.log()}`);
      await sleep(50);
    }
  }

  /** SIGTERM (graceful: connections get CLOSE SHUTTING_DOWN), and waits for the exit. */
  async stop(): Promise<void> {
    this.child?.kill("SIGTERM");
    await this.exited;
  }

  /** SIGKILL: no shutdown of any kind. */
  async kill(): Promise<void> {
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** Stops the process and removes its data. */
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A client of this server over Node's `ws` package. */
  client(options: Partial<ConfabClientOptions> = {}): ConfabClient {
    return new ConfabClient({
      url: this.url,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      requestTimeoutMs: 10_000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      ...options,
    });
  }
}

/** A WebSocket whose live instances tests can cut (the transport ends, as on a network failure). */
export class CuttableWebSocket extends WebSocket {
  static readonly live = new Set<CuttableWebSocket>();

  constructor(url: string) {
    super(url);
    CuttableWebSocket.live.add(this);
    this.on("close", () => CuttableWebSocket.live.delete(this));
  }

  /** Ends every live connection abruptly (no closing handshake). */
  static cutAll(): void {
    for (const ws of CuttableWebSocket.live) ws.terminate();
  }
}

/** Waits until `cond()` holds, polling, or fails after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
