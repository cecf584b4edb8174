#!/usr/bin/env python3
"""A WebSocket echo backend built on the `websockets` library (not on Huddle's code). Prints "PORT <n>" when ready,
"EVENT open <path>" per connection, and "EVENT close <path> <code>" with the close code it received when a
connection ends (code 1006 when there was no Close frame)."""
import asyncio
import sys

import websockets


def event(s):
    print("EVENT " + s, flush=True)


async def handler(ws):
    path = ws.request.path if hasattr(ws, "request") and ws.request is not None else getattr(ws, "path", "?")
    event("open " + path)
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    event("close %s %s" % (path, ws.close_code if ws.close_code is not None else 1006))


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("PORT %d" % port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
