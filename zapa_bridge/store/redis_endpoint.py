"""Where Redis is: one server, or the Sentinels that know which server is the master.

`REDIS_URL` takes kombu's two forms, so the broker and our own clients read one setting:
`redis://`, `rediss://` or `unix://` for one server, and
`sentinel://[:password@]host:port[;sentinel://host:port...]/db` for Sentinel, where the
password (given once, on any part) is the master's and the db comes from whichever part
names one. The master's name and the Sentinels' own password are settings of their own
(`REDIS_SENTINEL_MASTER`, `REDIS_SENTINEL_PASSWORD`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

SENTINEL_SCHEME = "sentinel://"
DEFAULT_MASTER = "mymaster"


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """The parts of a `sentinel://` REDIS_URL."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """ValueError naming what is wrong."""
        sentinels: list[tuple[str, int]] = []
        db, username, password = None, None, None
        for part in url.split(";"):
            if not part.startswith(SENTINEL_SCHEME):
                raise ValueError("every ;-separated part must start with sentinel://")
            parts = urlsplit(part)
            try:
                port = parts.port
            except ValueError:
                raise ValueError(f"bad port in {parts.netloc.rsplit('@', 1)[-1]}") from None
            if not parts.hostname or port is None:
                raise ValueError("each Sentinel needs host:port")
            sentinels.append((parts.hostname, port))
            if parts.password:
                username = unquote(parts.username) if parts.username else None
                password = unquote(parts.password)
            path = parts.path.strip("/")
            if path:
                if not path.isdigit():
                    raise ValueError(f"the db must be a number, not {path!r}")
                db = int(path)
        return cls(tuple(sentinels), db or 0, username, password)

    def kombu_url(self) -> str:
        """Every part with the credentials and the db: kombu reads them from the first
        part, and moves to the next one when a Sentinel does not answer."""
        auth = ""
        if self.password is not None:
            user = quote(self.username, safe="") if self.username else ""
            auth = f"{user}:{quote(self.password, safe='')}@"
        return ";".join(f"{SENTINEL_SCHEME}{auth}{host}:{port}/{self.db}"
                        for host, port in self.sentinels)


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """REDIS_URL with the Sentinel settings that go with it; hashable, so a client can be
    kept per endpoint."""

    url: str = field(repr=False)
    master_name: str = DEFAULT_MASTER
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def sentinel(self) -> SentinelUrl | None:
        """The Sentinel form's parts, or None for one server."""
        return SentinelUrl.parse(self.url) if self.url.startswith(SENTINEL_SCHEME) else None

    @property
    def broker_url(self) -> str:
        """The URL as kombu should get it."""
        sentinel = self.sentinel
        return self.url if sentinel is None else sentinel.kombu_url()


def endpoint(target: str | RedisEndpoint) -> RedisEndpoint:
    """A plain URL is an endpoint with the default master name and no Sentinel password."""
    return target if isinstance(target, RedisEndpoint) else RedisEndpoint(target)
