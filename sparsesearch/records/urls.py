"""Database and tracking URLs: credentials masked for display, and a PostgreSQL driver that is installed."""

from __future__ import annotations

import importlib.util
import re
from urllib.parse import urlsplit, urlunsplit


def mask_uri(uri: str | None) -> str | None:
    """``uri`` with any password (and token-like query values) replaced by ``***``, for logs and tags."""
    if not uri or ("@" not in uri and "=" not in uri):
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{user}@{host}"
    query = re.sub(r"(?i)((?:password|passwd|pwd|token|secret|key)=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def with_driver(url: str) -> str:
    """``postgresql://`` spelled with the driver that is installed.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; sparsesearch's extra installs psycopg2, so
    when only psycopg2 is importable the URL names it (``postgresql+psycopg2://``). Other URLs are unchanged.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
                return "postgresql+psycopg2://" + url[len(prefix):]
            return "postgresql://" + url[len(prefix):]
    return url
