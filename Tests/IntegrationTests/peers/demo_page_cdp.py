#!/usr/bin/env python3
"""Drives the demo chat page in headless Chromium over the DevTools protocol: opens PAGE_URL, waits until the page says
it joined, POSTs DRAIN_URL (with the admin token) so the room's server drains and the room migrates, then waits until
the page says where it moved. Prints one JSON object: the page's log lines at each step, its state text, and whether
a screenshot was written. Every wait is bounded."""
import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

from websockets.asyncio.client import connect


class CDP:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self.pending.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def page_text(cdp, session, element):
    r = await cdp.call("Runtime.evaluate", {"expression": f"document.getElementById({json.dumps(element)}).innerText",
                                            "returnByValue": True}, session)
    return r.get("result", {}).get("value") or ""


async def wait_for_text(cdp, session, pattern, timeout):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = await page_text(cdp, session, "log")
        if re.search(pattern, text):
            return text, True
        await asyncio.sleep(0.1)
    return text, False


async def run(args):
    profile = tempfile.mkdtemp(prefix="huddle-cdp-")
    browser = subprocess.Popen([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = {}
    try:
        ws_url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ws_url is None:
            line = await asyncio.to_thread(browser.stderr.readline)
            m = re.search(r"DevTools listening on (ws://\S+)", line or "")
            if m:
                ws_url = m.group(1)
            elif not line and browser.poll() is not None:
                break
        if ws_url is None:
            return {"error": "chromium did not start its DevTools endpoint"}
        async with connect(ws_url, max_size=None, ping_interval=None) as ws:
            cdp = CDP(ws)
            target = (await cdp.call("Target.createTarget", {"url": args.page}))["targetId"]
            session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            await cdp.call("Runtime.enable", session=session)
            text, ok = await wait_for_text(cdp, session, r"joined .* on ", 20)
            out["joined"] = ok
            out["log_before"] = text
            req = urllib.request.Request(args.drain, method="POST", headers={"Authorization": f"Bearer {args.token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                out["drain_status"] = r.status
            text, ok = await wait_for_text(cdp, session, r"moved to ", 20)
            out["moved"] = ok
            out["log_after"] = text
            out["state"] = await page_text(cdp, session, "state")
            out["backend"] = await page_text(cdp, session, "backend")
            if args.screenshot:
                shot = await cdp.call("Page.captureScreenshot", {"format": "png"}, session)
                with open(args.screenshot, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
                out["screenshot"] = args.screenshot
            cdp.reader.cancel()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chromium", required=True)
    p.add_argument("--page", required=True)
    p.add_argument("--drain", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--screenshot")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
