"""The provider registry: every module of this package that declares ``PROVIDER = Provider(...)``.

Modules are found, not listed: adding ``<name>.py`` with its declaration is what adds a provider
(``_``-prefixed modules hold shared helpers and are skipped). Sorted by module name, so the
order (of config messages, of the union) does not depend on the file system.
"""

from __future__ import annotations

import importlib
import pkgutil

from mailpulse.connectors.provider import Provider

__all__ = ["PROVIDERS", "provider"]


def _discover() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        declared = getattr(module, "PROVIDER", None)
        if not isinstance(declared, Provider):
            raise TypeError(f"{module.__name__} declares no PROVIDER = Provider(...)")
        if declared.name in found:
            raise TypeError(f"two modules declare the provider {declared.name!r}")
        found[declared.name] = declared
    return found


#: name -> declaration, for every provider module.
PROVIDERS: dict[str, Provider] = _discover()


def provider(name: str) -> Provider:
    return PROVIDERS[name]
