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

The cluster dashboard (confab-cluster.json) needs cluster nodes: two
confabd nodes in cluster mode (a throwaway database on the Postgres of
DATABASE_URL, else postgres://postgres@127.0.0.1:5432; a nats-server of
their own on a spare port) with a second confab-loadgen on one of them, so
that commands are forwarded between them. Without Postgres or nats-server
that dashboard is skipped and says so; with CONFAB_REQUIRE_POSTGRES=1 it
fails instead.

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


def admin_database_url():
    """The Postgres to create the cluster's throwaway database on."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()


def psql(url, sql):
    return subprocess.run(["psql", url, "-qAtc", sql], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=20)


def partitions_owned(admin):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0
    m = re.search(r"^confab_cluster_partitions_owned (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0


def start_cluster(spawn, tmp, confabd, loadgen):
    """Two cluster nodes and a load generator on the first; returns the
    nodes' metrics addresses and the database to drop, or None and why."""
    nats = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None)
    if not nats:
        return None, "no nats-server binary", None
    if not shutil.which("psql"):
        return None, "no psql", None
    admin_url = admin_database_url()
    db = f"confab_dashboards_{os.getpid()}"
    r = psql(admin_url, f"CREATE DATABASE {db}")
    if r.returncode != 0:
        return None, f"no Postgres at {admin_url}: {r.stderr.strip()}", None
    db_url = urllib.parse.urlsplit(admin_url)._replace(path=f"/{db}").geturl()
    nats_port, a, a_admin, b, b_admin = free_ports(5)
    spawn("nats-server", [nats, "-a", "127.0.0.1", "-p", str(nats_port)])
    wait_port(nats_port, 10, "nats-server")
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("DATABASE_URL", "CONFAB_DATABASE_URL")}, "RUST_LOG": "warn"}
    def node(name, port, admin):
        spawn(f"confabd-{name}", [
            confabd,
            "--cluster-nats", f"nats://127.0.0.1:{nats_port}",
            "--node-id", f"dash-{name}",
            # Two partitions (room id modulo 2): the rooms alternate
            # between them, so node b's join moves half of them.
            "--cluster-partitions", "2",
            "--database-url", db_url,
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{admin}",
            "--http-listen", "off",
            "--data-dir", os.path.join(tmp, f"cluster-{name}"),
            "--kdf-memory-kib", "8", "--kdf-iterations", "1",
        ], env=env)
        wait_port(port, 30, f"cluster node {name}")

    # A node creates rooms in partitions it owns: the load starts on node a
    # alone, then node b joins and takes half the partitions over, so that
    # node a forwards the commands for the rooms that moved to b over NATS.
    node("a", a, a_admin)
    spawn("loadgen-cluster", [
        loadgen, "mixed",
        "--url", f"confab://127.0.0.1:{a}",
        "--metrics-listen", "off",
        "--prefix", "dashc",
        "--rooms", "8", "--members", "3", "--rate", "200",
        "--churn-rate", "2", "--history-rate", "5",
        "--warmup", "1", "--duration", str(LOAD_SECONDS), "--drain", "1",
        "--max-seconds", "100",
    ])
    time.sleep(3)
    node("b", b, b_admin)
    return [f"127.0.0.1:{a_admin}", f"127.0.0.1:{b_admin}"], None, (admin_url, db)


METRIC = re.compile(r"\b((?:confab|process)_[a-z0-9_]+)\b")


def main():
    signal.alarm(CHECK_TIMEOUT)
    confabd = os.path.join(ROOT, "target/debug/confabd")
    loadgen = os.path.join(ROOT, "target/debug/confab-loadgen")
    server, admin, lg_metrics, prom = free_ports(4)
    tmp = tempfile.mkdtemp(prefix="confab-dashboards-")
    procs = []
    logs = {}
    database = None

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

        cluster, skip_cluster, database = start_cluster(spawn, tmp, confabd, loadgen)
        if skip_cluster:
            if os.environ.get("CONFAB_REQUIRE_POSTGRES") == "1":
                raise SystemExit(f"the cluster dashboard needs Postgres and nats-server: {skip_cluster}")
            print(f"SKIPPED (no cluster: {skip_cluster}): confab-cluster.json")

        with open(os.path.join(ROOT, "grafana/prometheus.yml")) as f:
            config = f.read()
        config = (config.replace("127.0.0.1:9464", f"127.0.0.1:{admin}")
                  .replace("127.0.0.1:9465", f"127.0.0.1:{lg_metrics}")
                  .replace("scrape_interval: 5s", "scrape_interval: 1s"))
        assert f"127.0.0.1:{admin}" in config and f"127.0.0.1:{lg_metrics}" in config, \
            "grafana/prometheus.yml no longer scrapes 127.0.0.1:9464 and 127.0.0.1:9465"
        # The cluster job's targets (README's three nodes) become this
        # run's nodes, or go when there is no cluster.
        readme_nodes = '["127.0.0.1:9466", "127.0.0.1:9467", "127.0.0.1:9468"]'
        assert readme_nodes in config, \
            "grafana/prometheus.yml no longer scrapes the cluster nodes 127.0.0.1:9466-9468"
        if cluster:
            config = config.replace(readme_nodes, json.dumps(cluster))
        else:
            config = config[:config.index("  # One series per node")]
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
        if not cluster:
            dashboards = [d for d in dashboards if os.path.basename(d) != "confab-cluster.json"]
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
        if database:
            psql(database[0], f"DROP DATABASE IF EXISTS {database[1]} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
