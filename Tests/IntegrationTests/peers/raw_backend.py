#!/usr/bin/env python3
"""An independent HTTP/1.1 origin server for Huddle's integration tests (stdlib only, shares no code with Huddle).

It records the raw bytes of every connection it accepts and parses requests with its own small, strict parser, so a
test can see exactly what Huddle forwarded:

  RECORD_DIR/conn-NNNNNN.raw      every byte received on connection NNNNNN, appended as it arrives
  RECORD_DIR/conn-NNNNNN.closed   created once the connection is over (content: why: eof, reset, server-close)
  RECORD_DIR/requests.jsonl       one JSON object per request: conn, index, method, target, version,
                                  headers ([[name, value], ...] as received), body_length, body (latin-1), or error

Answers: 200 with a JSON summary of the request (the same object as in requests.jsonl), keep-alive as HTTP/1.1 says;
GET .../stream/N answers N bytes (byte i is i % 251) in 64 KiB writes with backpressure. A request it cannot parse gets
400 with {"error": ...} and the connection is closed. Prints "PORT <n>" on stdout once it listens (port 0 = any).

With --proxy-protocol every connection must start with a PROXY protocol header (v1 or v2, HAProxy's
proxy-protocol.txt), read by its own small parser: the header is recorded in RECORD_DIR/conn-NNNNNN.proxy (JSON:
version, command, family, src, dst, sport, dport as far as present) and under "proxy" in each request's summary; a
connection without a valid header gets its error recorded there and is closed unanswered.

Response controls (for the cache tests), as query parameters of the target; without any, nothing changes:
  _h=Name:Value   add a response header line (repeatable; percent-encoded as form data)
  _status=N       answer with status N
  _size=N         a body of N bytes (byte i is i % 251) instead of the JSON summary
  _delay=MS       wait that long before answering
  _chunked=1      send the body chunked (in pieces of at most 4 KiB)
Each line of requests.jsonl also has "busy": the requests being answered at that moment, this one included (a test
checks a concurrency cap with it). A controlled answer carries "X-Serial: N", a count of the controlled answers so far (1, 2, ...), so a test can tell a
response the backend sent now from one it sent before. POST /__fail?status=N (with no body) makes every later request
(controlled or not, /__fail excepted) answer N with an empty body until POST /__fail?status=0; it answers 204.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import re
import sys
import urllib.parse

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
VERSION = re.compile(rb"^HTTP/1\.[01]$")
HEX = re.compile(rb"^[0-9A-Fa-f]+$")
DIGITS = re.compile(rb"^[0-9]+$")
MAX_HEAD = 65536
MAX_CHUNK_LINE = 4096
MAX_BODY_KEPT = 65536


class BadRequest(Exception):
    pass


class Closed(Exception):
    pass


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.next_id = 0

    def new_connection(self):
        self.next_id += 1
        cid = self.next_id
        open(self.path(cid, "raw"), "wb").close()
        return cid

    def path(self, cid, ext):
        return os.path.join(self.dir, f"conn-{cid:06d}.{ext}")

    def data(self, cid, data):
        with open(self.path(cid, "raw"), "ab") as f:
            f.write(data)

    def closed(self, cid, why):
        p = self.path(cid, "closed")
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write(why)

    def request(self, obj):
        with open(os.path.join(self.dir, "requests.jsonl"), "a") as f:
            f.write(json.dumps(obj) + "\n")


class Conn:
    """Buffered reader over a StreamReader that records every byte it receives."""

    def __init__(self, reader, recorder, cid):
        self.reader = reader
        self.recorder = recorder
        self.cid = cid
        self.buf = b""

    async def fill(self):
        try:
            data = await self.reader.read(65536)
        except (ConnectionResetError, BrokenPipeError):
            self.recorder.closed(self.cid, "reset")
            raise Closed()
        if not data:
            self.recorder.closed(self.cid, "eof")
            raise Closed()
        self.recorder.data(self.cid, data)
        self.buf += data

    async def line(self, limit):
        """One line ending in CRLF (returned without it); a bare LF or a CR not before LF is an error."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                if i == 0 or self.buf[i - 1:i] != b"\r":
                    raise BadRequest("bare LF")
                line = self.buf[:i - 1]
                self.buf = self.buf[i + 1:]
                if b"\r" in line:
                    raise BadRequest("bare CR")
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            await self.fill()

    async def exactly(self, n):
        while len(self.buf) < n:
            await self.fill()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out


def field_value_ok(v):
    return all(b == 9 or 0x20 <= b <= 0x7E or b >= 0x80 for b in v)


async def read_request(c, first):
    """Returns (method, target, version, headers) or None at a clean EOF between requests."""
    try:
        line = await c.line(MAX_HEAD)
    except Closed:
        if not c.buf:
            return None
        raise
    parts = line.split(b" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]) or not parts[1] or not VERSION.match(parts[2]):
        raise BadRequest(f"bad request line {line!r}")
    method, target, version = parts
    if any(b < 0x21 or b == 0x7F for b in target):
        raise BadRequest("control character in target")
    headers = []
    size = len(line)
    while True:
        line = await c.line(MAX_HEAD)
        size += len(line) + 2
        if size > MAX_HEAD:
            raise BadRequest("head too large")
        if line == b"":
            break
        if line[:1] in (b" ", b"\t"):
            raise BadRequest("obs-fold")
        colon = line.find(b":")
        if colon <= 0 or not TOKEN.match(line[:colon]):
            raise BadRequest(f"bad field line {line!r}")
        value = line[colon + 1:].strip(b" \t")
        if not field_value_ok(value):
            raise BadRequest("control character in a field value")
        headers.append((line[:colon], value))
    return method, target, version, headers


V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


async def read_proxy_header(c):
    """One PROXY protocol header at the start of the connection, as a dict; raises BadRequest if invalid."""
    while len(c.buf) < 1:
        await c.fill()
    if c.buf[:1] == b"P":
        while b"\r\n" not in c.buf[:107]:
            if len(c.buf) >= 107:
                raise BadRequest("v1 header without CRLF in 107 bytes")
            await c.fill()
        line = c.buf[:c.buf.index(b"\r\n")]
        c.buf = c.buf[len(line) + 2:]
        parts = line.split(b" ")
        if parts[0] != b"PROXY" or len(parts) < 2:
            raise BadRequest(f"bad v1 header {line!r}")
        if parts[1] == b"UNKNOWN":
            return {"version": 1, "command": "PROXY", "family": "UNKNOWN"}
        if parts[1] not in (b"TCP4", b"TCP6") or len(parts) != 6:
            raise BadRequest(f"bad v1 header {line!r}")
        cls = ipaddress.IPv4Address if parts[1] == b"TCP4" else ipaddress.IPv6Address
        try:
            src, dst = (str(cls(p.decode())) for p in parts[2:4])
        except ValueError:
            raise BadRequest(f"bad v1 address in {line!r}")
        ports = [p.decode() for p in parts[4:6]]
        if not all(p.isdigit() and str(int(p)) == p and int(p) <= 65535 for p in ports):
            raise BadRequest(f"bad v1 port in {line!r}")
        return {"version": 1, "command": "PROXY", "family": parts[1].decode(), "src": src, "dst": dst,
                "sport": int(ports[0]), "dport": int(ports[1])}
    while len(c.buf) < 16:
        await c.fill()
    if c.buf[:12] != V2_SIGNATURE or c.buf[12] >> 4 != 2 or c.buf[12] & 15 > 1:
        raise BadRequest(f"bad v2 header start {c.buf[:16]!r}")
    command = "LOCAL" if c.buf[12] & 15 == 0 else "PROXY"
    family = c.buf[13]
    length = int.from_bytes(c.buf[14:16], "big")
    while len(c.buf) < 16 + length:
        await c.fill()
    block = c.buf[16:16 + length]
    c.buf = c.buf[16 + length:]
    out = {"version": 2, "command": command, "family_byte": family, "length": length}
    if command == "PROXY" and family in (0x11, 0x21):
        n = 4 if family == 0x11 else 16
        if length < 2 * n + 4:
            raise BadRequest("v2 address block too short")
        cls = ipaddress.IPv4Address if n == 4 else ipaddress.IPv6Address
        out.update({"family": "TCP4" if n == 4 else "TCP6", "src": str(cls(block[:n])), "dst": str(cls(block[n:2 * n])),
                    "sport": int.from_bytes(block[2 * n:2 * n + 2], "big"),
                    "dport": int.from_bytes(block[2 * n + 2:2 * n + 4], "big")})
    return out


def header_values(headers, name):
    return [v for n, v in headers if n.lower() == name]


async def read_body(c, version, headers):
    cl = header_values(headers, b"content-length")
    te = header_values(headers, b"transfer-encoding")
    if te:
        if version == b"HTTP/1.0":
            raise BadRequest("Transfer-Encoding in HTTP/1.0")
        if cl:
            raise BadRequest("Content-Length and Transfer-Encoding")
        if len(te) != 1 or te[0].lower() != b"chunked":
            raise BadRequest(f"unsupported Transfer-Encoding {te!r}")
        body = bytearray()
        while True:
            size_line = await c.line(MAX_CHUNK_LINE)
            size_text = size_line.split(b";", 1)[0]
            if b";" in size_line:
                size_text = size_text.rstrip(b" \t")  # BWS is allowed only before a chunk extension
            if not HEX.match(size_text) or len(size_text) > 16:
                raise BadRequest(f"bad chunk size {size_line!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            body += await c.exactly(size)
            if await c.exactly(2) != b"\r\n":
                raise BadRequest("chunk data not followed by CRLF")
        while True:  # trailer section
            t = await c.line(MAX_HEAD)
            if t == b"":
                break
            colon = t.find(b":")
            if colon <= 0 or not TOKEN.match(t[:colon]):
                raise BadRequest(f"bad trailer line {t!r}")
        return bytes(body)
    if cl:
        if len(cl) != 1 or not DIGITS.match(cl[0]):
            raise BadRequest(f"bad Content-Length {cl!r}")
        return await c.exactly(int(cl[0]))
    return b""


def keep_alive(version, headers):
    options = [o.strip().lower() for v in header_values(headers, b"connection") for o in v.split(b",")]
    if version == b"HTTP/1.1":
        return b"close" not in options
    return b"keep-alive" in options and b"close" not in options


def text(b):
    return b.decode("latin-1")


STATE = {"serial": 0, "fail": 0, "busy": 0}
CONTROLS = ("_h", "_status", "_size", "_delay", "_chunked")


def controls(target):
    """The response controls in the target's query, or None when it has none."""
    t = text(target)
    if "?" not in t:
        return None
    pairs = urllib.parse.parse_qsl(t.split("?", 1)[1], keep_blank_values=True)
    found = [(k, v) for k, v in pairs if k in CONTROLS]
    return found or None


async def controlled_answer(writer, method, ctl, persist):
    STATE["serial"] += 1
    status = 200
    size = None
    delay = 0
    chunked = False
    extra = b""
    for k, v in ctl:
        if k == "_h":
            name, _, value = v.partition(":")
            extra += name.strip().encode("latin-1") + b": " + value.strip().encode("latin-1") + b"\r\n"
        elif k == "_status":
            status = int(v)
        elif k == "_size":
            size = int(v)
        elif k == "_delay":
            delay = int(v)
        elif k == "_chunked":
            chunked = v == "1"
    if delay:
        await asyncio.sleep(delay / 1000)
    if size is None:
        body = ("serial %d\n" % STATE["serial"]).encode()
    else:
        pattern = bytes(i % 251 for i in range(251))
        body = (pattern * (size // 251 + 1))[:size]
    if method == b"HEAD" or status in (204, 304):
        body_out = b""
    else:
        body_out = body
    head = b"HTTP/1.1 " + str(status).encode() + b" X\r\nX-Serial: " + str(STATE["serial"]).encode() + b"\r\n" + extra
    if not persist:
        head += b"Connection: close\r\n"
    if status in (204, 304):
        writer.write(head + b"\r\n")
    elif chunked:
        writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body_out), 4096):
            piece = body_out[i:i + 4096]
            writer.write(("%x\r\n" % len(piece)).encode() + piece + b"\r\n")
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body_out)
    await writer.drain()


async def handle(reader, writer, recorder, proxy_protocol):
    cid = recorder.new_connection()
    c = Conn(reader, recorder, cid)
    index = 0
    busy = False
    proxy = None
    try:
        if proxy_protocol:
            try:
                proxy = await read_proxy_header(c)
            except BadRequest as e:
                proxy = {"error": str(e)}
            with open(recorder.path(cid, "proxy"), "w") as f:
                json.dump(proxy, f)
            if "error" in proxy:
                recorder.closed(cid, "server-close")
                return
        while True:
            try:
                req = await read_request(c, index == 0)
                if req is None:
                    break
                method, target, version, headers = req
                if version == b"HTTP/1.1" and len(header_values(headers, b"host")) != 1:
                    raise BadRequest("HTTP/1.1 request without exactly one Host")
                if len(header_values(headers, b"host")) > 1:
                    raise BadRequest("more than one Host")
                body = await read_body(c, version, headers)
            except BadRequest as e:
                recorder.request({"conn": cid, "index": index, "error": str(e)})
                payload = json.dumps({"error": str(e)}).encode()
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n" + payload)
                await writer.drain()
                recorder.closed(cid, "server-close")
                break
            summary = {"conn": cid, "index": index, "method": text(method), "target": text(target),
                       "version": text(version), "headers": [[text(n), text(v)] for n, v in headers],
                       "body_length": len(body), "body": text(body[:MAX_BODY_KEPT])}
            if proxy is not None:
                summary["proxy"] = proxy
            # Requests being answered now, this one included (recorded only): a test can check a concurrency cap.
            STATE["busy"] += 1
            busy = True
            recorder.request(dict(summary, busy=STATE["busy"]))
            index += 1
            persist = keep_alive(version, headers)
            connection = b"" if persist else b"Connection: close\r\n"
            m = re.search(rb"/stream/([0-9]+)$", target)
            ctl = controls(target)
            if target.startswith(b"/__fail"):
                q = urllib.parse.parse_qs(text(target).partition("?")[2])
                STATE["fail"] = int(q.get("status", ["0"])[0])
                writer.write(b"HTTP/1.1 204 No Content\r\n" + connection + b"\r\n")
                await writer.drain()
            elif STATE["fail"]:
                writer.write(b"HTTP/1.1 " + str(STATE["fail"]).encode() + b" Failing\r\nContent-Length: 0\r\n" + connection + b"\r\n")
                await writer.drain()
            elif ctl is not None:
                await controlled_answer(writer, method, ctl, persist)
            elif m and method == b"GET":
                n = int(m.group(1))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                             + str(n).encode() + b"\r\n" + connection + b"\r\n")
                pattern = bytes(i % 251 for i in range(251 * 262))  # 65762 bytes, a whole number of periods
                sent = 0
                while sent < n:
                    piece = min(n - sent, 65536 - 65536 % 251)
                    writer.write(pattern[:piece])
                    sent += piece
                    await writer.drain()
            else:
                payload = json.dumps(summary).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\n" + connection + b"\r\n"
                             + (b"" if method == b"HEAD" else payload))
                await writer.drain()
            STATE["busy"] -= 1
            busy = False
            if not persist:
                recorder.closed(cid, "server-close")
                break
    except Closed:
        pass
    except (ConnectionResetError, BrokenPipeError):
        recorder.closed(cid, "reset")
    finally:
        if busy:
            STATE["busy"] -= 1
        try:
            writer.close()
        except Exception:
            pass
        recorder.closed(cid, "server-close")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--proxy-protocol", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.record_dir, exist_ok=True)
    recorder = Recorder(args.record_dir)
    server = await asyncio.start_server(lambda r, w: handle(r, w, recorder, args.proxy_protocol), args.host, args.port,
                                        limit=MAX_HEAD)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
