"""How dqn reads YAML (config files, variants files, ``--set`` values): the safe loader, with
numbers as YAML 1.2 writes them, a key set twice refused, and every problem one ConfigError line
naming the file and, where YAML says it, the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dqn.errors import ConfigError


class _RepeatedKey(Exception): ...  # args: (key, line number)


class BadTaggedValue(yaml.constructor.ConstructorError):
    """A value its explicit tag cannot read (``!!int 1e3``, ``!!bool maybe``): PyYAML's safe
    constructors raise a bare ValueError, KeyError or AttributeError for those, without a line."""


class _NumbersAsWritten(yaml.SafeLoader):
    """The safe loader with YAML 1.2's numbers instead of 1.1's: PyYAML reads ``010`` as octal
    (seed 8), ``1:30`` as base 60 (90) and ``0b11`` as binary, where a user wrote 10, a typo and
    a typo. Here a number is decimal (underscores allowed: ``100_000``), or 0x / 0o with the
    prefix, or a float (``1e-3`` too, a string to YAML 1.1); anything else stays a string, which
    a number's key refuses by name."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            value = node.value if isinstance(node, yaml.ScalarNode) else "a collection"
            problem = f"its tag !!{node.tag.rsplit(':', 1)[-1]} cannot read {value!r}"
            raise BadTaggedValue(None, None, problem, node.start_mark) from None


# Digits with single underscores between them (``100_000``), as Python writes them: ``9_`` and
# ``1__0`` are typos, not 9 and 10; in hex and octal too (``0x1_`` was read as 1, ``0x_`` as a
# tag !!int that could not read it), where Python also takes one after the prefix (``0x_ff``).
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_INT = re.compile(
    rf"^(?:[-+]?{_DIGITS}|0x_?[0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0o_?[0-7]+(?:_[0-7]+)*)$"
)
_FLOAT = re.compile(
    rf"^(?:[-+]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def is_decimal_number(text: str) -> bool:
    """Whether ``text`` is a decimal number as a config file writes one (``1e-3``, ``100_000``,
    ``0.5``): what a number's key takes as a string. Python's ``float`` takes more (``1e-3_0``
    as 1e-30, ``" 7 "``, ``"infinity"``), which in a config are typos."""
    return _FLOAT.match(text) is not None and text.lstrip("+-")[1:2] not in ("i", "I", "n", "N")


_NumbersAsWritten.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":int", ":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_NumbersAsWritten.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_NumbersAsWritten.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    base = {"0x": 16, "0o": 8}.get(text[:2].lower(), 10)
    return int(text[2:] if base != 10 else text, base)


_NumbersAsWritten.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _NumbersQuoted(yaml.SafeDumper):
    """The safe dumper, quoting every string that dqn's loader would read as a number: plain
    PyYAML writes ``1e5`` or ``0o17`` bare (strings to YAML 1.1), which _NumbersAsWritten reads
    back as 100000.0 and 15, so a run's own config.yaml would not give back its config."""


_NumbersQuoted.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_NumbersQuoted.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text that ``load_yaml`` reads back as ``data`` (keys in their order)."""
    return yaml.dump(data, Dumper=_NumbersQuoted, sort_keys=False)


def load_value(text: str) -> Any:
    """One ``--set`` value, read as the config file's values are."""
    return yaml.load(text, Loader=_NumbersAsWritten)  # noqa: S506 (a safe loader)


class _UniqueKeyLoader(_NumbersAsWritten):
    """The safe loader, refusing a mapping that sets a key twice: plain YAML keeps the last
    value without a word, so ``seed: 1`` further up a file would be silently ignored."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            # `<<: *base` merges a mapping whose keys this one overrides by design; a second
            # `<<` in one mapping would replace the first without a word.
            key = "<<" if key_node.tag == "tag:yaml.org,2002:merge" else None
            key = key or self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _RepeatedKey(key, key_node.start_mark.line + 1)
                seen.add(key)
            except TypeError:  # an unhashable key: the base loader says so
                pass
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path, what: str = "config file") -> Any:
    """A YAML file's data (safe loader), or a ConfigError naming ``what`` and ``path``: missing,
    not YAML (with the line), or a mapping that sets a key twice."""
    _check_is_file(path, what)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except OSError as exc:  # unreadable: permissions, an I/O error
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except RecursionError:  # brackets or mappings thousands deep: PyYAML parses by recursion
        raise ConfigError(f"{what} {path} is not valid YAML: it is nested too deeply") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None)  # "mapping values are not allowed here", ...
        if isinstance(exc, UnicodeDecodeError):
            problem = "it is not UTF-8 text"
        if (
            isinstance(exc, yaml.constructor.ConstructorError)
            and not isinstance(exc, BadTaggedValue)
            and "unhashable key" not in str(problem)  # a [list] or {map} as a key: not a tag
        ):  # !!python/... and other tags
            problem = f"{problem}; dqn reads YAML with the safe loader, which builds no objects"
        said = f": {problem}" if problem else ""
        raise ConfigError(f"{what} {path} is not valid YAML{line}{said}") from None
    except _RepeatedKey as exc:
        key, line = exc.args
        raise ConfigError(f"{what} {path} sets key {key!r} twice (again on line {line})") from None


def _check_is_file(path: Path, what: str) -> None:
    """ConfigError unless ``path`` is a regular file, saying what it is instead. Only regular
    files: a study reads its config more than once, and a pipe (``<(...)``, /dev/stdin) would
    give its text once and then nothing, which reads as an empty config: all defaults."""
    try:
        if path.is_file():
            return
        folder, there = path.is_dir(), path.exists()
    except OSError as exc:  # a name too long for the filesystem
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if folder:
        raise ConfigError(f"{what} {path} is a folder, not a YAML file")
    if there:
        raise ConfigError(
            f"{what} {path} is not a regular file (a pipe or a device): give a YAML file, which "
            "a study reads more than once"
        )
    raise ConfigError(f"{what} not found: {path}")
