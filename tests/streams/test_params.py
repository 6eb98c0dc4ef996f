"""Request parameters are checked against streams/openapi.yaml's own constraints."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import BadStatusLine, LineTooLong
from multidict import MultiDict

from mailpulse.streams import http_errors
from mailpulse.streams.params import check_request, operation_params
from mailpulse.streams.query import QueryError
from mailpulse.streams.schemas import load_openapi


def test_every_documented_path_has_its_parameters_read_from_the_document():
    params = operation_params()
    assert set(params) == set(load_openapi()["paths"])
    names = {p.name: p for p in params["/v1/campaigns"]}
    assert names["scope"].schema["enum"] == ["local"]
    assert names["source"].schema["minLength"] == 1


@pytest.mark.parametrize(
    "path, query, path_params, parameter",
    [
        ("/v1/campaigns", {"source": ""}, {}, "source"),
        ("/v1/campaigns", {"source": "a" * 65}, {}, "source"),
        ("/v1/campaigns", {"scope": "global"}, {}, "scope"),
        ("/v1/campaigns", {"scope": ""}, {}, "scope"),
        ("/v1/campaigns", {"limit": ""}, {}, "limit"),
        ("/v1/campaigns", {"limit": " 5"}, {}, "limit"),
        ("/v1/campaigns", {"limit": "1_0"}, {}, "limit"),
        ("/v1/campaigns", {"limit": "\u0665"}, {}, "limit"),  # a non-ASCII digit int() would accept
        ("/v1/campaigns", {"limit": "1001"}, {}, "limit"),
        ("/v1/campaigns", {"order": "name"}, {}, "order"),
        ("/v1/campaigns/{key}/hourly", {"hours": "49"}, {"key": "a:b"}, "hours"),
        ("/v1/campaigns/{key}", {}, {"key": "a:b\n"}, "key"),
        ("/v1/campaigns/{key}", {}, {"key": "a:" + "b" * 511}, "key"),
        ("/v1/contacts/{key}", {}, {"key": "nocolon"}, "key"),
    ],
)
def test_a_value_the_document_rules_out_is_a_query_error_naming_it(path, query, path_params, parameter):
    with pytest.raises(QueryError) as info:
        check_request(path, MultiDict(query), path_params)
    assert info.value.parameter == parameter


def test_a_repeated_parameter_is_an_error_and_valid_values_pass():
    with pytest.raises(QueryError) as info:
        check_request("/v1/campaigns", MultiDict([("limit", "1"), ("limit", "2")]), {})
    assert info.value.parameter == "limit"
    check_request(
        "/v1/campaigns",
        MultiDict({"source": "acme-smartcq", "limit": "1000", "order": "-last_event_at", "scope": "local"}),
        {},
    )
    check_request("/v1/campaigns/{key}/hourly", MultiDict({"hours": "48"}), {"key": "acme:c-1"})
    check_request("/v1/campaigns", MultiDict({"unknown": "x"}), {})  # undocumented parameters are ignored
    check_request("/healthz", MultiDict(), {})


def test_parser_errors_map_to_414_431_and_400():
    assert http_errors.classify(LineTooLong(b"/v1/campaigns?x=aaaa...", 8190))[0] == 414
    assert http_errors.classify(LineTooLong(b"GET /v1/campaigns?x=aaaa...", 8190))[0] == 414
    assert http_errors.classify(LineTooLong(b"X-Big: aaaa...", 8190))[0] == 431
    assert http_errors.classify(BadStatusLine(b"nonsense"))[0] == 400
