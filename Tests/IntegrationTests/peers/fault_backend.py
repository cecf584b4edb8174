#!/usr/bin/env python3
"""Fault-injecting backends for FaultTests (stdlib only). One mode per process; prints "PORT <n>" when ready and
one "EVENT ..." line (flushed) at each step a test may wait for. The test does the SIGKILLs itself.

  hold-body        read the request head and at least --threshold body bytes, print "EVENT body <n>", then stop reading
  hold-response    read a request head (and its Content-Length body), send a 200 head announcing 1,000,000 bytes
                   and the first --threshold of them, print "EVENT response-started", then stop
  reset-after-head read a request head, print "EVENT reset", set SO_LINGER {1, 0} and close: the peer gets a RST
  no-read          accept, print "EVENT accepted", never read and never answer
  no-accept        listen with backlog 0, fill the accept queue with one connection to itself, never accept
  ws               answer a WebSocket handshake with 101, print "EVENT ws-open", echo each frame (unmasked) and print
                   "EVENT ws-message"
"""
import argparse
import asyncio
import base64
import hashlib
import re
import socket
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"


def event(s):
    print("EVENT " + s, flush=True)


async def read_head(reader):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("eof before a complete head")
        buf += data
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def content_length(head):
    m = re.search(rb"\r\ncontent-length:[ \t]*([0-9]+)", head, re.IGNORECASE)
    return int(m.group(1)) if m else 0


async def forever():
    await asyncio.Event().wait()


async def hold_body(reader, writer, threshold):
    head, rest = await read_head(reader)
    got = len(rest)
    while got < threshold:
        data = await reader.read(min(65536, threshold - got))
        if not data:
            return
        got += len(data)
    event(f"body {got}")
    await forever()


async def hold_response(reader, writer, threshold):
    head, rest = await read_head(reader)
    need = content_length(head) - len(rest)
    while need > 0:
        data = await reader.read(need)
        if not data:
            return
        need -= len(data)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
                 + b"x" * threshold)
    await writer.drain()
    event("response-started")
    await forever()


async def reset_after_head(reader, writer):
    await read_head(reader)
    event("reset")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def ws(reader, writer):
    head, rest = await read_head(reader)
    m = re.search(rb"\r\nsec-websocket-key:[ \t]*([^\r]+)", head, re.IGNORECASE)
    if not m:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    accept = base64.b64encode(hashlib.sha1(m.group(1).strip() + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    await writer.drain()
    event("ws-open")
    buf = rest
    while True:
        while True:
            frame = parse_frame(buf)
            if frame:
                break
            data = await reader.read(65536)
            if not data:
                return
            buf += data
        (first, payload, used) = frame
        buf = buf[used:]
        n = len(payload)
        if n < 126:
            header = bytes([first, n])
        elif n < 65536:
            header = bytes([first, 126]) + struct.pack("!H", n)
        else:
            header = bytes([first, 127]) + struct.pack("!Q", n)
        writer.write(header + payload)
        await writer.drain()
        event("ws-message")


def parse_frame(buf):
    if len(buf) < 2:
        return None
    first, second = buf[0], buf[1]
    n = second & 0x7F
    i = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack("!H", buf[2:4])[0]
        i = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack("!Q", buf[2:10])[0]
        i = 10
    mask = b""
    if second & 0x80:
        if len(buf) < i + 4:
            return None
        mask = buf[i:i + 4]
        i += 4
    if len(buf) < i + n:
        return None
    payload = buf[i:i + n]
    if mask:
        payload = bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
    return first, payload, i + n


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["hold-body", "hold-response", "reset-after-head", "no-read", "no-accept", "ws"])
    ap.add_argument("--threshold", type=int, default=50_000)
    args = ap.parse_args()

    if args.mode == "no-accept":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Backlog 0 admits one completed connection; once it is queued (never accepted), further SYNs are dropped.
        filler = socket.create_connection(("127.0.0.1", port), timeout=5)
        print(f"PORT {port}", flush=True)
        await forever()
        filler.close()
        return

    if args.mode == "no-read":
        # Plain sockets, not asyncio (whose transport would read ahead into its own buffer): nothing is ever read.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        print(f"PORT {listener.getsockname()[1]}", flush=True)
        held = []
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.run_in_executor(None, listener.accept)
            held.append(conn)
            event("accepted")

    async def handler(reader, writer):
        try:
            if args.mode == "hold-body":
                await hold_body(reader, writer, args.threshold)
            elif args.mode == "hold-response":
                await hold_response(reader, writer, args.threshold)
            elif args.mode == "reset-after-head":
                await reset_after_head(reader, writer)
            elif args.mode == "ws":
                await ws(reader, writer)
        except (ConnectionError, OSError):
            pass

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
