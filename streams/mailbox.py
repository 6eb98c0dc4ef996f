"""Which mailbox provider a recipient's address belongs to: one table, data not branches.

Deliverability teams watch bounces and complaints per mailbox provider (a bounce
spike at one of them is the first sign of a block), so the worker groups
recipients' domains into a small, fixed set of labels. The set is bounded by the
table plus what the config lists, which bounds every metric labelled with it.

A pattern is either a whole domain (``gmail.com``) or a label followed by ``.*``
(``outlook.*``: outlook.com, outlook.co.uk, outlook.de, ...). Subdomains match
their parent (``eu.gmail.com`` is gmail). Config entries come first, so a user
can move a domain to a group of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

__all__ = ["DEFAULT_MAILBOX_PROVIDERS", "OTHER", "MailboxClassifier"]

OTHER = "other"

#: The built-in groups: label -> domain patterns.
DEFAULT_MAILBOX_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "microsoft": ("outlook.*", "hotmail.*", "live.*", "msn.com"),
    "yahoo": ("yahoo.*", "ymail.com", "aol.com"),
    "apple": ("icloud.com", "me.com", "mac.com"),
}


class MailboxClassifier:
    """``classify("Bob@Hotmail.co.uk") == "microsoft"``; unknown domains and no address give ``other``."""

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None) -> None:
        self._exact: dict[str, str] = {}
        self._prefix: dict[str, str] = {}
        # Config first: setdefault keeps the first group that claims a pattern.
        for groups in (extra or {}, DEFAULT_MAILBOX_PROVIDERS):
            for label, patterns in groups.items():
                for pattern in patterns:
                    pattern = pattern.strip().lower()
                    if pattern.endswith(".*"):
                        self._prefix.setdefault(pattern[:-2], label)
                    else:
                        self._exact.setdefault(pattern, label)
        self.labels: tuple[str, ...] = (*dict.fromkeys([*(extra or {}), *DEFAULT_MAILBOX_PROVIDERS]), OTHER)
        self.classify_domain = lru_cache(maxsize=65536)(self._classify_domain)

    def classify(self, email: str | None) -> str:
        if not email:
            return OTHER
        _, at, domain = email.rpartition("@")
        return self.classify_domain(domain.lower()) if at and domain else OTHER

    def _classify_domain(self, domain: str) -> str:
        labels = domain.rstrip(".").split(".")
        # Longest suffix first: "mail.outlook.com" tries mail.outlook.com, outlook.com, com.
        for i in range(len(labels)):
            label = self._exact.get(".".join(labels[i:]))
            if label is not None:
                return label
        # "outlook.*": a registrable label followed by one or two public-suffix labels (outlook.com, outlook.co.uk).
        for i in range(len(labels) - 1):
            if len(labels) - i - 1 <= 2:
                label = self._prefix.get(labels[i])
                if label is not None:
                    return label
        return OTHER
