"""The ``state_url`` setting: which URLs name a store, and how they are shown without secrets.

A state URL may carry a password (``redis://:secret@host:6379/0``, or
``?password=secret``). :class:`StateUrl` is a ``str`` whose text is the URL with
every password replaced by ``***``, so that whatever prints, logs, formats or
serialises the setting shows the redacted form; only the store's connection code
asks for :meth:`StateUrl.unredacted`.

>>> url = parse_state_url("rediss://app:s3cret@cache.example.com:6380/0?cluster=true")
>>> str(url)
'rediss://app:***@cache.example.com:6380/0?cluster=true'
>>> url.cluster, url.unredacted()
(True, 'rediss://app:s3cret@cache.example.com:6380/0')
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["SCHEMES", "StateUrl", "parse_state_url", "redact_url"]

SCHEMES = ("redis", "rediss", "unix")

ACCEPTED = (
    "a redis://, rediss:// or unix:// URL, e.g. redis://host:6379/0, "
    "rediss://user:password@host:6380/0, unix:///run/redis.sock, "
    "with ?cluster=true for Redis Cluster"
)

_MASK = "***"
_SECRET_PARAMS = frozenset({"password", "ssl_password"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class InvalidStateUrl(ValueError):
    """Raised by :func:`parse_state_url`; its message never holds the password."""


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and of any ``password=`` parameter masked.

    Never raises: text that is no URL at all comes back masked after its first ``:``
    following ``//`` up to the last ``@``, which is where a password would be.

    >>> redact_url("redis://:hunter2@localhost:6379?password=hunter2&db=1")
    'redis://:***@localhost:6379?password=***&db=1'
    """
    try:
        parts = urlsplit(url)
        secret_params = any(
            key.lower() in _SECRET_PARAMS for key, _ in parse_qsl(parts.query, True)
        )
        if "@" not in parts.netloc and not secret_params:
            return url  # nothing to hide: shown exactly as given
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}{colon}{_MASK if colon else ''}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, _MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
        return _unsplit(parts.scheme, netloc, parts.path, query, parts.fragment)
    except Exception:
        head, sep, rest = url.partition("//")
        if "@" in rest:
            return f"{head}{sep}{_MASK}@{rest.rpartition('@')[2]}"
        return url if "password" not in url.lower() else _MASK


class StateUrl(str):
    """A validated state URL; as a string, the redacted form.

    Attributes:
        cluster: whether the URL selects Redis Cluster (``?cluster=true``).
    """

    cluster: bool
    _url: str

    def __new__(cls, url: str, *, cluster: bool) -> StateUrl:
        self = super().__new__(cls, redact_url(url if not cluster else _with_cluster(url)))
        self._url = url
        self.cluster = cluster
        return self

    def unredacted(self) -> str:
        """The URL with its password, for the connection only (without ``cluster=``)."""
        return self._url

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self._url, self.cluster))


def _rebuild(url: str, cluster: bool) -> StateUrl:
    return StateUrl(url, cluster=cluster)


def _with_cluster(url: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&cluster=true" if parts.query else "cluster=true"
    return _unsplit(parts.scheme, parts.netloc, parts.path, query, parts.fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    # urlunsplit() writes "unix:/path" for an empty host; redis-py and people write "unix:///path".
    text = urlunsplit((scheme, netloc, path, query, fragment))
    if (
        not netloc
        and scheme
        and text.startswith(f"{scheme}:")
        and not text.startswith(f"{scheme}://")
    ):
        text = f"{scheme}://{text[len(scheme) + 1 :]}"
    return text


def parse_state_url(value: str) -> StateUrl:
    """Check ``value`` names a Redis store; raise :class:`InvalidStateUrl` (no secrets) if not."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port: Optional[int] = parts.port  # raises on a port that is no number or out of range
    except ValueError:
        raise InvalidStateUrl(ACCEPTED) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidStateUrl(ACCEPTED)
    if scheme == "unix":
        if not parts.path:
            raise InvalidStateUrl(ACCEPTED)
    elif not parts.hostname or port == 0:
        raise InvalidStateUrl(ACCEPTED)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    cluster = False
    kept = []
    for key, item in pairs:
        if key == "cluster":
            flag = _BOOLEANS.get(item.strip().lower())
            if flag is None:
                raise InvalidStateUrl(ACCEPTED)
            cluster = flag
        else:
            kept.append((key, item))
    if cluster and scheme == "unix":
        raise InvalidStateUrl(ACCEPTED + " (Redis Cluster is reached over TCP)")
    query = urlencode(kept)
    connect = _unsplit(parts.scheme, parts.netloc, parts.path, query, parts.fragment)
    return StateUrl(connect, cluster=cluster)
