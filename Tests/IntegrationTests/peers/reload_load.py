#!/usr/bin/env python3
"""Load for ReloadUnderLoadTests, with clients that share no code with Huddle.

Keep-alive HTTP: CLIENTS threads, each one http.client.HTTPConnection sending GET / back to back (a response with
Connection: close makes http.client open a new connection for the next request, as any client does). Every response
is recorded as (wall-clock start, status, body); a request that gets no complete response is a failure.
WebSocket: TUNNELS connections (the `websockets` package) to /ws, each sending a numbered text message every
PERIOD seconds and expecting its echo; a tunnel that closes or misses an echo is dropped.

Prints "PORT <huddle port>" and "EVENT ready" once every tunnel is open and every client has had a 200; runs until
the file STOP exists (or MAX seconds), then stops sending, closes the tunnels itself, and prints
"EVENT result <json>": {"ok": n, "failed": [...], "cut": [...] (a response that began and did not end whole),
"refused": n, "no_response": n, "by_backend": {name: [start times]}, "tunnels_open": n, "tunnels_dropped": [...],
"close_codes": {code: n} (Close frames that ended tunnels), "echoes": n}. With --path other than /, any 200 whose
body has its Content-Length counts as ok.
"""
import argparse
import asyncio
import http.client
import json
import os
import sys
import threading
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def http_loop(port, path, stop, results, lock, ready):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first = True
    while not stop.is_set():
        t = time.time()
        started = False
        try:
            conn.request("GET", path, headers={"Host": "reload.test"})
            r = conn.getresponse()
            started = True
            raw = r.read()
            body = raw.decode("latin-1")
            status = r.status
            length = r.getheader("Content-Length")
            if length is not None and int(length) != len(raw):
                raise http.client.IncompleteRead(raw, int(length) - len(raw))
        except Exception as e:  # no complete response: a failure, reported (and classified)
            with lock:
                results["failed"].append(f"{t:.3f} {type(e).__name__}: {e}")
                if started or isinstance(e, http.client.IncompleteRead):
                    results["cut"].append(f"{t:.3f} {type(e).__name__}: {str(e)[:80]}")
                elif isinstance(e, ConnectionRefusedError):
                    results["refused"] += 1
                else:
                    results["no_response"] += 1
            conn.close()
            if stop.is_set():
                break
            if isinstance(e, ConnectionRefusedError):
                time.sleep(0.05)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        with lock:
            if status == 200 and path != "/":
                results["ok"] += 1
            elif status == 200 and body.startswith("hello from "):
                results["ok"] += 1
                results["by_backend"].setdefault(body[len("hello from "):].strip(), []).append(round(t, 3))
            else:
                results["failed"].append(f"{t:.3f} status {status}: {body[:80]!r}")
        if first:
            first = False
            ready.release()
    conn.close()


async def tunnel(port, i, period, stop, results):
    try:
        ws = await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=20, ping_interval=None, close_timeout=5)
    except Exception as e:
        results["tunnels_dropped"].append(f"{i}: connect: {type(e).__name__}: {e}")
        return
    results["tunnels_open"] += 1
    n = 0
    try:
        while True:
            msg = f"t{i}-{n}"
            await ws.send(msg)
            echo = await asyncio.wait_for(ws.recv(), 10)
            if echo != msg:
                results["tunnels_dropped"].append(f"{i}: echo {echo!r} for {msg!r}")
                return
            results["echoes"] += 1
            n += 1
            for _ in range(int(period * 10)):
                if stop.is_set():
                    # A tunnel asleep between echoes when the server closed it has the Close frame already (the
                    # library's reader took it): count it as the server's close, not as a clean close of ours.
                    if ws.protocol.close_rcvd is not None:
                        code = ws.protocol.close_rcvd.code
                        results["close_codes"][str(code)] = results["close_codes"].get(str(code), 0) + 1
                        results["tunnels_dropped"].append(f"{i}: closed with {code}")
                        return
                    await ws.close()
                    return
                await asyncio.sleep(0.1)
    except ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd is not None else None
        results["close_codes"][str(code)] = results["close_codes"].get(str(code), 0) + 1
        results["tunnels_dropped"].append(f"{i}: closed with {code}")
    except Exception as e:
        results["tunnels_dropped"].append(f"{i}: {type(e).__name__}: {e}")


async def main_async(args):
    results = {"ok": 0, "failed": [], "cut": [], "refused": 0, "no_response": 0, "by_backend": {}, "tunnels_open": 0,
               "tunnels_dropped": [], "close_codes": {}, "echoes": 0}
    lock = threading.Lock()
    stop_http = threading.Event()
    stop_ws = asyncio.Event()
    ready = threading.Semaphore(0)
    threads = [threading.Thread(target=http_loop, args=(args.port, args.path, stop_http, results, lock, ready), daemon=True)
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    tasks = [asyncio.create_task(tunnel(args.port, i, args.period, stop_ws, results)) for i in range(args.tunnels)]
    deadline = time.time() + 30
    while results["tunnels_open"] + len(results["tunnels_dropped"]) < args.tunnels and time.time() < deadline:
        await asyncio.sleep(0.1)
    for _ in threads:
        await asyncio.to_thread(ready.acquire, True, 30)
    print("EVENT ready", flush=True)
    end = time.time() + args.max
    while not os.path.exists(args.stop) and time.time() < end:
        await asyncio.sleep(0.1)
    stop_http.set()
    stop_ws.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    for t in threads:
        t.join(15)
    print("EVENT result " + json.dumps(results), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--path", default="/")
    p.add_argument("--tunnels", type=int, default=100)
    p.add_argument("--period", type=float, default=1.0)
    p.add_argument("--stop", required=True)
    p.add_argument("--max", type=float, default=120)
    args = p.parse_args()
    print(f"PORT {args.port}", flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
