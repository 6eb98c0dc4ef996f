"""HTTP retries, backoff, Retry-After and classification, through httpx.MockTransport."""

from __future__ import annotations

from datetime import UTC

import httpx
import pytest

from mailpulse.connectors.errors import AuthError, FatalAPIError, MalformedPage, RetriableAPIError
from mailpulse.connectors.http import ApiClient, RetryPolicy, retry_after_seconds

TOKEN = "s3cr3t-token-value"


def client(handler, *, retries=3, params=None, headers=None):
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    api = ApiClient(
        provider="smtpeter",
        source="acme",
        base_url="https://api.example",
        retry=RetryPolicy(max_retries=retries, base_delay=0.5, max_delay=8, max_retry_after=30),
        auth_params=params or {"access_token": TOKEN},
        auth_headers=headers or {},
        secrets=(TOKEN,),
        transport=httpx.MockTransport(handler),
        sleep=sleep,
    )
    return api, sleeps


def scripted(*responses):
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = responses[min(len(calls) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, calls


async def test_429_and_5xx_are_retried_honouring_retry_after_then_succeed():
    handler, calls = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503), httpx.Response(200, json=[{"ok": 1}])
    )
    api, sleeps = client(handler)
    assert await api.request("GET", "/v1/events/tags/a", stream="events") == [{"ok": 1}]
    assert len(calls) == 3
    assert sleeps[0] == 7  # Retry-After wins over backoff
    assert 0 <= sleeps[1] <= 1.0  # then exponential backoff with full jitter: uniform(0, 0.5 * 2**1)


async def test_connect_errors_and_timeouts_are_retried_and_give_up_after_the_limit():
    handler, calls = scripted(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
    )
    api, sleeps = client(handler, retries=3)
    with pytest.raises(RetriableAPIError, match="gave up after 4 attempts"):
        await api.request("GET", "/x", stream="events")
    assert len(calls) == 4 and len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 404, 405, 422])
async def test_other_4xx_are_fatal_and_not_retried(status):
    handler, calls = scripted(httpx.Response(status, json={"error": "bad"}))
    api, _ = client(handler)
    with pytest.raises(FatalAPIError) as info:
        await api.request("GET", "/x", stream="events")
    assert info.value.status == status and len(calls) == 1
    assert not isinstance(info.value, AuthError)


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_raise_auth_error_without_the_secret(status):
    handler, calls = scripted(httpx.Response(status, text=f"token {TOKEN} refused"))
    api, _ = client(handler)
    with pytest.raises(AuthError) as info:
        await api.request("GET", "/v1/events/tags/a", stream="events", params={"start": "2026-11-01"})
    text = str(info.value) + repr(info.value.args)
    assert TOKEN not in text and "access_token=***" in text
    assert len(calls) == 1
    assert TOKEN not in repr(api)


async def test_408_is_retried_but_a_malformed_page_is_retried_then_reported():
    handler, calls = scripted(
        httpx.Response(408), httpx.Response(200, content=b"{not json"), httpx.Response(200, content=b"[1,")
    )
    api, _ = client(handler, retries=2)
    with pytest.raises(MalformedPage, match="malformed page"):
        await api.request("GET", "/x", stream="events")
    assert len(calls) == 3


async def test_a_parse_hook_rejecting_the_shape_is_a_malformed_page():
    handler, _ = scripted(httpx.Response(200, json={"unexpected": True}))
    api, _ = client(handler, retries=0)

    def parse(body):
        raise MalformedPage("page lacks data")

    with pytest.raises(MalformedPage, match="page lacks data"):
        await api.request("GET", "/x", stream="events", parse=parse)


async def test_a_signed_url_keeps_its_own_query_and_gets_no_credentials():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    api, _ = client(handler, headers={"Authorization": f"Bearer {TOKEN}"}, params={})
    await api.request(
        "GET", "https://files.example/f.json?expires=1&signature=abc", stream="campaigns", authenticated=False
    )
    assert seen[0].url.params["signature"] == "abc" and "authorization" not in seen[0].headers


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import datetime

    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Mon, 23 Nov 2026 12:00:30 GMT", now) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
