"""The stats topics' JSON Schemas are the OpenAPI answers' schemas, and the document is valid."""

from __future__ import annotations

import jsonschema
import pytest

from mailpulse.streams.schemas import STATS_SCHEMAS, component_schema, load_openapi
from mailpulse.topics.contracts import load_schema


@pytest.mark.parametrize("file", sorted(STATS_SCHEMAS))
def test_stats_topic_schema_files_equal_the_openapi_components(file: str) -> None:
    name, title, description = STATS_SCHEMAS[file]
    assert load_schema(file) == component_schema(name, title=title, description=description)


def test_every_openapi_component_is_a_valid_json_schema() -> None:
    doc = load_openapi()
    assert doc["openapi"].startswith("3.1")
    for name in doc["components"]["schemas"]:
        jsonschema.Draft202012Validator.check_schema(component_schema(name, doc=doc))
