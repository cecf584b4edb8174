#!/usr/bin/env python3
"""A backend for the health-check tests (stdlib only): counts what it is asked, and behaves as told.

Prints "PORT <n>" once it listens (--port 0: any free port; a fixed --port restarts a backend where it was).
HTTP/1.1 with keep-alive. Every answer names the backend (X-Backend header, body "NAME PATH").

Modes (--mode at start, or GET /__mode/<mode> at any time):
  ok            every request 200, /healthz 200
  error         every request 500, /healthz 200 (passive health must see it; active checks pass)
  fail          every request 500, /healthz 500
  healthz-fail  every request 200, /healthz 503 (taken out by active checks only)
  hang          read the request head, never answer (also /healthz): a hung pod

Control requests (sent by the test straight to the backend, never through Huddle, never counted):
  GET /__mode/<mode>   switch mode
  GET /__counts        {"name", "mode", "healthz": n, "requests": n (everything else), "paths": {path: n},
                        "healthz_times": [monotonic seconds...], "healthz_hosts": [Host of each probe...],
                        "healthz_agents": [User-Agent of each probe...]}
"""
import argparse
import asyncio
import json
import re
import sys
import time

MODES = ["ok", "error", "fail", "healthz-fail", "hang"]


class State:
    def __init__(self, name, mode):
        self.name = name
        self.mode = mode
        self.healthz = 0
        self.requests = 0
        self.paths = {}
        self.healthz_times = []
        self.healthz_hosts = []
        self.healthz_agents = []


def header(head, name):
    m = re.search(rb"\r\n" + name + rb":[ \t]*([^\r]*)", head, re.IGNORECASE)
    return m.group(1).decode("latin-1").strip() if m else None


async def handle(reader, writer, st):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
            i = buf.index(b"\r\n\r\n") + 4
            head, buf = buf[:i], buf[i:]
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            method, target, _ = parts
            path = target.split("?", 1)[0]
            length = int(header(head, b"content-length") or "0")
            while len(buf) < length:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]
            close = (header(head, b"connection") or "").lower() == "close"

            status = 200
            body = f"{st.name} {path}\n".encode()
            ctype = b"text/plain"
            if path.startswith("/__mode/"):
                mode = path[len("/__mode/"):]
                if mode not in MODES:
                    status, body = 400, f"unknown mode {mode}\n".encode()
                else:
                    st.mode = mode
                    print(f"EVENT mode {mode}", flush=True)
            elif path == "/__counts":
                ctype = b"application/json"
                body = json.dumps({"name": st.name, "mode": st.mode, "healthz": st.healthz, "requests": st.requests,
                                   "paths": st.paths, "healthz_times": st.healthz_times,
                                   "healthz_hosts": st.healthz_hosts, "healthz_agents": st.healthz_agents}).encode()
            else:
                if path == "/healthz":
                    st.healthz += 1
                    st.healthz_times.append(time.monotonic())
                    st.healthz_hosts.append(header(head, b"host"))
                    st.healthz_agents.append(header(head, b"user-agent"))
                else:
                    st.requests += 1
                    st.paths[path] = st.paths.get(path, 0) + 1
                if st.mode == "hang":
                    await asyncio.Event().wait()
                if path == "/healthz":
                    status = 503 if st.mode in ("fail", "healthz-fail") else 200
                else:
                    status = 500 if st.mode in ("error", "fail") else 200
            reason = {200: b"OK", 400: b"Bad Request", 500: b"Internal Server Error", 503: b"Service Unavailable"}[status]
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nX-Backend: %s\r\nContent-Length: %d\r\n%s\r\n"
                         % (status, reason, ctype, st.name.encode(), len(body), b"Connection: close\r\n" if close else b"")
                         + (b"" if method == "HEAD" else body))
            await writer.drain()
            if close:
                return
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="backend")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="ok", choices=MODES)
    args = ap.parse_args()
    st = State(args.name, args.mode)
    server = await asyncio.start_server(lambda r, w: handle(r, w, st), "127.0.0.1", args.port, reuse_address=True, backlog=256)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
