"""Read a config file as YAML, keeping where each key was written.

PyYAML reports a syntax error with its position but as a multi-line text, and silently lets
the last of two equal keys win. Here a syntax error becomes ``file:line:column: problem``,
a key given twice in one mapping is refused as
``file:line: key 'n_bits' given twice (first at line 12)``, and every key's line is kept
(``Located.lines``) so that later checks can point at the line of the value they refuse.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trainmap.errors import ConfigError

KeyPath = tuple[str, ...]
# `[section]` then `key = value`: an INI file, which YAML reads as a list then fails on.
INI_SECTION = re.compile(r"\[[^\]\n]*\]\s*\n[^\n:]*=")


@dataclass
class Located:
    """A config file's content and the 1-based line of each key path (``("hmm", "restarts")``;
    list items by index, ``("settings", "parity", "seeds", "0")``)."""

    path: Path
    data: dict
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int:
        """The line of the longest prefix of ``key_path`` written in the file (1 if none):
        a missing key is reported at the mapping that lacks it."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                return line
        return 1


def _tab_at(source: str, line: int) -> bool:
    lines = source.splitlines()
    return 0 < line <= len(lines) and "\t" in lines[line - 1]


def _check_keys(node: yaml.Node, path: Path, where: KeyPath, lines: dict[KeyPath, int]) -> None:
    """Record each key's line; refuse a key given twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges are meant to be overridden
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"{path}:{line}: key {key!r} given twice (first at line {first[key]}); "
                    "keep one (otherwise the last one would silently win)"
                )
            first[key] = line
            lines[(*where, key)] = line
            _check_keys(value_node, path, (*where, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*where, str(index))] = item.start_mark.line + 1
            _check_keys(item, path, (*where, str(index)), lines)


def load_located(path: str | Path) -> Located:
    """The mapping in ``path`` with its key lines; every problem raises ConfigError
    starting with ``path:line``. An empty file is ``{}`` (validation refuses it)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    loader = yaml.SafeLoader(source)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _check_keys(node, path, (), lines)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = mark.line + 1, mark.column + 1
        hint = ""
        if _tab_at(source, line) or (mark.line and _tab_at(source, line - 1)):
            hint = "; YAML indents with spaces only: replace the tab characters"
        problem = error.problem or "not valid YAML"
        context = f" ({error.context}" if error.context else ""
        opened = error.context_mark
        if context and opened is not None and opened.line != mark.line:
            context += f" started at line {opened.line + 1}"
        context += ")" if context else ""
        if INI_SECTION.match(source.lstrip()):
            hint = "; this looks like an INI file: a config is YAML (key: value, config/README.md)"
        raise ConfigError(f"{path}:{line}:{column}: {problem}{context}{hint}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()
    if data is None:
        return Located(path, {}, lines)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:1: a config is a mapping of keys (settings:, hmm:, ...), "
            f"got a {type(data).__name__}"
        )
    return Located(path, data, lines)
