"""Database and tracking URLs: credentials masked wherever they are shown or stored, secrets from the
environment, and a PostgreSQL driver that is installed.

Prefer keeping passwords out of spec files altogether: give the URL without one and let the driver read
``PGPASSWORD`` or ``~/.pgpass``, or put the whole URL in ``SPARSESEARCH_STORAGE`` /
``SPARSESEARCH_TRACKING_URI``. Whatever the source, a password never reaches a log line, a tag, a param, an
artifact, a user attribute or an error message: every such place goes through :func:`mask_uri` or
:func:`mask_secrets`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: environment variables that override the spec's locations (a command-line flag overrides both)
STORAGE_ENV = "SPARSESEARCH_STORAGE"
TRACKING_ENV = "SPARSESEARCH_TRACKING_URI"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_QUERY_SECRET = re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api_key|apikey|key)=)[^&\s]*")
MASK = "***"


def mask_uri(uri: str | None) -> str | None:
    """``uri`` with any password (and token-like query values) replaced by ``***``, for display and storage.

    Database URLs are rendered by SQLAlchemy (``URL.render_as_string(hide_password=True)``), which knows how
    passwords with special characters are quoted; anything else (an MLflow server URL) by its parts.
    """
    if not uri or ("@" not in uri and "=" not in uri):
        return uri
    masked = uri
    try:
        from sqlalchemy.engine import make_url

        url = make_url(uri)
        if url.password is not None:
            masked = url.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads; fall back to the generic parts
        try:
            parts = urlsplit(uri)
            netloc = parts.netloc
            if "@" in netloc:
                userinfo, _, host = netloc.rpartition("@")
                user, sep, _password = userinfo.partition(":")
                netloc = f"{user}:{MASK}@{host}" if sep else f"{user}@{host}"
            masked = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        except ValueError:
            masked = uri
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", masked)
    return _QUERY_SECRET.sub(rf"\1{MASK}", masked)


def mask_text(text: str) -> str:
    """Every URL credential in free text (a log line, an error message) replaced by ``***``."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\1{MASK}", text) if "://" in text else text


def mask_secrets(data: Any) -> Any:
    """A copy of nested plain data (a spec as a dict) with every URL credential masked."""
    if isinstance(data, str):
        return mask_uri(data) if "://" in data else data
    if isinstance(data, Mapping):
        return {k: mask_secrets(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(mask_secrets(v) for v in data)
    return data


def from_environment(flag: str | None, env: str, configured: str | None) -> str | None:
    """A location from a command-line ``flag``, else the environment variable ``env``, else ``configured``."""
    return flag or os.environ.get(env) or configured


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
