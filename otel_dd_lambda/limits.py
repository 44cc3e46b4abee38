"""Bounds on what goes into span tags: Datadog's size limits and URL sanitizing, in one module.

The limits are the Datadog agent's own (its trace normalizer truncates to them): a meta key at
most 200 bytes, a meta value 25,000, a metrics key 200, a resource 5,000, counted in UTF-8 and cut
on a character boundary. Truncating to them before encoding changes nothing the agent would
keep, and it keeps an oversized span from being refused or dropped on the way.

URL-like tags (``http.url``, ``http.referer``, ``url.full``, ``http.target``) lose their query
string and fragment by default: both routinely carry secrets (an OAuth ``code=``, a presigned
URL's signature, a session token) and unbounded values. ``OTEL_DD_LAMBDA_KEEP_URL_QUERY=true``
keeps them (read in ``config.py``).
"""

from __future__ import annotations

MAX_META_KEY = 200
MAX_META_VALUE = 25_000
MAX_METRIC_KEY = 200
MAX_RESOURCE = 5_000
# Datadog's normalizer caps these three at 100 bytes; used when a span must be cut to fit.
MAX_NAME = 100

ELLIPSIS = "..."  # what the agent appends to a key or value it truncated

# Tags whose values are URLs (or a path with a query): stripped of query and fragment.
URL_TAGS = frozenset(("http.url", "http.referer", "url.full", "http.target"))


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates count as the 3 bytes they would take)."""
    if text.isascii():  # O(1) in CPython: the str knows it is ASCII
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def truncate_utf8(text: str, limit: int, marker: str = "") -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ``marker`` included, on a character boundary.

    Unchanged when it fits. A ``marker`` (``"..."``) is appended to a cut value, within the limit.
    """
    if len(text) <= limit // 4 or (text.isascii() and len(text) <= limit):
        return text  # 4 bytes per character at most: it fits without encoding
    if text.isascii():
        return text[: max(0, limit - len(marker))] + marker
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    keep = max(0, limit - len(marker.encode("utf-8")))
    # "ignore" drops the partial character the byte cut may leave at the end; a lone surrogate
    # (invalid in UTF-8, refused by msgpack) becomes U+FFFD
    head = data[:keep].decode("utf-8", "ignore") if keep else ""
    return _valid(head) + marker


def _valid(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def strip_url_query(url: str) -> str:
    """``url`` without its query string and fragment (``?...`` and ``#...``)."""
    if "?" not in url and "#" not in url:  # the usual URL: two C-level scans, no slicing
        return url
    cut = len(url)
    for separator in ("?", "#"):
        index = url.find(separator, 0, cut)
        if index >= 0:
            cut = index
    return url[:cut] if cut < len(url) else url


def url_tag(url: str, keep_query: bool = False) -> str:
    """The value to put in a URL-like tag: no query or fragment (unless kept), within the limit."""
    if not keep_query:
        url = strip_url_query(url)
    return truncate_utf8(url, MAX_META_VALUE, ELLIPSIS)


def path_tag(path: str) -> str:
    """A path-derived tag value (route, endpoint, header) within the meta value limit."""
    return truncate_utf8(path, MAX_META_VALUE, ELLIPSIS)
