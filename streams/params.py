"""Request parameters checked against ``streams/openapi.yaml`` itself, so code and document cannot drift.

Each documented operation's parameters (path and query, ``$ref`` resolved)
are read once from the document; ``check_request`` applies their schemas'
constraints (type, minimum/maximum, minLength/maxLength, pattern, enum) to a
request and raises ``QueryError`` naming the first bad parameter (a JSON 400).
Parameters the document does not list are ignored, as OpenAPI allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mailpulse.streams.query import QueryError
from mailpulse.streams.schemas import load_openapi

__all__ = ["Param", "operation_params", "check_request", "check_value"]

_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # "path" or "query"
    required: bool
    schema: Mapping[str, Any]


def _resolve(doc: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    out: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        out = out[part]
    return _resolve(doc, out)


def _ecma(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262: '$' matches only at the very end (Python's also before a final '\n').
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


@lru_cache(maxsize=1)
def operation_params() -> dict[str, tuple[Param, ...]]:
    """Documented path template -> the GET operation's parameters."""
    doc = load_openapi()
    out: dict[str, tuple[Param, ...]] = {}
    for path, item in doc["paths"].items():
        op = item.get("get") or {}
        params = []
        for raw in list(item.get("parameters", [])) + list(op.get("parameters", [])):
            p = _resolve(doc, raw)
            schema = dict(_resolve(doc, p.get("schema", {})))
            if "pattern" in schema:
                schema["_re"] = _ecma(schema["pattern"])
            params.append(Param(p["name"], p["in"], bool(p.get("required", p["in"] == "path")), schema))
        out[path] = tuple(params)
    return out


def _describe_range(schema: Mapping[str, Any]) -> str:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None and hi is not None:
        return f"must be an integer between {lo} and {hi}"
    if lo is not None:
        return f"must be an integer of at least {lo}"
    if hi is not None:
        return f"must be an integer of at most {hi}"
    return "must be an integer"


def check_value(param: Param, raw: str) -> None:
    """Raise ``QueryError`` unless ``raw`` satisfies the parameter's schema (the value is never echoed)."""
    schema = param.schema
    value: Any = raw
    if schema.get("type") == "integer":
        if not _INTEGER.fullmatch(raw):
            raise QueryError(param.name, _describe_range(schema))
        value = int(raw)
        if ("minimum" in schema and value < schema["minimum"]) or ("maximum" in schema and value > schema["maximum"]):
            raise QueryError(param.name, _describe_range(schema))
    elif schema.get("type", "string") == "string":
        if "minLength" in schema and len(raw) < schema["minLength"]:
            raise QueryError(param.name, f"must be at least {schema['minLength']} character(s) long")
        if "maxLength" in schema and len(raw) > schema["maxLength"]:
            raise QueryError(param.name, f"must be at most {schema['maxLength']} characters long")
    if "enum" in schema and value not in schema["enum"]:
        raise QueryError(param.name, f"must be one of {', '.join(map(str, schema['enum']))}")
    if "_re" in schema and not schema["_re"].search(raw):
        raise QueryError(param.name, f"must match {schema['pattern']}")


def check_request(path_template: str, query: Any, path_params: Mapping[str, str]) -> None:
    """Check a request's documented parameters; ``query`` is a multidict (``getall``) or a plain mapping."""
    params = operation_params().get(path_template)
    if params is None:
        return
    for param in params:
        if param.location == "path":
            values = [path_params[param.name]] if param.name in path_params else []
        elif param.location == "query":
            values = (
                list(query.getall(param.name, []))
                if hasattr(query, "getall")
                else ([query[param.name]] if param.name in query else [])
            )
        else:
            continue
        if not values:
            if param.required:
                raise QueryError(param.name, "is required")
            continue
        if param.schema.get("type") == "array":  # repeatable (style form, explode): each value is an item
            item = Param(param.name, param.location, param.required, dict(param.schema.get("items", {})))
            for value in values:
                check_value(item, value)
            continue
        if len(values) > 1:
            raise QueryError(param.name, "given more than once")
        check_value(param, values[0])
