#!/usr/bin/env python3
"""group_memory.py: Huddle's memory per idle tunnel and per group, for capacity planning (README "Capacity planning").

Starts two huddle-backend processes, then for each scenario a fresh `huddle` (workers 1), opens idle upgraded
WebSocket connections through it with raw sockets (handshake checked, nothing sent after it), and reads VmRSS of the
huddle process from /proc before and after. The admin port's /metrics must show exactly the tunnels and groups the
scenario opened before a figure is taken, so a scenario that did not happen cannot produce a number.

Scenarios (N = --conns):
  plain       N tunnels on a route without a group key (p2c): no group at all
  N x 1       N tunnels, each in its own group
  N/10 x 10   N tunnels, 10 members in each of N/10 groups
  N/10 x 1    N/10 tunnels, each in its own group

Derived: per tunnel = plain / N; per group = (N x 1 - N/10 x 10) / (0.9 N) (same tunnels, 0.9 N more groups);
a member that joins an existing group = (N/10 x 10 - N/10 x 1) / (0.9 N). Kernel memory is not in RSS: the script
also prints the slab object sizes one socket takes (from /proc/slabinfo, when readable) and the system-wide change
of kernel slab memory (/proc/meminfo Slab) across each scenario divided by the sockets it opened (4 TCP sockets per
tunnel on loopback: client, Huddle x 2, backend); that one is a rough cross-check, since anything else running on
the machine moves it too.

Not for CI. Needs `swift build -c release` first, and an open-file limit of at least 2 x N + 200 (huddle) and
N + 100 (this script). Usage: python3 Benchmarks/group_memory.py [--conns 9000] [--runs 2]
"""
import argparse
import base64
import hashlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(seconds, condition, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    if not condition():
        raise SystemExit(f"group_memory: timed out after {seconds}s waiting for {what}")


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def slab_objects():
    """{name: (active objects, object size)} for the caches a TCP socket uses; {} when /proc/slabinfo is not readable."""
    wanted = {"TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq"}
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in wanted:
                    out[parts[0]] = (int(parts[1]), int(parts[3]))
    except OSError:
        pass
    return out


def slab_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def open_ws(port, path):
    """An upgraded connection, handshake verified; the socket is returned and never written to again."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"group_memory: connection closed during the handshake for {path}: {head!r}")
        head += chunk
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if not head.startswith(b"HTTP/1.1 101") or b"Sec-WebSocket-Accept: " + accept not in head:
        raise SystemExit(f"group_memory: bad handshake answer for {path}: {head[:300]!r}")
    return s


def huddle_config(port, admin, backends, max_connections):
    servers = "".join(f"    server 127.0.0.1:{p} name=b{i};\n" for i, p in enumerate(backends))
    return f"""workers 1;
max_connections {max_connections};
access_log off;
error_log stderr level=warn;
admin 127.0.0.1:{admin};
upstream grouped {{
    balance hash;
    keepalive 64;
{servers}}}
upstream plain {{
    keepalive 64;
{servers}}}
server {{
    listen 127.0.0.1:{port};
    route /g/ {{ upstream grouped; group_key path 2; }}
    route /p/ {{ upstream plain; }}
}}
"""


def run_scenario(args, backends, workdir, name, conns, group_of):
    port, admin = free_port(), free_port()
    conf = os.path.join(workdir, f"{name.replace(' ', '_').replace('/', '')}.conf")
    with open(conf, "w") as f:
        f.write(huddle_config(port, admin, backends, conns + 500))
    log = open(os.path.join(workdir, "huddle.log"), "a")
    proc = subprocess.Popen([args.huddle, "-c", conf], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    socks = []
    try:
        wait_until(20, lambda: listening(port) and listening(admin), "huddle to listen")
        # Warm-up as ws.sh does: a few upgrades (no group) so first-use allocations are not counted per tunnel.
        warm = [open_ws(port, f"/p/warm{i}") for i in range(16)]
        for s in warm:
            s.close()
        wait_until(20, lambda: metrics(admin).get("huddle_tunnels", -1) == 0, "the warm-up tunnels to close")
        rss0, fds0 = vm_rss_kib(proc.pid), fd_count(proc.pid)
        slab0 = slab_kib()
        for i in range(conns):
            g = group_of(i)
            socks.append(open_ws(port, f"/g/k{g}/" if g is not None else f"/p/c{i}"))
        groups = len({group_of(i) for i in range(conns)} - {None})
        want_groups = {'huddle_groups_active{upstream="grouped"}': groups, 'huddle_groups_active{upstream="plain"}': 0}

        def settled():
            m = metrics(admin)
            return m.get("huddle_tunnels") == conns and all(m.get(k, 0) == v for k, v in want_groups.items())
        wait_until(30, settled, f"{conns} tunnels and {groups} groups on the admin port")
        rss1, fds1 = vm_rss_kib(proc.pid), fd_count(proc.pid)
        slab1 = slab_kib()
        return {"name": name, "tunnels": conns, "groups": groups, "rss0": rss0, "rss1": rss1,
                "fds": fds1 - fds0, "slab": slab1 - slab0}
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=9000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--huddle", default=os.path.join(ROOT, ".build/release/huddle"))
    ap.add_argument("--backend", default=os.path.join(ROOT, ".build/release/huddle-backend"))
    args = ap.parse_args()
    n = args.conns - args.conns % 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100 and hard >= n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < 2 * n + 200:
        raise SystemExit(f"group_memory: open-file limit {soft}: huddle needs {2 * n + 200} for {n} tunnels; lower --conns")
    for b in (args.huddle, args.backend):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"group_memory: {b} is missing: swift build -c release")

    workdir = tempfile.mkdtemp(prefix="group-memory-")
    backends, procs = [free_port(), free_port()], []
    try:
        for i, p in enumerate(backends):
            procs.append(subprocess.Popen([args.backend, "--listen", f"127.0.0.1:{p}", "--name", f"b{i}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(20, lambda: all(listening(p) for p in backends), "the backends to listen")
        scenarios = [
            ("plain", n, lambda i: None),
            (f"{n} x 1", n, lambda i: i),
            (f"{n // 10} x 10", n, lambda i: i // 10),
            (f"{n // 10} x 1", n // 10, lambda i: i),
        ]
        results = {}
        for run in range(args.runs):
            for name, conns, group_of in scenarios:
                r = run_scenario(args, backends, workdir, name, conns, group_of)
                results.setdefault(name, []).append(r)
                print(f"run {run + 1} {name:>10}: {r['tunnels']:>6} tunnels {r['groups']:>6} groups  RSS {r['rss0']} -> "
                      f"{r['rss1']} KiB (+{r['rss1'] - r['rss0']})  fds +{r['fds']}  kernel slab (system-wide) +{r['slab']} KiB",
                      flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)

    def delta(name):
        return statistics.median(r["rss1"] - r["rss0"] for r in results[name])

    plain, one, ten, small = (delta(s[0]) for s in scenarios)
    print()
    print(f"{subprocess.run([args.huddle, '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"workers 1, {args.runs} runs, medians of the RSS deltas")
    print(f"  baseline RSS (after warm-up): {statistics.median(r['rss0'] for rs in results.values() for r in rs):.0f} KiB")
    print(f"  per idle tunnel, no group:            {plain / n * 1024:7.0f} B  ({plain / n:.2f} KiB)")
    print(f"  per idle tunnel in its own group:     {one / n * 1024:7.0f} B")
    print(f"  per group (same tunnels, more groups): {(one - ten) / (0.9 * n) * 1024:7.0f} B")
    print(f"  per member joining an existing group: {(ten - small) / (0.9 * n) * 1024:7.0f} B")
    print(f"  descriptors per tunnel:               {statistics.median(r['fds'] for r in results['plain']) / n:.2f}")
    slab = slab_objects()
    if slab:
        per_socket = sum(size for _, size in slab.values())
        print("  kernel slab objects per TCP socket (not in RSS): " + ", ".join(f"{k} {v[1]} B" for k, v in sorted(slab.items()))
              + f" = {per_socket} B; x 2 sockets per tunnel = {2 * per_socket / 1024:.1f} KiB")
    slab_per_socket = statistics.median(r["slab"] for r in results["plain"]) * 1024 / (4 * n)
    print(f"  system-wide slab growth per TCP socket (rough; 4 sockets per tunnel here): {slab_per_socket:.0f} B")


if __name__ == "__main__":
    main()
