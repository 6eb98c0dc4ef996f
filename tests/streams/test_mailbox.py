"""Recipients' domains group into mailbox providers by the table, with config entries first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.streams.mailbox import DEFAULT_MAILBOX_PROVIDERS, OTHER, MailboxClassifier


@pytest.mark.parametrize(
    ("email", "group"),
    [
        ("a@gmail.com", "gmail"),
        ("A@GoogleMail.COM", "gmail"),
        ("a@outlook.com", "microsoft"),
        ("a@hotmail.co.uk", "microsoft"),
        ("a@live.it", "microsoft"),
        ("a@msn.com", "microsoft"),
        ("a@yahoo.fr", "yahoo"),
        ("a@yahoo.co.jp", "yahoo"),
        ("a@ymail.com", "yahoo"),
        ("a@aol.com", "yahoo"),
        ("a@icloud.com", "apple"),
        ("a@me.com", "apple"),
        ("a@mac.com", "apple"),
        ("a@example.com", OTHER),
        ("a@notgmail.com", OTHER),
        ("a@gmail.com.evil.example", OTHER),
        ("a@outlook.example.attacker.net", OTHER),
        ("a@msn.co.uk", OTHER),
        (None, OTHER),
        ("", OTHER),
        ("no-at-sign", OTHER),
        ("trailing@", OTHER),
    ],
)
def test_builtin_table_groups_domains(email, group):
    assert MailboxClassifier().classify(email) == group


def test_subdomains_belong_to_their_parent_domain():
    assert MailboxClassifier().classify("x@eu.gmail.com") == "gmail"
    assert MailboxClassifier().classify("x@mail.outlook.com") == "microsoft"


def test_config_groups_add_domains_and_win_over_the_table():
    c = MailboxClassifier(
        {"corporate": ["acme.com", "acme-mail.*"], "gmail": ["gsuite-customer.com"], "ms365": ["live.*"]}
    )
    assert c.classify("x@acme.com") == "corporate"
    assert c.classify("x@acme-mail.de") == "corporate"
    assert c.classify("x@gsuite-customer.com") == "gmail"
    assert c.classify("x@live.com") == "ms365"
    assert c.classify("x@hotmail.com") == "microsoft"
    assert c.labels == ("corporate", "gmail", "ms365", "microsoft", "yahoo", "apple", OTHER)


@given(st.emails())
def test_every_address_gets_a_label_from_the_bounded_set(email):
    c = MailboxClassifier()
    assert c.classify(email) in c.labels
    assert set(c.labels) == {*DEFAULT_MAILBOX_PROVIDERS, OTHER}
