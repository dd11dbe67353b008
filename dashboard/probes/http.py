"""HTTP plumbing shared by the /metrics, edge function and CDN probes (httpx).

One AsyncClient per target, with at most two sockets, keep-alive across rounds, the
deadline as every timeout, no redirects followed silently, and bodies capped on their
decompressed size while they stream (body.py: a gzip bomb is a few KB on the wire).
"""

from __future__ import annotations

import functools
import ssl

import httpx

from dashboard.model import Failure
from dashboard.probes.base import ProbeError, broken_mid_response, tls_verification_failure
from dashboard.probes.body import ACCEPT_ENCODING, MAX_BODY_BYTES, CappedBody, too_large

USER_AGENT = "scaledash/0.1"


@functools.cache
def tls_context(insecure: bool) -> ssl.SSLContext:
    """One context per mode for every client: loading the CA bundle costs ~17 ms and
    ~0.7 MB, which a fleet of 1000 targets would pay 1000 times (tests/bench)."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def make_client(deadline: float, insecure: bool = False, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(deadline),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        verify=tls_context(insecure),
        follow_redirects=False,
        auth=auth,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        trust_env=False,
    )


async def read_capped(response: httpx.Response, limit: int = MAX_BODY_BYTES, watch=None) -> bytes:
    """The decompressed body, or ProbeError("response too large ...") past `limit` bytes,
    decoded here from the raw stream (httpx would inflate each chunk whole: body.py).
    `watch` sees each decoded piece and may stop the read (CappedBody)."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit and "content-encoding" not in response.headers:
        raise too_large(limit)
    body = CappedBody(response.headers.get("content-encoding"), limit, watch)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    return body.finish()


def transport_failure(exc: httpx.HTTPError) -> ProbeError:
    """Name an httpx failure without printing its request (URLs carry credentials)."""
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        tls = tls_verification_failure(exc)
        if tls is not None:
            return tls
        if "refused" in text or "111" in text or _caused_by(exc, ConnectionRefusedError):
            return ProbeError(Failure.DOWN, "connection refused")
        if "ssl" in text or _caused_by(exc, ssl.SSLError):
            return ProbeError(Failure.ERROR, "TLS handshake failed")
        return ProbeError(Failure.DOWN, "cannot connect")
    if isinstance(exc, httpx.TimeoutException):
        return ProbeError(Failure.DOWN, "timeout")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return broken_mid_response()
    if isinstance(exc, httpx.DecodingError):
        return ProbeError(Failure.ERROR, "undecodable response body")
    return ProbeError(Failure.ERROR, type(exc).__name__)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    # httpx says only "All connection attempts failed"; the refusal is further down the chain.
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def resolved_headers(headers) -> dict[str, str]:
    from dashboard.config import Secret

    return {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in headers}


def basic_auth(target) -> tuple[str, str] | None:
    """HTTP basic auth for a source with `username` and/or `password`: a username alone
    is sent with an empty password (tokens given as the user name), never dropped."""
    if target.username is None and target.password is None:
        return None
    return target.username or "", target.password.reveal() if target.password else ""
