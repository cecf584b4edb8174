#!/usr/bin/env python3
"""A WebSocket client on the `websockets` library, over TLS (wss://) with a given CA. Modes:
  echo URL --ca CA --host NAME --size N --count K   send K binary messages of N bytes, check each echo, print "OK"
  hold URL --ca CA --host NAME --trigger FILE       echo one message, print "READY", wait for FILE to exist,
                                                    echo another on the same connection, print "OK"
Errors print "FAIL <why>" and exit 1."""
import argparse
import os
import ssl
import sys
import time

from websockets.sync.client import connect


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo", "hold"])
    ap.add_argument("url")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--trigger")
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    with connect(a.url, ssl=ctx, server_hostname=a.host, max_size=None, open_timeout=10) as ws:
        if a.mode == "echo":
            for i in range(a.count):
                payload = bytes((i * 7 + j) & 0xFF for j in range(a.size))
                ws.send(payload)
                got = ws.recv(timeout=20)
                if got != payload:
                    print("FAIL message %d came back different (%d bytes)" % (i, len(got)), flush=True)
                    sys.exit(1)
            print("OK", flush=True)
        else:
            ws.send("one")
            if ws.recv(timeout=10) != "one":
                print("FAIL first echo", flush=True)
                sys.exit(1)
            print("READY", flush=True)
            deadline = time.time() + 30
            while not os.path.exists(a.trigger):
                if time.time() > deadline:
                    print("FAIL trigger never came", flush=True)
                    sys.exit(1)
                time.sleep(0.05)
            ws.send("two")
            if ws.recv(timeout=10) != "two":
                print("FAIL second echo", flush=True)
                sys.exit(1)
            print("OK", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print("FAIL %r" % e, flush=True)
        sys.exit(1)
