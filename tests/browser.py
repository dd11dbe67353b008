"""A real headless Chromium, driven over the DevTools protocol (websocket-client).

Just what the browser tests need: open a page, run JavaScript in it, wait for a
condition, take a screenshot. The page's WebSocket traffic is copied into
`window.__received` (text), so a test can tell what the page was sent: textual-serve
draws the terminal on a canvas, where no DOM query reaches the text.
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

import websocket

from conftest import wait_for
from dashboard.lab.servers import free_port

# Installed before any script of the page runs: every WebSocket's messages, as text.
TAP = """
(() => {
  const Original = window.WebSocket;
  window.__received = [];
  const keep = (data) => {
    if (typeof data === "string") { window.__received.push(data); }
    else if (data instanceof ArrayBuffer) { window.__received.push(new TextDecoder().decode(data)); }
    else if (data && data.text) { data.text().then((t) => window.__received.push(t)); }
  };
  function Tapped(...args) {
    const ws = new Original(...args);
    ws.addEventListener("message", (event) => keep(event.data));
    return ws;
  }
  Tapped.prototype = Original.prototype;
  Object.assign(Tapped, Original);
  window.WebSocket = Tapped;
})();
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page; stopped by its PID on close()."""

    def __init__(self, size: tuple[int, int] = (1600, 1000)) -> None:
        binary = chromium()
        if binary is None:
            raise RuntimeError("no chromium on PATH")
        self.port = free_port()
        self._profile = tempfile.TemporaryDirectory(prefix="scaledash-chromium-")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-extensions", f"--remote-debugging-port={self.port}",
             "--remote-debugging-address=127.0.0.1", "--remote-allow-origins=*",
             f"--user-data-dir={self._profile.name}", f"--window-size={size[0]},{size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._id = 0
        try:
            self._ws = websocket.create_connection(self._page_socket(), timeout=20)
            self.call("Page.enable")
            self.call("Page.addScriptToEvaluateOnNewDocument", source=TAP)
        except BaseException:
            self.close()
            raise

    def _page_socket(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=2) as resp:
                    pages = [p for p in json.load(resp) if p.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def received(self) -> str:
        """Everything the page's WebSockets were sent so far, as one text."""
        return self.evaluate("(window.__received || []).join('')") or ""

    def wait(self, what: str, predicate, timeout: float = 30.0):
        """`predicate()`'s first truthy value, asked every 0.25 s; AssertionError naming `what` after `timeout`."""
        try:
            return wait_for(predicate, timeout=timeout, interval=0.25)
        except AssertionError:
            raise AssertionError(f"browser: {what} not within {timeout:g}s") from None

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._profile.cleanup()
