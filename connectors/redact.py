"""Keep secrets (and e-mail addresses) out of logs, errors and metrics.

SMTPeter's access token travels in the query string, and SmarterSends'
download URLs are signed: every URL that reaches a log line or an exception
goes through ``redact_url``. ``SecretsFilter`` scrubs configured secret
values from every log record as a last line of defence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "redact_url", "redact_text", "SecretsFilter", "install_secrets_filter"]

MASK = "***"
_SENSITIVE_PARAMS = frozenset(
    {
        "access_token",
        "token",
        "api_key",
        "apikey",
        "key",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "password",
        "secret",
    }
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")


def redact_url(url: object) -> str:
    """The URL with sensitive query values masked, user info dropped and addresses hidden."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact_text(text)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in _SENSITIVE_PARAMS else v) for k, v in pairs], safe="*:;,")
    netloc = parts.netloc.rpartition("@")[2]
    return _EMAIL.sub("<email>", urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values, bearer tokens and e-mail addresses masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _EMAIL.sub("<email>", text)


class SecretsFilter(logging.Filter):
    """Replaces configured secret values in every record it sees (message, args and traceback)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = self._scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def install_secrets_filter(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretsFilter:
    """Attach one ``SecretsFilter`` to every handler of ``logger`` (default: root), where propagated records pass."""
    target = logger or logging.getLogger()
    filt = SecretsFilter(secrets)
    if not target.handlers:
        logging.basicConfig()
    for handler in target.handlers:
        handler.addFilter(filt)
    return filt
