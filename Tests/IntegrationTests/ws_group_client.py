#!/usr/bin/env python3
"""Python `websockets` driver for WebSocketGroupTests: opens many group members through Huddle and reports JSON."""
# One JSON object goes to stdout; the Swift test parses it and makes every assertion. Every wait is bounded.
import argparse
import asyncio
import json
import random
import sys
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

OPEN_TIMEOUT = 30
RECV_TIMEOUT = 30


def pattern(n):
    # Not periodic in 256 so that a misplaced chunk of a large frame does not compare equal by accident.
    return bytes((i * 31 + (i >> 8) * 7 + 3) & 0xFF for i in range(n))


async def open_member(base, group, sem, errors):
    """Connects one member of `group`, asks the backend its name; returns (ws, name) or (None, None)."""
    async with sem:
        try:
            ws = await connect(f"{base}/rooms/{group}/echo", open_timeout=OPEN_TIMEOUT, ping_interval=None,
                               close_timeout=5, compression=None, max_size=None)
        except Exception as e:  # reported, not raised: the test wants the count of failures
            errors.append(f"{group}: connect: {type(e).__name__}: {e}")
            return None, None
        try:
            await ws.send("__whoami")
            name = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            return ws, name
        except Exception as e:
            errors.append(f"{group}: whoami: {type(e).__name__}: {e}")
            await ws.close()
            return None, None


def http_get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


async def run_groups(args):
    groups = [f"g{i:03d}" for i in range(args.groups)]
    sem = asyncio.Semaphore(args.concurrency)
    errors = []
    opened = []  # (group, ws, name)
    pending = [(g, m) for g in groups for m in range(args.members)]
    if args.place_first:
        # Each group's first member alone and in order: placement then sees settled loads, as the bound assumes.
        for g in groups:
            ws, name = await open_member(args.url, g, sem, errors)
            opened.append((g, ws, name))
        pending = [(g, m) for (g, m) in pending if m != 0]
    random.Random(7).shuffle(pending)
    results = await asyncio.gather(*(open_member(args.url, g, sem, errors) for (g, _) in pending))
    for (g, _), (ws, name) in zip(pending, results):
        opened.append((g, ws, name))

    backends = {g: [] for g in groups}
    for g, ws, name in opened:
        if ws is not None:
            backends[g].append(name)
    live = [ws for (_, ws, _) in opened if ws is not None]
    # Every member still answers after all have joined: none was dropped while others connected.
    still = 0
    for ws in live:
        try:
            await ws.send("__whoami")
            await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            still += 1
        except Exception as e:
            errors.append(f"second whoami: {type(e).__name__}: {e}")
    snapshot = None
    if args.admin:
        url = f"{args.admin}/api/groups?upstream={args.upstream}&top={args.top}"
        snapshot = await asyncio.to_thread(http_get_json, url)
    await asyncio.gather(*(ws.close() for ws in live), return_exceptions=True)
    return {
        "clients": len(opened),
        "connected": len(live),
        "still_answering": still,
        "error_count": len(errors),
        "errors": errors[:10],
        "backends": backends,
        "groups_api": snapshot,
    }


async def run_echo(args):
    out = {}
    async with connect(args.url, open_timeout=OPEN_TIMEOUT, ping_interval=None, compression=None,
                       max_size=None) as ws:
        texts = ["hello", "h\u00e9llo w\u00f6rld \u2603", "x" * 70000]
        echoed = []
        for t in texts:
            await ws.send(t)
            echoed.append(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
        out["texts_equal"] = [a == b for a, b in zip(texts, echoed)]
        sizes = [0, 125, 126, 65535, 65536, args.binary_size]
        binaries = []
        for n in sizes:
            data = pattern(n)
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            mismatch = -1
            if not isinstance(got, bytes):
                mismatch = -2
            elif got != data:
                mismatch = next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), min(len(got), len(data)))
            binaries.append({"sent": n, "received": len(got), "first_mismatch": mismatch})
        out["binaries"] = binaries
    return out


async def run_close(args):
    async with connect(args.url, open_timeout=OPEN_TIMEOUT, ping_interval=None, compression=None) as ws:
        await ws.send("__close")
        try:
            extra = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            return {"closed": False, "unexpected": repr(extra)[:200]}
        except ConnectionClosed as e:
            return {"closed": True, "code": e.rcvd.code if e.rcvd else None,
                    "sent_code": e.sent.code if e.sent else None}


def run_lookup(args):
    # One process, keys asked in order: the answers line up with the key list the test rebuilds.
    servers = []
    for i in range(args.keys):
        key = args.format.format(i)
        r = http_get_json(f"{args.admin}/api/lookup?upstream={args.upstream}&key={urllib.parse.quote(key, safe='')}")
        if r.get("key") != key:
            return {"error": f"answer for {key} names key {r.get('key')!r}"}
        servers.append(r.get("server"))
    return {"servers": servers}


# ---------------------------------------------------------------- churn: members that come and go, and follow moves

class ChurnStats:
    def __init__(self):
        self.connects = 0
        self.connect_errors = 0
        self.moved_closes = 0      # Close 1012 (the group moved): reconnect after a small random delay
        self.shutdown_closes = 0   # Close 1001 (going away)
        self.other_closes = {}     # any other end (1006: the backend vanished, ...): reconnect too
        self.leaves = 0            # left on its own (coming and going)
        self.connected = 0
        self.welcome_errors = 0
        self.errors = []

    def as_dict(self):
        return {"connects": self.connects, "connect_errors": self.connect_errors, "moved_closes": self.moved_closes,
                "shutdown_closes": self.shutdown_closes, "other_closes": self.other_closes, "leaves": self.leaves,
                "connected": self.connected, "welcome_errors": self.welcome_errors, "errors": self.errors[:10]}


async def read_until_closed(ws):
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def churn_member(group, index, args, stats, stop, rng):
    """One member: joins through a random replica, stays (exponential, mean --stay s; forever with --stay 0), leaves and
    comes back after an away time (mean --away s). Closed by the server: Close 1012/1001 reconnects after a uniform
    --min-delay..--max-delay wait, as the demo page does; any other end after the same kind of wait."""
    await asyncio.sleep(rng.uniform(0, args.ramp))
    while not stop.is_set():
        url = rng.choice(args.url) + f"/rooms/{group}/ws"
        try:
            ws = await connect(url, open_timeout=OPEN_TIMEOUT, ping_interval=None, close_timeout=2, compression=None)
        except Exception as e:
            stats.connect_errors += 1
            if len(stats.errors) < 50:
                stats.errors.append(f"{group}: connect: {type(e).__name__}: {e}")
            await asyncio.sleep(rng.uniform(args.min_delay, args.max_delay))
            continue
        stats.connects += 1
        stats.connected += 1
        stay = rng.expovariate(1.0 / args.stay) if args.stay > 0 else None
        own_leave = False
        try:
            reader = asyncio.ensure_future(read_until_closed(ws))
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({reader, stopper}, timeout=stay, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done:
                own_leave = True
                reader.cancel()
                try:
                    await asyncio.wait_for(ws.close(), 3)
                except Exception:
                    pass
            stopper.cancel()
        finally:
            stats.connected -= 1
        if stop.is_set():
            break
        if own_leave:
            stats.leaves += 1
            await asyncio.sleep(rng.expovariate(1.0 / args.away) if args.away > 0 else 0)
            continue
        code = ws.close_code
        if code == 1012:
            stats.moved_closes += 1
        elif code == 1001:
            stats.shutdown_closes += 1
        else:
            stats.other_closes[str(code)] = stats.other_closes.get(str(code), 0) + 1
        await asyncio.sleep(rng.uniform(args.min_delay, args.max_delay))


async def run_churn(args):
    import os
    import signal
    import time
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = ChurnStats()
    rng = random.Random(args.seed)
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    groups = [args.format.format(i) for i in range(args.first, args.first + args.groups)]
    tasks = [asyncio.ensure_future(churn_member(g, m, args, stats, stop, random.Random(rng.random())))
             for g in groups for m in range(args.members)]
    started = time.monotonic()

    def write_status():
        if not args.status:
            return
        d = stats.as_dict()
        d["elapsed"] = time.monotonic() - started
        tmp = args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(d, f)
        os.replace(tmp, args.status)

    while not stop.is_set() and time.monotonic() - started < args.duration:
        write_status()
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    for t in tasks:
        t.cancel()
    write_status()
    d = stats.as_dict()
    d["elapsed"] = time.monotonic() - started
    return d


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("groups")
    g.add_argument("--url", required=True, help="ws://host:port (paths /rooms/GROUP/echo are added)")
    g.add_argument("--groups", type=int, default=200)
    g.add_argument("--members", type=int, default=10)
    g.add_argument("--concurrency", type=int, default=64)
    g.add_argument("--place-first", action="store_true")
    g.add_argument("--admin")
    g.add_argument("--upstream", default="chat")
    g.add_argument("--top", type=int, default=1000)
    e = sub.add_parser("echo")
    e.add_argument("--url", required=True)
    e.add_argument("--binary-size", type=int, default=1 << 20)
    c = sub.add_parser("close")
    c.add_argument("--url", required=True)
    lk = sub.add_parser("lookup")
    lk.add_argument("--admin", required=True)
    lk.add_argument("--upstream", default="chat")
    lk.add_argument("--keys", type=int, default=10000)
    lk.add_argument("--format", default="key-{}", help="Python format string for key i")
    ch = sub.add_parser("churn")
    ch.add_argument("--url", action="append", required=True, help="ws://host:port of a replica (repeat for several)")
    ch.add_argument("--groups", type=int, default=200)
    ch.add_argument("--members", type=int, default=10)
    ch.add_argument("--format", default="g{:03d}", help="Python format string for group i")
    ch.add_argument("--first", type=int, default=0, help="index of the first group (several clients can share a set)")
    ch.add_argument("--stay", type=float, default=8.0, help="mean seconds a member stays (0: until closed)")
    ch.add_argument("--away", type=float, default=1.0, help="mean seconds a member is away before it comes back")
    ch.add_argument("--min-delay", type=float, default=0.05)
    ch.add_argument("--max-delay", type=float, default=0.5)
    ch.add_argument("--ramp", type=float, default=2.0, help="members join spread over this many seconds")
    ch.add_argument("--duration", type=float, default=120.0, help="stops by itself after this many seconds")
    ch.add_argument("--seed", type=int, default=1)
    ch.add_argument("--status", help="file rewritten every 200 ms with the counters so far")
    args = p.parse_args()
    if args.cmd == "churn":
        result = asyncio.run(run_churn(args))
    elif args.cmd == "groups":
        result = asyncio.run(run_groups(args))
    elif args.cmd == "echo":
        result = asyncio.run(run_echo(args))
    elif args.cmd == "close":
        result = asyncio.run(run_close(args))
    else:
        result = run_lookup(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
