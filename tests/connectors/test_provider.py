"""The provider declarations: one per module, and everything that used to list providers derives from them."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

import pytest
from pydantic import SecretStr

from mailpulse.config import Config, SourceConfig
from mailpulse.connectors.base import Stream
from mailpulse.connectors.provider import BearerAuth, Provider, QueryParamAuth
from mailpulse.connectors.providers import PROVIDERS
from mailpulse.connectors.runner import make_client
from mailpulse.sources import SourceBase, secret_fields, source_secrets

PROVIDER_MODULES = sorted(
    p.stem for p in (Path(__file__).resolve().parents[2] / "connectors" / "providers").glob("[!_]*.py")
)


def _source(provider: str, **keys: object) -> object:
    return Config.model_validate(
        {"sources": [{"name": "acme", "provider": provider, "base_url": "http://h", **keys}]}
    ).sources[0]


def test_every_provider_module_is_discovered_under_its_own_name():
    assert sorted(PROVIDERS) == PROVIDER_MODULES
    assert all(PROVIDERS[name].name == name for name in PROVIDERS)


def test_the_config_union_is_made_of_the_declared_models():
    union, _ = typing.get_args(SourceConfig)
    assert set(typing.get_args(union)) == {p.config for p in PROVIDERS.values()}


def test_secrets_are_the_fields_declared_secret_not_a_list_of_names():
    assert {name: secret_fields(p.config) for name, p in PROVIDERS.items()} == {
        "smartcq": ("api_key",), "smartersends": ("api_key",), "smtpeter": ("access_token",), "supersend": ("api_key",),
    }  # fmt: skip

    class Other(SourceBase):
        provider: Literal["other"]
        token: SecretStr
        spare: SecretStr | None = None
        team: str = "t"

    source = Other(name="x", base_url="http://h", provider="other", token=SecretStr("s1"))
    assert secret_fields(Other) == ("token", "spare")
    assert source_secrets(source) == ("s1",)


async def test_bearer_auth_sends_a_header_and_query_auth_a_parameter():
    cq = make_client(_source("smartcq", api_key="k-1"))
    peter = make_client(_source("smtpeter", access_token="t-1", selectors=[{"template": 4}]))
    try:
        assert (cq.auth_headers, cq.auth_params, cq.secrets) == ({"Authorization": "Bearer k-1"}, {}, ("k-1",))
        assert (peter.auth_headers, peter.auth_params, peter.secrets) == ({}, {"access_token": "t-1"}, ("t-1",))
    finally:
        await cq.aclose()
        await peter.aclose()


class _Stream(Stream):
    provider = "other"
    name = "things"


class _OtherSource(SourceBase):
    provider: Literal["other"]
    api_key: SecretStr


def test_a_declaration_that_would_misroute_configs_fails_at_import():
    Provider(name="other", config=_OtherSource, auth=BearerAuth(field="api_key"), streams=(_Stream,))
    with pytest.raises(TypeError, match="provider: Literal"):
        Provider(name="another", config=_OtherSource, auth=BearerAuth(field="api_key"), streams=())
    with pytest.raises(TypeError, match="no key 'token'"):
        Provider(name="other", config=_OtherSource, auth=QueryParamAuth(param="t", field="token"), streams=())
    with pytest.raises(TypeError, match="_SmartCQStream|SmartCQSends"):
        Provider(
            name="other",
            config=_OtherSource,
            auth=BearerAuth(field="api_key"),
            streams=(PROVIDERS["smartcq"].streams[0],),
        )
