"""Type the values given on Snakemake's command line (``--config``) as the config expects.

Snakemake parses a top-level ``--config key=2`` as a number, but the inside of
``--config 'hmm={restarts: 2}'`` with YAML's base loader, which keeps every scalar a
string: ``'2'``, and validation refused it. Here a string given on the command line
becomes the number or boolean that the schema (or, for a setting's task hyperparameter,
the task's declared type) expects at that place, when it reads as one; anything else is
left for validation to refuse with its usual message. Values from config files are not
touched: YAML typed them already, and a quoted ``"2"`` there is meant as a string.
"""

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from trainmap.tasks.hyperparameters import HYPERPARAMETERS

TRUE = {"true", "yes", "on"}
FALSE = {"false", "no", "off"}
SCHEMA_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _resolve(node: dict, schema: dict) -> dict:
    """Follow ``$ref`` and merge ``allOf`` parts (enough for this project's schema)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**schema["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    for part in node.get("allOf", []):
        part = _resolve(part, schema)
        node = {**part, **node, "properties": {**part.get("properties", {}),
                                               **node.get("properties", {})}}  # fmt: skip
    return node


def _child(node: dict, key: str, schema: dict) -> dict | None:
    if key in node.get("properties", {}):
        return _resolve(node["properties"][key], schema)
    if isinstance(node.get("additionalProperties"), dict):
        return _resolve(node["additionalProperties"], schema)
    return None


def _types(node: dict) -> set[str]:
    """The JSON types a schema node accepts (``type``, ``oneOf``/``anyOf``, ``enum``)."""
    kinds = node.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for option in [*node.get("oneOf", []), *node.get("anyOf", [])]:
        found |= _types(option)
    for value in node.get("enum", []):
        found.add(SCHEMA_TYPES.get(type(value), "other"))
    return found


def _parse(text: str, kinds: set[str]) -> Any:
    """``text`` as the first of the expected kinds it reads as; unchanged otherwise."""
    if "string" in kinds:
        return text
    word = text.strip().lower()
    if "boolean" in kinds and word in TRUE | FALSE:
        return word in TRUE
    if "integer" in kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in kinds:
        try:
            number = float(text)
        except ValueError:
            return text
        return int(text) if text.strip().lstrip("+-").isdigit() else number
    return text


def _task_field(config: dict, path: tuple[str, ...]) -> dict | None:
    """A pseudo schema node for a task hyperparameter ``settings.<name>.<key>``."""
    if len(path) != 3 or path[0] != "settings":
        return None
    entry = config.get("settings", {}).get(path[1], {})
    params = HYPERPARAMETERS.get(entry.get("task")) if isinstance(entry, dict) else None
    if params is None:
        return None
    hints = typing.get_type_hints(params)
    names = {f.name for f in dataclasses.fields(params)}
    hint = hints.get(path[2]) if path[2] in names else None
    if hint in SCHEMA_TYPES:
        kinds = {SCHEMA_TYPES[hint]} | ({"integer"} if hint is float else set())
        return {"type": sorted(kinds)}
    if typing.get_origin(hint) is tuple:
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return {"type": "array", "items": {"type": SCHEMA_TYPES.get(items[0], "other")}}
    return None


def _typed(value: Any, node: dict | None, schema: dict, config: dict, path: tuple) -> Any:
    if node is None and len(path) == 3:
        node = _task_field(config, path)
    if node is None:
        return value
    if isinstance(value, str):
        return _parse(value, _types(node))
    if isinstance(value, Mapping):
        return {
            key: _typed(item, _child(node, str(key), schema), schema, config, (*path, str(key)))
            for key, item in value.items()
        }
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        items = _resolve(node["items"], schema)
        return [_typed(item, items, schema, config, (*path, "[]")) for item in value]
    if isinstance(value, list) and "oneOf" in node:  # seeds: an int or a list of ints
        lists = [o for o in node["oneOf"] if o.get("type") == "array" and "items" in o]
        if lists:
            items = _resolve(lists[0]["items"], schema)
            return [_typed(item, items, schema, config, (*path, "[]")) for item in value]
    return value


def apply_overrides(config: dict, overrides: Mapping, schema: dict) -> dict:
    """``config`` (already merged with ``overrides`` by Snakemake) with each value that
    ``overrides`` gave typed as the schema expects; a new dict, ``config`` is unchanged."""
    typed = _typed(dict(overrides), _resolve(schema, schema), schema, config, ())
    result = copy.deepcopy(config)
    _place(result, typed, overrides)
    return result


def _place(target: dict, typed: Mapping, given: Mapping) -> None:
    """Write the typed values into ``target`` at the places ``given`` set."""
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _place(target[key], typed[key], value)
        else:
            target[key] = typed[key]
