"""A DICOMweb server's address: its root URL, the credentials it carries, headers, a name.

Credentials are kept apart from the root as soon as a URL comes in, so that nothing built from
the root (names, messages, reprs, stored roots) can carry them.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from ..validation import DATA_SOURCE_MAX_LENGTH, strip_credentials

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)


redact_url = strip_credentials
"""``url`` without its ``user:password@`` part (kept name; see :mod:`repository.validation`)."""


def data_source_name(url: str) -> str:
    """The default series-list name for a server: ``host:port/path`` of its root URL.

    Credentials are left out; names over 64 characters are shortened with a hash suffix.
    """
    parts = urlsplit(strip_credentials(url))
    netloc = parts.netloc.lower()
    name = f"{netloc}{parts.path}".rstrip("/") or netloc
    if len(name) > DATA_SOURCE_MAX_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:55]}~{digest}"
    return name


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as ``(name, value)``; the error never repeats the value."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not _TOKEN.match(name) or not value.strip():
        shown = f" {name!r}" if colon and _TOKEN.match(name) else ""
        raise ValueError(f"header{shown} must be given as 'Name: value'")
    return name, value.strip()


def split_root(url: str, what: str) -> tuple[str, tuple[str, str] | None]:
    """A DICOMweb root without credentials, and the credentials it carried."""
    parts = urlsplit(url.strip())
    # shown without credentials, query or fragment: any of them may hold a secret
    bare = urlsplit(strip_credentials(url.strip()))
    shown = urlunsplit((bare.scheme, bare.netloc, bare.path, "", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the {what} URL {shown!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"the {what} URL {shown!r} must not have a query or fragment")
    credentials = None
    if parts.username is not None or parts.password is not None:
        credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit((bare.scheme, bare.netloc, bare.path.rstrip("/"), "", "")), credentials
