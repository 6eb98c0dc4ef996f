"""Connector errors, split by what the caller should do.

MailpulseError (mailpulse.errors)
└── ConnectorError                 carries provider/source/stream context, never a secret
    ├── FatalAPIError              4xx other than 408/429: the request is wrong, retrying will not help
    │   └── AuthError              401/403: stops this source (and only it); fix the key and restart
    ├── RetriableAPIError          connect errors, timeouts, 408, 429, 5xx: retried with backoff
    │   └── MalformedPage          invalid JSON or wrong shape: retried, then reported; the cursor stays
    ├── CursorExpired              the provider no longer accepts the stored cursor
    └── PaginationError            a paginator would repeat a token, or cannot page past a tie run
NormalisationError                 one record cannot be normalised: it goes to the DLQ
"""

from __future__ import annotations

from mailpulse.errors import MailpulseError

__all__ = [
    "ConnectorError",
    "FatalAPIError",
    "AuthError",
    "RetriableAPIError",
    "MalformedPage",
    "CursorExpired",
    "PaginationError",
    "NormalisationError",
]


class ConnectorError(MailpulseError):
    """An error of one source's stream. ``str()`` starts with ``source/stream``."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        source: str | None = None,
        stream: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.source = source
        self.stream = stream
        self.status = status
        super().__init__(message)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.source, self.stream) if p)
        who = f" ({self.provider})" if self.provider else ""
        return f"{where}{who}: {self.message}" if where else self.message

    def with_context(self, *, provider: str, source: str, stream: str) -> ConnectorError:
        self.provider = self.provider or provider
        self.source = self.source or source
        self.stream = self.stream or stream
        return self


class FatalAPIError(ConnectorError): ...


class AuthError(FatalAPIError):
    """The provider refused the credentials (401/403). The source stops; replace its key and restart."""


class RetriableAPIError(ConnectorError): ...


class MalformedPage(RetriableAPIError): ...


class CursorExpired(ConnectorError): ...


class PaginationError(ConnectorError):
    """Paging cannot go on without skipping or repeating records. The stream stops; the cursor stays."""


class NormalisationError(MailpulseError):
    """A record cannot be normalised. ``reason`` names the field; the raw record goes to the DLQ."""

    def __init__(self, field: str, problem: str) -> None:
        self.reason = f"{field}: {problem}"
        super().__init__(self.reason)
