"""The root of mailpulse's errors, split by what the caller should do.

    MailpulseError
    ├── ConfigError            fatal at start: fix the config file and restart
    └── (connectors.errors)    FatalAPIError, RetriableAPIError, CursorExpired, NormalisationError
    └── (mailpulse.devkafka)   LocalKafkaError: the local broker could not be assembled or started
    └── (mailpulse.streams.faust_internals) IncompatibleInternals: install the supported Faust/aiokafka

Messages name what is wrong and where; they never carry a secret.
"""

from __future__ import annotations

__all__ = ["MailpulseError", "ConfigError"]


class MailpulseError(Exception):
    """Base of every error mailpulse raises on purpose."""


class ConfigError(MailpulseError):
    """The config file is unusable. The message is one line naming the file and the key."""
