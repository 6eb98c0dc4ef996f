"""The API's OpenAPI document, and its component schemas as standalone JSON Schemas.

The stats topics carry the same JSON as the API answers, so their value
schemas (``topics/schemas/campaign-stats.v1.json``, ``contact-stats.v1.json``)
are the OpenAPI ``Campaign`` and ``Contact`` components with references
inlined; ``tests/streams/test_schemas.py`` keeps the files and the document in
agreement.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

__all__ = ["STATS_SCHEMAS", "load_openapi", "component_schema"]

#: file under topics/schemas/ -> (OpenAPI component, title, description)
STATS_SCHEMAS = {
    "campaign-stats.v1.json": (
        "Campaign",
        "Campaign stats",
        "Value of mailpulse.campaign-stats.v1 (compacted, key {source}:{campaign_id}): the same JSON as "
        "GET /v1/campaigns/{key}; a null value (tombstone) when the campaign has no message left.",
    ),
    "contact-stats.v1.json": (
        "Contact",
        "Contact stats",
        "Value of mailpulse.contact-stats.v1 (compacted, key {source}:{contact_id} or {source}:{email}): the same "
        "JSON as GET /v1/contacts/{key}; a null value (tombstone) when the contact has no message left.",
    ),
}

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def load_openapi() -> dict[str, Any]:
    return yaml.safe_load(resources.files("mailpulse.streams").joinpath("openapi.yaml").read_text())


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def component_schema(
    name: str, *, title: str | None = None, description: str | None = None, doc: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A component schema as a standalone JSON Schema (draft 2020-12), references inlined."""
    doc = doc or load_openapi()
    components = doc["components"]["schemas"]
    out: dict[str, Any] = {"$schema": _DIALECT}
    if title:
        out["title"] = title
    if description:
        out["description"] = description
    out.update(_inline(copy.deepcopy(components[name]), components))
    return out
