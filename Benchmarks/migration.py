#!/usr/bin/env python3
"""Group migration at scale: 3 Huddle replicas, 8 demo backends, 900 groups x 10 WebSocket members (9,000
connections) that come and go and join through any replica. A backend is added (reload of all three replicas, a few
hundred ms apart), then one is killed. For each change: the time until every group is whole again (judged from the
backends' own rooms, GET /stats/rooms on each, every 100 ms) and every replica shows no misplaced group, the longest
time any group was split, the reconnects, the migrations, and each Huddle's CPU during the change.

Needs `swift build -c release` first (.build/release/huddle and huddle-backend) and Python `websockets`. Not run by CI.
Everything it starts listens on 127.0.0.1 and is stopped when it exits; every wait is bounded.

    python3 Benchmarks/migration.py [--groups 900] [--members 10] [--rate 50] [--settle 2] [--clients 3]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(ROOT, "Tests", "IntegrationTests", "ws_group_client.py")
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listening(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK   # utime + stime


class Procs:
    def __init__(self):
        self.list = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
        self.list.append(p)
        return p

    def stop_all(self):
        for p in self.list:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.list:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def config(backends, rate, settle, token="bench"):
    servers = "\n".join(f"    server 127.0.0.1:{port} name={name};" for name, port in backends)
    return f"""workers 1;
error_log stderr level=info;
access_log off;
admin 127.0.0.1:{{ADMIN}} {{ token "{token}"; }}
upstream chat {{
    balance hash;
    rebalance migrate rate={rate};
    membership_settle {settle}s;
    group_linger 5s;
    health_check /healthz interval=1s timeout=500ms rise=2 fall=2;
{servers}
}}
server {{
    listen 127.0.0.1:{{PORT}};
    route /rooms/ {{ upstream chat; group_key path 2; }}
}}
"""


class Watch(threading.Thread):
    """Samples every backend's rooms and keeps, per group, the changes of the set of backends holding members."""

    def __init__(self, backends, groups):
        super().__init__(daemon=True)
        self.backends = dict(backends)   # name -> port
        self.groups = groups
        self.lock = threading.Lock()
        self.timelines = {g: [] for g in groups}
        self.running = True
        self.samples = 0

    def run(self):
        while self.running:
            t = time.monotonic()
            where = {}
            for name, port in list(self.backends.items()):
                try:
                    rooms = get_json(f"http://127.0.0.1:{port}/stats/rooms", 2)["rooms"]
                except Exception:
                    continue
                for room, n in rooms.items():
                    if n > 0:
                        where.setdefault(room, set()).add(name)
            with self.lock:
                self.samples += 1
                for g in self.groups:
                    now = frozenset(where.get(g, ()))
                    tl = self.timelines[g]
                    if not tl or tl[-1][1] != now:
                        tl.append((t, now))
            time.sleep(max(0, 0.1 - (time.monotonic() - t)))

    def current(self):
        with self.lock:
            return {g: (tl[-1][1] if tl else frozenset()) for g, tl in self.timelines.items()}

    def split_stats(self, start, end):
        longest, group, split_groups = 0.0, None, set()
        with self.lock:
            for g, tl in self.timelines.items():
                ep_start = None
                for i, (t, s) in enumerate(tl):
                    nxt = tl[i + 1][0] if i + 1 < len(tl) else end
                    if len(s) >= 2:
                        if ep_start is None:
                            ep_start = t
                        if i + 1 >= len(tl) or len(tl[i + 1][1]) < 2:
                            if nxt >= start and ep_start <= end:
                                split_groups.add(g)
                                if nxt - ep_start > longest:
                                    longest, group = nxt - ep_start, g
                            ep_start = None
        return longest, group, len(split_groups)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=900)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--backends", type=int, default=7, help="backends at start; one more is added (8 in all)")
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--settle", type=float, default=2)
    ap.add_argument("--clients", type=int, default=3, help="Python client processes sharing the groups")
    ap.add_argument("--stay", type=float, default=20, help="mean seconds a member stays")
    ap.add_argument("--away", type=float, default=2)
    ap.add_argument("--timeout", type=float, default=90, help="seconds allowed per change")
    args = ap.parse_args()

    huddle = os.path.join(ROOT, ".build", "release", "huddle")
    backend_bin = os.path.join(ROOT, ".build", "release", "huddle-backend")
    for b in (huddle, backend_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"missing {b}: run `swift build -c release` first")
    tmp = tempfile.mkdtemp(prefix="huddle-migration-bench-")
    procs = Procs()
    groups = [f"g{i:04d}" for i in range(args.groups)]
    report = {"groups": args.groups, "members": args.members, "connections": args.groups * args.members,
              "replicas": 3, "rate": args.rate, "settle_s": args.settle, "changes": []}
    try:
        backends = []
        backend_procs = {}
        for i in range(1, args.backends + 2):
            name, port = f"b{i}", free_port()
            backend_procs[name] = procs.start([backend_bin, "--listen", f"127.0.0.1:{port}", "--name", name],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            backends.append((name, port))
        for _, port in backends:
            if not wait_listening(port):
                sys.exit("a backend did not start")
        start_set, all_set = backends[:args.backends], backends
        replicas = []
        for r in range(3):
            port, admin = free_port(), free_port()
            path = os.path.join(tmp, f"huddle{r}.conf")
            with open(path, "w") as f:
                f.write(config(start_set, args.rate, args.settle).replace("{PORT}", str(port)).replace("{ADMIN}", str(admin)))
            log = open(os.path.join(tmp, f"huddle{r}.log"), "w")
            p = procs.start([huddle, "-c", path], stdout=log, stderr=log)
            replicas.append({"port": port, "admin": admin, "path": path, "proc": p})
        for r in replicas:
            if not (wait_listening(r["port"]) and wait_listening(r["admin"])):
                sys.exit("a huddle did not start")

        def admin_groups(r):
            return get_json(f"http://127.0.0.1:{r['admin']}/api/groups?upstream=chat&top=0")

        def migrations():
            return sum(admin_groups(r)["migration"]["migrations_total"] for r in replicas)

        def misplaced():
            return sum(admin_groups(r)["misplaced"] for r in replicas)

        watch = Watch(start_set, groups)
        watch.start()
        per = (args.groups + args.clients - 1) // args.clients
        statuses = []
        urls = []
        for r in replicas:
            urls += ["--url", f"ws://127.0.0.1:{r['port']}"]
        for c in range(args.clients):
            first, n = c * per, min(per, args.groups - c * per)
            if n <= 0:
                break
            status = os.path.join(tmp, f"churn{c}.json")
            statuses.append(status)
            procs.start(["python3", CLIENT, "churn", "--groups", str(n), "--first", str(first), "--format", "g{:04d}",
                         "--members", str(args.members), "--stay", str(args.stay), "--away", str(args.away),
                         "--ramp", "20", "--duration", "600", "--seed", str(c + 1), "--status", status] + urls,
                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"churn{c}.err"), "w"))

        def churn_totals():
            t = {"connected": 0, "moved": 0, "other": 0, "connect_errors": 0}
            for s in statuses:
                try:
                    with open(s) as f:
                        d = json.load(f)
                except (OSError, ValueError):
                    continue
                t["connected"] += d["connected"]
                t["moved"] += d["moved_closes"]
                t["other"] += d["shutdown_closes"] + sum(d["other_closes"].values())
                t["connect_errors"] += d["connect_errors"]
            return t

        def settled_everywhere():
            """No replica has a server still settling, a misplaced group, or a migration pending."""
            for r in replicas:
                g = admin_groups(r)
                m = g["migration"]
                if g["misplaced"] or m.get("pending", 0) or m.get("settling"):
                    return False
            return True

        def converged(deadline, live_backends, not_before=0.0):
            """Every group whole (on one backend, non-empty) for 300 ms, and no replica shows a misplaced group, a pending
            migration or a settling server (checked from `not_before` on)."""
            first_ok = None
            while time.monotonic() < deadline:
                cur = watch.current()
                ok = all(len(s) == 1 and next(iter(s)) in live_backends for s in cur.values())
                if ok and time.monotonic() >= not_before and settled_everywhere():
                    first_ok = first_ok or time.monotonic()
                    if time.monotonic() - first_ok >= 0.3:
                        return first_ok
                else:
                    first_ok = None
                time.sleep(0.1)
            return None

        target = int(args.groups * args.members * 0.9)
        deadline = time.monotonic() + 120
        while churn_totals()["connected"] < target and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"connected: {churn_totals()['connected']} of {args.groups * args.members}", flush=True)
        if converged(time.monotonic() + 60, {n for n, _ in start_set}) is None:
            print("groups not whole before any change", flush=True)
        descriptors = {r["port"]: len(os.listdir(f"/proc/{r['proc'].pid}/fd")) for r in replicas}
        report["huddle_descriptors_before_changes"] = descriptors
        # Baseline: the same churn with nothing changing, for comparison with the CPU during a change.
        c0, cpu0, t0 = churn_totals(), [cpu_seconds(r["proc"].pid) for r in replicas], time.monotonic()
        time.sleep(5)
        cpu1, t1, c1 = [cpu_seconds(r["proc"].pid) for r in replicas], time.monotonic(), churn_totals()
        longest, _, split = watch.split_stats(t0, t1)
        baseline = {"window_s": round(t1 - t0, 2), "huddle_cpu_percent": [round(100 * (b - a) / (t1 - t0), 1) for a, b in zip(cpu0, cpu1)],
                    "reconnects_after_1012": c1["moved"] - c0["moved"], "groups_ever_split": split, "longest_split_s": round(longest, 3)}
        report["steady_churn"] = baseline
        print(json.dumps({"steady churn, no change": baseline}), flush=True)

        def change(name, action, live_backends, wait=0.0):
            c0, m0 = churn_totals(), migrations()
            cpu0 = [cpu_seconds(r["proc"].pid) for r in replicas]
            t0 = time.monotonic()
            action()
            # A replica learns of an added server only after its reload and membership_settle.
            done = converged(t0 + args.timeout, live_backends, not_before=time.monotonic() + wait)
            t1 = time.monotonic()
            cpu1 = [cpu_seconds(r["proc"].pid) for r in replicas]
            c1 = churn_totals()
            longest, group, split = watch.split_stats(t0, done or t1)
            window = (done or t1) - t0
            entry = {"change": name, "whole_after_s": round(done - t0, 2) if done else None,
                     "longest_split_s": round(longest, 3), "longest_split_group": group, "groups_ever_split": split,
                     "reconnects_after_1012": c1["moved"] - c0["moved"], "reconnects_after_other_ends": c1["other"] - c0["other"],
                     "connect_errors": c1["connect_errors"] - c0["connect_errors"],
                     "migrations": migrations() - m0,
                     "huddle_cpu_percent": [round(100 * (b - a) / max(window, 0.001), 1) for a, b in zip(cpu0, cpu1)],
                     "window_s": round(window, 2)}
            report["changes"].append(entry)
            print(json.dumps(entry), flush=True)

        def add_backend():
            for i, r in enumerate(replicas):
                if i:
                    time.sleep(0.3)
                with open(r["path"], "w") as f:
                    f.write(config(all_set, args.rate, args.settle).replace("{PORT}", str(r["port"])).replace("{ADMIN}", str(r["admin"])))
                r["proc"].send_signal(signal.SIGHUP)
            watch.backends = dict(all_set)

        live = {n for n, _ in all_set}
        change(f"add {all_set[-1][0]} (reload of 3 replicas, 0.3 s apart)", add_backend, live, wait=args.settle + 0.3)
        victim = all_set[2][0]

        def kill_backend():
            backend_procs[victim].kill()
            watch.backends.pop(victim, None)

        change(f"kill {victim}", kill_backend, live - {victim})
        watch.running = False
        report["samples"] = watch.samples
        print(json.dumps(report, indent=1))
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
