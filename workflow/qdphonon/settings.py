"""Settings: one name, one default and one set of allowed values each, read from the JSON schema.

The schema (``workflow/qdphonon/data/config.schema.yaml``, package data) is the only owner of defaults and allowed
values; the command line takes its defaults and choices from here, so a flag and the config
key it mirrors cannot drift apart. Light: only PyYAML is imported.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "config.schema.yaml"
"""The campaign config's JSON schema: package data, so an installed (non-editable) package finds it."""


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The campaign's JSON schema (parsed once)."""
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def node(key: str) -> dict[str, Any]:
    """The schema node of a dotted setting; ``systems[].shell_layers`` reaches into array items."""
    out = schema()
    for part in key.split("."):
        items = part.endswith("[]")
        try:
            out = out["properties"][part[:-2] if items else part]
            if items:
                out = out["items"]
        except KeyError:
            raise KeyError(f"{key}: no such setting in {SCHEMA_PATH}") from None
    return out


def default(key: str) -> Any:
    """The schema default of a dotted setting, e.g. ``default("scf.on_failure")``; KeyError when it has none."""
    n = node(key)
    if "default" not in n:
        raise KeyError(f"{key}: the schema gives no default")
    return n["default"]


def choices(key: str) -> list[Any]:
    """The allowed values (``enum``) of a dotted setting."""
    return list(node(key)["enum"])


def describe(key: str) -> str:
    """The schema's description of a setting (for --help), with its default."""
    n = node(key)
    text = " ".join(str(n.get("description", "")).split()).replace("%", "%%")
    return f"{text} (config {key}; default {n['default']!r})" if "default" in n else f"{text} (config {key})"


def leaf_keys(prefix: str = "", tree: dict[str, Any] | None = None) -> list[str]:
    """Every dotted setting of the schema that is not itself an object of settings
    (``md.steps``, ``cp2k.overrides``, ...), in schema order; ``systems`` and ``mock`` count as one each."""
    tree = schema() if tree is None else tree
    out = []
    for name, sub in tree.get("properties", {}).items():
        key = f"{prefix}{name}"
        if sub.get("type") == "object" and "properties" in sub and key not in ("mock",):
            out.extend(leaf_keys(f"{key}.", sub))
        else:
            out.append(key)
    return out
