#!/usr/bin/env python3
"""A backend for GzipTests whose every answer is described by its query string (stdlib only, keep-alive).
Prints "PORT <n>" when ready.

  GET|HEAD /r?status=200&type=text/html&len=5000&ce=br&chunked=1&etag="x"&vary=Origin&cc=no-transform&accept_ranges=1

  status   the status code (default 200); 204 and 304 carry no body
  type     Content-Type (omitted when empty; default text/html; charset=utf-8)
  len      body length in bytes (default 5000): compressible text, the same for the same length
  ce       a Content-Encoding header (the body is sent as it is: the proxy must not touch it)
  chunked  1: Transfer-Encoding: chunked instead of Content-Length
  etag, vary, cc, accept_ranges   ETag, Vary, Cache-Control and Accept-Ranges: bytes headers
  range    with status=206: a Content-Range header
"""
import argparse
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 304: "Not Modified", 404: "Not Found"}


def body_of(n):
    line = b"The quick brown fox jumps over the lazy dog; 0123456789 pack my box with five dozen liquor jugs.\n"
    reps = n // len(line) + 1
    return (line * reps)[:n]


async def handle(reader, writer):
    try:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
            i = buf.index(b"\r\n\r\n") + 4
            head, buf = buf[:i], buf[i:]
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = request_line.split(" ", 2)
            q = {k: v[0] for k, v in parse_qs(urlsplit(target).query, keep_blank_values=True).items()}
            status = int(q.get("status", "200"))
            ctype = q.get("type", "text/html; charset=utf-8")
            n = int(q.get("len", "5000"))
            bodyless = status in (204, 304) or (100 <= status < 200)
            body = b"" if bodyless else body_of(n)
            lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
            if ctype:
                lines.append(f"Content-Type: {ctype}")
            if "ce" in q:
                lines.append(f"Content-Encoding: {q['ce']}")
            if "etag" in q:
                lines.append(f"ETag: {q['etag']}")
            if "vary" in q:
                lines.append(f"Vary: {q['vary']}")
            if "cc" in q:
                lines.append(f"Cache-Control: {q['cc']}")
            if "accept_ranges" in q:
                lines.append("Accept-Ranges: bytes")
            if status == 206:
                lines.append(f"Content-Range: bytes 0-{n - 1}/{n * 10}")
            chunked = q.get("chunked") == "1" and not bodyless
            if chunked:
                lines.append("Transfer-Encoding: chunked")
            elif not bodyless:
                lines.append(f"Content-Length: {len(body)}")
            out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            if method != "HEAD":
                if chunked:
                    for k in range(0, len(body), 1000):
                        piece = body[k:k + 1000]
                        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    out += b"0\r\n\r\n"
                else:
                    out += body
            writer.write(out)
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
