#!/usr/bin/env python3
"""Every Grafana panel queries metrics that exist (DESIGN.md invariant 9).

Starts confabd, a real Prometheus (configured from grafana/prometheus.yml
with spare loopback ports and a 1 s scrape interval) and confab-loadgen
(`mixed`: fan-out, churn and history, with a server rate limit low enough
that errors occur too), then evaluates every panel query of
grafana/dashboards/*.json through Prometheus's HTTP API. A query fails if
Prometheus rejects it, if it returns no series, or if it names a metric
that Prometheus has never scraped. Bounded: the whole check stops itself
after CHECK_TIMEOUT seconds.

Run by scripts/check-dashboards (which installs Prometheus and builds the
binaries); expects target/debug/confabd and target/debug/confab-loadgen.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK_TIMEOUT = 150
LOAD_SECONDS = 40


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on port {port} within {seconds} s")


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return get_json(url)
    except urllib.error.HTTPError as e:
        # 400/422 carry a JSON error for invalid PromQL; anything else (503
        # while the TSDB is still starting) has no JSON body: not ready yet.
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}: {body[:200]!r}"}
    except (urllib.error.URLError, OSError) as e:  # not listening yet
        return {"status": "error", "error": str(e)}


def panels(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def grafana_vars(expr):
    """What Grafana substitutes before a query reaches Prometheus."""
    return expr.replace("$__rate_interval", "30s").replace("$__interval", "5s")


METRIC = re.compile(r"\b((?:confab|process)_[a-z0-9_]+)\b")


def main():
    signal.alarm(CHECK_TIMEOUT)
    confabd = os.path.join(ROOT, "target/debug/confabd")
    loadgen = os.path.join(ROOT, "target/debug/confab-loadgen")
    server, admin, lg_metrics, prom = free_ports(4)
    tmp = tempfile.mkdtemp(prefix="confab-dashboards-")
    procs = []
    logs = {}

    def spawn(name, args, **kw):
        log = open(os.path.join(tmp, f"{name}.log"), "w")
        logs[name] = log.name
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        procs.append((name, p))
        return p

    try:
        spawn("confabd", [
            confabd,
            "--listen", f"127.0.0.1:{server}",
            "--metrics-listen", f"127.0.0.1:{admin}",
            "--data-dir", os.path.join(tmp, "data"),
            "--kdf-memory-kib", "8", "--kdf-iterations", "1",
            # Low enough that the load below is partly rate-limited, so the
            # error panels have series to show.
            "--rate-limit-per-sec", "100", "--rate-limit-burst", "20",
            "--shards", "2",
            # Only the binary protocol and the admin port: no fixed ports.
            "--http-listen", "off",
        # Its own SQLite store in the temp dir, whatever DATABASE_URL the
        # caller exports (scripts/test points it at a shared Postgres).
        ], env={**{k: v for k, v in os.environ.items()
                   if k not in ("DATABASE_URL", "CONFAB_DATABASE_URL")},
                "RUST_LOG": "warn"})
        wait_port(server, 30, "confabd")
        wait_port(admin, 10, "confabd's admin listener")

        with open(os.path.join(ROOT, "grafana/prometheus.yml")) as f:
            config = f.read()
        config = (config.replace("127.0.0.1:9464", f"127.0.0.1:{admin}")
                  .replace("127.0.0.1:9465", f"127.0.0.1:{lg_metrics}")
                  .replace("scrape_interval: 5s", "scrape_interval: 1s"))
        assert f"127.0.0.1:{admin}" in config and f"127.0.0.1:{lg_metrics}" in config, \
            "grafana/prometheus.yml no longer scrapes 127.0.0.1:9464 and 127.0.0.1:9465"
        prom_config = os.path.join(tmp, "prometheus.yml")
        with open(prom_config, "w") as f:
            f.write(config)
        spawn("prometheus", [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={os.path.join(tmp, 'prom')}",
            f"--web.listen-address=127.0.0.1:{prom}",
        ])
        wait_port(prom, 30, "prometheus")

        spawn("loadgen", [
            loadgen, "mixed",
            "--url", f"confab://127.0.0.1:{server}",
            "--metrics-listen", f"127.0.0.1:{lg_metrics}",
            "--server-metrics", f"127.0.0.1:{admin}",
            "--prefix", "dash",
            "--rooms", "4", "--members", "5", "--rate", "800",
            "--churn-rate", "5", "--history-rate", "20",
            "--warmup", "1", "--duration", str(LOAD_SECONDS), "--drain", "1",
            "--max-seconds", "100",
        ])

        # Wait until both targets are up and traffic flows, then give rate
        # windows (30 s) enough samples.
        ready_by = time.time() + 60
        while True:
            up = query(prom, "sum(up)")
            flowing = query(prom, "sum(rate(confab_loadgen_received_total[10s])) > 0")
            if (up.get("data", {}).get("result") and float(up["data"]["result"][0]["value"][1]) >= 2
                    and flowing.get("data", {}).get("result")):
                break
            if time.time() > ready_by:
                raise SystemExit("no traffic reached Prometheus within 60 s: see the logs below")
            time.sleep(1)
        time.sleep(8)

        failures = []
        checked = 0
        dashboards = sorted(glob.glob(os.path.join(ROOT, "grafana/dashboards/*.json")))
        assert dashboards, "no dashboards found"
        pending = []
        for path in dashboards:
            with open(path) as f:
                d = json.load(f)
            for p in panels(d):
                for t in p.get("targets", []):
                    if "expr" in t:
                        pending.append((os.path.basename(path), p.get("title", "?"), grafana_vars(t["expr"])))
        # Series that need a rare event (a churn disconnect, a late history
        # page) get a few more seconds before a query counts as failed.
        for attempt in range(4):
            names = set(get_json(f"http://127.0.0.1:{prom}/api/v1/label/__name__/values")["data"])
            still = []
            for item in pending:
                file, title, expr = item
                r = query(prom, expr)
                missing = sorted(set(METRIC.findall(expr)) - names)
                if r.get("status") != "success":
                    still.append((item, f"invalid: {r.get('error')}"))
                elif missing:
                    still.append((item, f"unknown metrics {missing}"))
                elif not r["data"]["result"]:
                    still.append((item, "no series"))
            if not still or attempt == 3:
                failures = still
                break
            pending = [i for i, _ in still]
            time.sleep(4)
        checked = sum(1 for path in dashboards for p in panels(json.load(open(path))) for t in p.get("targets", []) if "expr" in t)
        for (file, title, expr), why in failures:
            print(f"FAIL {file} / {title}: {why}\n     {expr}")
        if failures:
            for name, log in logs.items():
                print(f"--- {name} log (tail)")
                print("".join(open(log).readlines()[-15:]))
        print(f"dashboards: {checked - len(failures)} passed, {len(failures)} failed")
        return 1 if failures else 0
    except BaseException:
        for name, log in logs.items():
            print(f"--- {name} log (tail)")
            print("".join(open(log).readlines()[-15:]))
        raise
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
