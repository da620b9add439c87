"""HTTP GETs that survive the real internet: timeouts, retries with backoff, honest errors.

Survey cutout services rate-limit (429), fail transiently (502/503/504), drop connections
mid-body, and answer some bad requests with an HTML error page and status 200. Each of those
becomes either a retry or a :class:`~galaxy_retrieval.errors.FetchError` whose message says
what happened; a body is only ever handed on after it has been checked.
"""

from __future__ import annotations

import io
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError, FetchError

__all__ = [
    "HttpConfig",
    "RETRY_STATUS",
    "make_client",
    "get_checked",
    "check_image_bytes",
    "retry_wait",
    "is_name_error",
    "name_error_message",
]

#: statuses worth another try: rate limiting and transient server trouble
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpConfig:
    concurrency: int = 8  # requests in flight at once; be polite to public services
    timeout_s: float = 30.0  # per request: connect, and each read of the body
    retries: int = 4  # further attempts after the first, on 429/5xx and broken connections
    backoff_s: float = 1.0  # wait before the first retry; doubles each time
    max_backoff_s: float = 60.0  # cap on one wait (also on a server's Retry-After)
    # the whole of one attempt, body included: the timeout above is per read, so a server
    # that drips a byte every few seconds would otherwise hold a request for ever
    deadline_s: float = 120.0
    # the most bytes of one body, counted after decompression (a gzip bomb stops here)
    max_bytes: int = 64 << 20
    max_redirects: int = 10

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and self.max_bytes > 0 and self.max_redirects >= 0):
            raise ConfigError("deadline and max_bytes must be > 0, max_redirects ≥ 0")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be ≥ 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout_s}")
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("retries and backoff times must be ≥ 0")


def make_client(cfg: HttpConfig) -> httpx.Client:
    from ..version import __version__

    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    return httpx.Client(
        timeout=httpx.Timeout(cfg.timeout_s),
        limits=limits,
        follow_redirects=True,
        max_redirects=cfg.max_redirects,
        headers={"User-Agent": f"galaxy-retrieval/{__version__}"},
    )


def retry_wait(cfg: HttpConfig, attempt: int, response: httpx.Response | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based); a Retry-After in seconds wins."""
    if response is not None:
        ra = response.headers.get("retry-after", "").strip()
        if ra.isdigit():
            return min(float(ra), cfg.max_backoff_s)
    return min(cfg.backoff_s * 2 ** (attempt - 1), cfg.max_backoff_s)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def is_name_error(e: BaseException) -> bool:
    """Whether a connection failed because the host name does not resolve (DNS): asking
    again in a few seconds gets the same answer, so it is not retried (5 tries cost 16–22 s)."""
    import socket

    seen: set[int] = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, socket.gaierror):
            return True
        x = x.__cause__ or x.__context__
    text = str(e).lower()
    return any(
        m in text
        for m in (
            "name or service not known",
            "nodename nor servname",
            "name resolution",
            "getaddrinfo failed",
            "no address associated",
        )
    )


def name_error_message(url: str, e: BaseException) -> str:
    return f"cannot resolve the host {_host(url)} ({e or type(e).__name__}); check the address (--base-url) and the network"


def transport_failure(e: httpx.HTTPError, timeout_s: float, where: str = "the server") -> str:
    """Why an attempt failed, in words, for a timeout, a cut-short transfer or no connection."""
    if isinstance(e, httpx.TimeoutException):
        return f"no data from {where} within {timeout_s:g} s"
    if isinstance(e, httpx.RemoteProtocolError):
        return f"the transfer from {where} was cut short ({e})"
    return f"cannot reach {where} ({e or type(e).__name__})"


def get_checked(
    client: httpx.Client,
    url: str,
    cfg: HttpConfig,
    check: Callable[[bytes, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """GET ``url`` and return its body once ``check(body, content_type)`` accepts it.

    Retries 429/5xx, timeouts and broken connections (a body shorter than its
    Content-Length is one) up to ``cfg.retries`` times with exponential backoff. Other HTTP
    errors, and bodies ``check`` rejects, fail at once: asking again would get the same."""
    reason = ""
    attempts = cfg.retries + 1
    for attempt in range(1, attempts + 1):
        response = None
        try:
            response, body = _get_bounded(client, url, cfg)
        except httpx.TooManyRedirects:
            raise FetchError(
                f"{_host(url)} redirected more than {cfg.max_redirects} times (a redirect loop?)"
            ) from None
        except _DeadlinePassed:
            reason = f"{_host(url)} took longer than {cfg.deadline_s:g} s to send the body"
        except httpx.TransportError as e:
            if is_name_error(e):
                raise FetchError(name_error_message(url, e)) from None
            reason = transport_failure(e, cfg.timeout_s, _host(url))
        except httpx.HTTPError as e:  # a body that cannot be decoded, an invalid URL, …
            raise FetchError(f"bad answer from {_host(url)} ({type(e).__name__}: {e})") from None
        else:
            status = response.status_code
            if status == 200:
                if check is not None:
                    check(body, response.headers.get("content-type", ""))
                return body
            reason = f"HTTP {status} {response.reason_phrase}".rstrip()
            if status not in RETRY_STATUS:
                raise FetchError(reason)
        if attempt < attempts:
            sleep(retry_wait(cfg, attempt, response))
    raise FetchError(f"{reason} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})")


class _DeadlinePassed(Exception):
    pass


def _get_bounded(client: httpx.Client, url: str, cfg: HttpConfig) -> tuple[httpx.Response, bytes]:
    """One GET, streamed: (response, body of a 200, else b""). The body is counted as it is
    decoded and dropped past ``cfg.max_bytes``; the attempt ends at ``cfg.deadline_s``."""
    start = time.monotonic()
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            return response, b""
        buf = bytearray()
        enc = response.headers.get("content-encoding", "").strip().lower()
        # gzip/deflate are decoded here, a bounded amount per step: httpx's own decoder
        # inflates a whole network chunk at once (64 KiB of a gzip bomb is 64 MiB)
        inflate = (
            zlib.decompressobj(47 if enc in ("gzip", "x-gzip") else zlib.MAX_WBITS)
            if enc in ("gzip", "x-gzip", "deflate")
            else None
        )
        pieces = (
            response.iter_raw() if inflate is not None or enc in ("", "identity") else response.iter_bytes()
        )
        for raw in pieces:
            data = raw
            while data:
                if inflate is None:
                    buf += data
                    data = b""
                else:
                    try:
                        buf += inflate.decompress(data, max(1, cfg.max_bytes + 1 - len(buf)))
                    except zlib.error as e:
                        raise FetchError(f"the body from {_host(url)} is not valid {enc} ({e})") from None
                    data = inflate.unconsumed_tail
                if len(buf) > cfg.max_bytes:
                    raise FetchError(
                        f"the body from {_host(url)} is over {cfg.max_bytes:,} bytes (decoded); not a cutout"
                    )
            if time.monotonic() - start > cfg.deadline_s:
                raise _DeadlinePassed
        return response, bytes(buf)


def _looks_like_html(data: bytes, content_type: str) -> bool:
    head = data[:512].lstrip().lower()
    return "html" in content_type.lower() or head.startswith(
        (b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")
    )


def check_image_bytes(fmt: str) -> Callable[[bytes, str], None]:
    """A ``check`` for :func:`get_checked`: the body must decode completely as a JPEG/PNG
    (``fmt="jpeg"``) or hold a FITS image HDU (``"fits"``)."""

    def check(data: bytes, content_type: str) -> None:
        if not data:
            raise FetchError("the server sent an empty body, not an image")
        if _looks_like_html(data, content_type):
            raise FetchError(
                f"the server sent an HTML page ({content_type or 'no content type'}), not an image"
            )
        if fmt == "fits":
            _check_fits(data)
        else:
            _check_raster(data)

    return check


def _check_raster(data: bytes) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes every scan line: a truncated JPEG fails here
    except UnidentifiedImageError:
        raise FetchError(f"the server sent {len(data):,} bytes that are not an image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FetchError(f"truncated or corrupt image ({e})") from None


def _check_fits(data: bytes) -> None:
    try:
        from astropy.io import fits
    except ImportError:
        raise FetchError("checking FITS cutouts needs astropy (pip install astropy)") from None
    if not data.startswith(b"SIMPLE  ="):
        raise FetchError(f"the server sent {len(data):,} bytes that are not a FITS file")
    try:
        with warnings.catch_warnings():
            # astropy only warns about a short file (and pads it): here that is the error
            warnings.filterwarnings("error", message=".*truncated.*")
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                # fits.open is lazy: touching each HDU's data reads it, so a short file fails here
                found = any(h.data is not None and h.data.ndim >= 2 for h in hdul)
    except Exception as e:  # astropy raises many types for damaged files
        raise FetchError(f"truncated or corrupt FITS file ({e})") from None
    if not found:
        raise FetchError("the FITS file has no image HDU")
