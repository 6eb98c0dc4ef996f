"""Secrets and addresses never reach log lines."""

from __future__ import annotations

import logging

from mailpulse.connectors.redact import SecretsFilter, install_secrets_filter, redact_text, redact_url


def test_redact_url_masks_tokens_and_signatures_and_addresses():
    url = "https://www.smtpeter.com/v1/events/email/Jane.Doe@example.com?access_token=abc123&start=2026-11-01&signature=zz"
    out = redact_url(url)
    assert "abc123" not in out and "zz" not in out and "Jane.Doe" not in out
    assert "access_token=***" in out and "start=2026-11-01" in out


def test_redact_text_masks_given_secrets_and_bearer_tokens():
    out = redact_text("Authorization: Bearer xyz987 and key sim-key-1", ["sim-key-1"])
    assert "xyz987" not in out and "sim-key-1" not in out


def test_secrets_filter_scrubs_messages_args_and_tracebacks(caplog):
    logger = logging.getLogger("test.redact")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(SecretsFilter(["topsecret-value"]))
    logger.addHandler(handler)
    try:
        logger.warning("calling %s", "https://x/?k=topsecret-value")
        try:
            raise RuntimeError("failed with topsecret-value")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    assert all("topsecret-value" not in r.getMessage() for r in records)
    assert "topsecret-value" not in (records[1].exc_text or "") and "***" in records[1].exc_text


def test_install_puts_the_filter_on_root_handlers():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        filt = install_secrets_filter(["another-secret"])
        assert filt in handler.filters
    finally:
        root.removeHandler(handler)
        for h in root.handlers:
            if filt in h.filters:
                h.removeFilter(filt)
