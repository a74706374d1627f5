// A real confabd for the browser tests: a child process on free loopback
// ports with a temporary data directory, restartable on the same ports
// and data. The binary is $CONFABD (default target/debug/confabd); a
// missing binary fails the run.

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export function confabdPath() {
  const path = resolve(ROOT, process.env.CONFABD ?? "target/debug/confabd");
  if (!existsSync(path)) {
    throw new Error(`confabd not found at ${path}: build it (cargo build -p confab-server) or set CONFABD`);
  }
  return path;
}

async function sparePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Confabd {
  static async start() {
    const d = new Confabd();
    d.dataDir = mkdtempSync(join(tmpdir(), "confab-web-"));
    d.tcpPort = await sparePort();
    d.httpPort = await sparePort();
    await d.launch();
    return d;
  }

  get base() {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get logPath() {
    return join(this.dataDir, "confabd.log");
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  async launch() {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONFAB_") && k !== "DATABASE_URL") env[k] = v;
    env.RUST_LOG = "info,sqlx=warn";
    const log = openSync(this.logPath, "a");
    // prettier-ignore
    const child = spawn(confabdPath(), [
      "--listen", `127.0.0.1:${this.tcpPort}`,
      "--http-listen", `127.0.0.1:${this.httpPort}`,
      "--metrics-listen", "off",
      "--data-dir", this.dataDir,
      "--shards", "2",
      "--kdf-memory-kib", "64",
      "--kdf-iterations", "1",
    ], { env, stdio: ["ignore", log, log] });
    closeSync(log);
    this.child = child;
    let gone = false;
    this.exited = new Promise((r) =>
      child.once("exit", () => {
        gone = true;
        r();
      }),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (gone) throw new Error(`confabd exited at start-up:\n${this.log()}`);
      try {
        if ((await fetch(`${this.base}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`confabd not ready within 60 s:\n${this.log()}`);
      await sleep(50);
    }
  }

  /** SIGTERM: connections get CLOSE SHUTTING_DOWN, writes are committed. */
  async stop() {
    this.child?.kill("SIGTERM");
    await this.exited;
  }

  async dispose() {
    this.child?.kill("SIGKILL");
    await this.exited;
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
