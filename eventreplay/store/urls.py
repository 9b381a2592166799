"""EVENT_STORE_URL, parsed once: which backend, and where.

- `sqlite:///relative/path.db` (relative to the working directory) or `sqlite:////absolute/path.db`;
- any esdbclient URI (`esdb://host:2113?Tls=false`, `esdb+discover://...`), with our own optional
  `streamPrefix=...` (esdbclient refuses query fields it does not know, so it is taken out here):
  it isolates tests and deployments sharing one EventStoreDB server.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from eventreplay.store.base import InvalidStoreURL

ESDB_SCHEMES = ("esdb", "esdb+discover")


@dataclass(frozen=True)
class SQLiteLocation:
    path: Path


@dataclass(frozen=True)
class ESDBLocation:
    uri: str  # for esdbclient, without streamPrefix
    stream_prefix: str = ""


StoreLocation = SQLiteLocation | ESDBLocation


def parse_store_url(url: str) -> StoreLocation:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ESDB_SCHEMES:
        return _esdb(url)
    raise InvalidStoreURL(
        f"EVENT_STORE_URL {url!r} is not supported: use sqlite:///PATH or esdb://HOST:PORT?Tls=false"
    )


def _sqlite(url: str) -> SQLiteLocation:
    parts = urlsplit(url)
    if parts.netloc or parts.query or parts.fragment:
        raise InvalidStoreURL(f"{url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not path or path.endswith("/") or path == ":memory:":
        # Per-thread connections need a file they can all open; ":memory:" would give each thread a
        # database of its own.
        raise InvalidStoreURL(f"{url!r} names no database file")
    return SQLiteLocation(Path(path))


def _esdb(url: str) -> ESDBLocation:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in pairs if key.lower() == "streamprefix"]
    kept = [(key, value) for key, value in pairs if key.lower() != "streamprefix"]
    prefix = prefixes[-1] if prefixes else ""
    if prefix.startswith("$"):
        raise InvalidStoreURL(f"streamPrefix {prefix!r} must not start with '$' (system streams)")
    return ESDBLocation(urlunsplit(parts._replace(query=urlencode(kept))), prefix)
