"""What a provider module declares: its config model, how it authenticates, its streams.

A provider module ends with one declaration::

    PROVIDER = Provider(name="smartcq", config=SmartCQSource, auth=BearerAuth(field="api_key"),
                        streams=(SmartCQSends, SmartCQContacts))

and everything else derives from it: the registry (``connectors/providers/__init__.py``),
the config's discriminated union and its list of known providers (``mailpulse/config.py``),
the HTTP client's credentials (``runner.make_client``) and the secrets the logs mask.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Protocol

from mailpulse.connectors.base import Stream
from mailpulse.sources import SourceBase

__all__ = ["Auth", "BearerAuth", "QueryParamAuth", "Credentials", "Provider"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What every request of a source carries: headers and query parameters."""

    headers: dict[str, str]
    params: dict[str, str]


class Auth(Protocol):
    #: The config key (a ``SecretStr``) holding the credential.
    field: str

    def credentials(self, source: Any) -> Credentials: ...


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """``Authorization: Bearer <source.<field>>`` on every request."""

    field: str

    def credentials(self, source: Any) -> Credentials:
        return Credentials({"Authorization": f"Bearer {getattr(source, self.field).get_secret_value()}"}, {})


@dataclass(frozen=True, slots=True)
class QueryParamAuth:
    """``?<param>=<source.<field>>`` on every request (the credential then lives in URLs: logs mask it)."""

    param: str
    field: str

    def credentials(self, source: Any) -> Credentials:
        return Credentials({}, {self.param: getattr(source, self.field).get_secret_value()})


@dataclass(frozen=True, slots=True)
class Provider:
    #: The ``provider:`` value in the config, the label of every metric and the part of every event id.
    name: str
    #: The source's config model: ``SourceBase`` plus the provider's keys and ``provider: Literal[name]``.
    config: type[SourceBase]
    auth: Auth
    #: Every stream a source of this provider runs, in start order.
    streams: tuple[type[Stream], ...]

    def __post_init__(self) -> None:
        # A mismatch here would route configs to the wrong provider: fail at import, not at the first poll.
        tag = self.config.model_fields.get("provider")
        if tag is None or typing.get_args(tag.annotation) != (self.name,):
            raise TypeError(f"{self.config.__name__} must declare provider: Literal[{self.name!r}]")
        if self.auth.field not in self.config.model_fields:
            raise TypeError(f"{self.config.__name__} has no key {self.auth.field!r} for its auth")
        for stream in self.streams:
            if stream.provider != self.name:
                raise TypeError(f"{stream.__name__}.provider is {stream.provider!r}, not {self.name!r}")
