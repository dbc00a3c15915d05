"""Headless Chromium driven over the DevTools protocol: open a page, wait real time, screenshot it.

A plain ``chromium --screenshot`` returns before the Rerun web viewer's WebAssembly has compiled (it
needs real seconds), so the test keeps the browser open and asks for screenshots until one shows
what it waits for.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The first Chromium on PATH (Debian's package is ``chromium``), or None."""
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


def screenshot_when(url: str, ready: Callable[[bytes], bool], timeout_s: float = 120.0,
                    size: tuple[int, int] = (1280, 800)) -> tuple[bytes, bool]:
    """PNG screenshots of ``url`` every few seconds until ``ready(png)`` (or the timeout); the last
    one and whether it was ready."""
    from websockets.sync.client import connect

    profile = Path(tempfile.mkdtemp(prefix="thalamus-chromium-"))
    browser = subprocess.Popen(
        [find_chromium() or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-extensions", "--mute-audio",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", f"--window-size={size[0]},{size[1]}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or browser.poll() is not None:
                raise RuntimeError("headless Chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        socket_url = next(p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page")
        with connect(socket_url, max_size=2**26, open_timeout=30) as ws:
            png, ok, n = b"", False, 0
            while not ok and time.monotonic() < deadline:
                time.sleep(3)
                n += 1
                ws.send(json.dumps({"id": n, "method": "Page.captureScreenshot", "params": {"format": "png"}}))
                while True:
                    reply = json.loads(ws.recv(timeout=60))
                    if reply.get("id") == n:
                        break
                png = base64.b64decode(reply["result"]["data"])
                ok = ready(png)
            return png, ok
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=20)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
