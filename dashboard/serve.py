"""`scaledash serve FILE`: the dashboard in a browser, for a war room.

textual-serve (the Textual team's own package) runs one `scaledash attach FILE` (or
`replay FILE`) per browser tab and streams it over a WebSocket, so every viewer reads
the daemon's recording and none of them polls a target.

What this module adds to textual-serve's Server:
- It binds 127.0.0.1 unless told otherwise. On any other address a random token is
  required: `/?token=...` once, after which an HttpOnly, SameSite=Strict cookie carries
  it for the page's WebSocket and static files. Tokens are compared in constant time.
- Its logging: textual-serve logs through a RichHandler with `tracebacks_show_locals`,
  the path by which a DSN was once seen on screen; here log lines go through the one
  redaction point and never show locals, and the access log (which would print
  `?token=`) is off.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import shlex
import signal
import socket
import sys

from dashboard.export import is_loopback
from dashboard.redact import redact, register_secret

COOKIE = "scaledash_token"


def command_for(path: str, replay: bool) -> str:
    """The command each browser tab runs: this Python, this package, the recording."""
    return " ".join(shlex.quote(part) for part in
                    (sys.executable, "-m", "dashboard.cli", "replay" if replay else "attach", path))


class _Redacted(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.exc_info = record.exc_text = None       # a traceback here would hold locals
        return redact(super().format(record))


def make_server(path: str, host: str, port: int, *, replay: bool = False, token: str | None = None,
                public_url: str | None = None):
    """A textual-serve Server for the recording at `path` (see the module docstring)."""
    from aiohttp import web
    from textual_serve.server import Server

    class GuardedServer(Server):
        def initialize_logging(self) -> None:
            handler = logging.StreamHandler()
            handler.setFormatter(_Redacted("scaledash serve: %(message)s"))
            logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            if token is not None:
                app.middlewares.append(_token_middleware(token))
            return app

        async def on_startup(self, app: web.Application) -> None:
            """textual-serve prints a logo here; the CLI prints its own line."""

        def serve(self, debug: bool = False) -> None:
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.request_exit)
            # shutdown_timeout: open tabs are cancelled after 3 s (each tab's app is told to quit),
            # rather than aiohttp's 60 s wait for their WebSockets to end on their own.
            web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                        access_log=None, print=lambda *args: None, shutdown_timeout=3.0)

    shown = f"[{host}]" if ":" in host else host
    if public_url is None and not is_loopback(host) and host in ("0.0.0.0", "::"):
        shown = socket.getfqdn()
    return GuardedServer(command_for(path, replay), host=host, port=port, title="scaledash",
                         public_url=public_url or f"http://{shown}:{port}")


def _token_middleware(token: str):
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=403, text="scaledash serve: this address needs the token it printed "
                                                 "at start (/?token=...)\n")
        response = await handler(request)
        if request.query.get("token") and isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return guard


def run(path: str, host: str, port: int, *, replay: bool = False, public_url: str | None = None) -> int:
    from dashboard.recording import Recording

    Recording(path).close()          # a file that is no recording: one line now, not in every tab
    token = None
    if not is_loopback(host):
        token = secrets.token_urlsafe(24)
        register_secret(token)
    server = make_server(path, host, port, replay=replay, token=token, public_url=public_url)
    url = server.public_url + "/"
    what = "replaying" if replay else "attached to"
    if token is None:
        print(f"scaledash: serving the dashboard {what} {path} on {url} (Ctrl-C to stop)", flush=True)
    else:
        # The one place the token is shown: the operator must hand it to the war room.
        print(f"scaledash: serving the dashboard {what} {path} on {url}?token={token} (Ctrl-C to stop)",
              flush=True)
        print(f"scaledash: {host} is not a loopback address: only the link above, with its token, opens it",
              flush=True)
    try:
        server.serve()
    except OSError as exc:
        print(f"scaledash: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    return 0
