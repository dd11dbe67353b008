"""Response bodies capped on their decompressed size, for httpx and requests alike.

A gzip bomb is a few KB on the wire and gigabytes inflated. httpx's and urllib3's
decoders inflate each network chunk whole (one 64 KiB chunk of zeros is ~64 MB), so a
cap checked on what they return is checked after the memory is spent: a refused bomb
still peaked the dashboard's RSS at 160-200 MB. Here the raw bytes are inflated piece
by piece (zlib's `max_length`) and reading stops at the cap, so memory stays within it
whatever the ratio (RELIABILITY.md case 20). The same cap ends an endless plain stream.

Only the encodings we ask for are accepted (`ACCEPT_ENCODING`): a server that answers
in another one (brotli, zstd: bombs too, without a bounded decoder here) is an ERROR.
"""

from __future__ import annotations

import zlib

from dashboard.model import Failure
from dashboard.probes.base import ProbeError
from dashboard.redact import sanitize

MAX_BODY_BYTES = 5 * 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"
PIECE = 64 * 1024      # the most one inflate step may produce


def too_large(limit: int) -> ProbeError:
    return ProbeError(Failure.ERROR, f"response too large: body over {_megabytes(limit)} (decompressed)")


def _megabytes(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


class CappedBody:
    """Feed it the raw bytes as they arrive; `finish()` gives the decoded body.

    Raises ProbeError("response too large ...") as soon as the decoded size passes
    `limit`, and ProbeError for an encoding it does not decode or a corrupt stream.
    """

    def __init__(self, content_encoding: str | None, limit: int = MAX_BODY_BYTES, watch=None):
        """`watch`: called with each decoded piece as it arrives; it may raise ProbeError
        to stop reading (the series cap, long before a 5 MB body is in)."""
        self.limit = limit
        self._watch = watch
        self.size = 0
        self._parts: list[bytes] = []
        self._encoding = (content_encoding or "").strip().lower()
        self._inflate = _inflater(self._encoding)
        self._started = False

    def feed(self, raw: bytes) -> None:
        if not raw:
            return
        if self._inflate is None:
            self._add(raw)
            return
        if not self._started and self._encoding == "deflate" and not _zlib_wrapped(raw):
            # "deflate" is meant to be zlib-wrapped; some servers send it raw (httpx accepts both).
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        self._inflate_all(raw)

    def _inflate_all(self, data: bytes) -> None:
        inflate = self._inflate
        while not inflate.eof:
            try:
                out = inflate.decompress(data, PIECE)
            except zlib.error:
                raise ProbeError(Failure.ERROR, f"undecodable response body (bad {self._encoding} data)") from None
            self._add(out)
            data = inflate.unconsumed_tail
            if not data and len(out) < PIECE:
                return

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self._parts.clear()
            raise too_large(self.limit)
        if data:
            self._parts.append(data)
            if self._watch is not None:
                self._watch(data)

    def finish(self) -> bytes:
        if self._inflate is not None and not self._inflate.eof:
            try:
                self._add(self._inflate.flush())
            except zlib.error:
                raise ProbeError(Failure.ERROR, f"undecodable response body (bad {self._encoding} data)") from None
        body = b"".join(self._parts)
        self._parts.clear()
        return body


def _inflater(encoding: str):
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise ProbeError(Failure.ERROR, f"unsupported content-encoding: {sanitize(encoding, 30)}")


def _zlib_wrapped(raw: bytes) -> bool:
    """A zlib header: compression method 8 and a checksum over the first two bytes."""
    return len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] * 256 + raw[1]) % 31 == 0
