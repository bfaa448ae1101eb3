"""The project's configuration library: YAML (and JSON) loading with line numbers, and a
small field-checking toolkit.

Every configuration file of the project is read through this module and nothing else:

* topology files (:mod:`topologies.spec`), policy files (:mod:`dmano.policy`), D-MANO
  node files (:mod:`dmano.config`), VNF config files (:mod:`vnf.config`), scenario files
  (:mod:`scenarios.spec`) and traffic-generator flow plans (:mod:`scenarios.traffic.plan`,
  YAML or JSON).

What it guarantees to every one of them:

* a mistake raises :class:`ConfigError` (a ``ValueError``) naming the file, the line, the
  field (dotted, with list indices) and what was expected, always in one form::

      topologies/paper_fig3.yaml:14: links[2].cost: expected an integer in 1..65535, got -5

* YAML syntax errors and duplicate keys are ``ConfigError`` with their line; so are
  unreadable files;
* a :class:`Fields` reader used as a context manager rejects unknown keys, listing the
  keys allowed there; a key given as ``null`` counts as not given.

Mappings come back as :class:`YamlMap` (a ``dict`` that remembers the line of each
key), sequences as :class:`YamlList` (a ``list`` that remembers the line of each item).
:func:`load_json` gives JSON files the same line bookkeeping with JSON's own values.
"""

from __future__ import annotations

import builtins
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the file, line, field and fix."""

    def __init__(self, path: str | Path, line: int | None, field: str, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class YamlMap(dict):
    """A mapping that knows the line where it starts and where each key is."""

    line: int = 0
    key_lines: dict[str, int]


class YamlList(list):
    """A sequence that knows the line where it starts and where each item is."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> YamlMap:
    loader.flatten_mapping(node)
    result = YamlMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ConfigError(
                loader.name, key_node.start_mark.line + 1, str(key), "duplicate key"
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; syntax errors become a :class:`ConfigError` with the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read file: {exc.strerror}") from exc
    return loads_yaml(text, path)


def loads_yaml(text: str, path: str | Path = "<string>") -> Any:
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(path, line, "", f"invalid YAML: {exc.problem}") from exc
    finally:
        loader.dispose()


def load_json(path: str | Path) -> Any:
    """Parse a JSON file into :class:`YamlMap`/:class:`YamlList` with line numbers.

    The values are JSON's (``json.loads``); the lines come from reading the text once more
    as YAML (JSON is YAML's flow style). Where that reading disagrees or fails, the data
    is kept without lines. Syntax errors become a :class:`ConfigError` with the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read file: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, exc.lineno, "", f"invalid JSON: {exc.msg}") from None
    try:
        shadow = loads_yaml(text, path)
    except ConfigError:
        return data
    return _with_lines(data, shadow)


def _with_lines(data: Any, shadow: Any) -> Any:
    """``data`` with the line bookkeeping of ``shadow`` (the same document read as YAML)."""
    if isinstance(data, dict):
        out = YamlMap()
        out.line = getattr(shadow, "line", 0)
        lines = getattr(shadow, "key_lines", {})
        out.key_lines = {k: lines[k] for k in data if k in lines}
        sub = shadow if isinstance(shadow, dict) else {}
        for key, value in data.items():
            out[key] = _with_lines(value, sub.get(key))
        return out
    if isinstance(data, list):
        seq = YamlList()
        seq.line = getattr(shadow, "line", 0)
        lines = getattr(shadow, "item_lines", [])
        same = isinstance(shadow, list) and len(shadow) == len(data)
        seq.item_lines = list(lines) if same else []
        seq.extend(_with_lines(v, shadow[i] if same else None) for i, v in enumerate(data))
        return seq
    return data


_MISSING = object()


class Fields:
    """Reads the keys of one mapping, checking types; unknown keys are errors.

    Use it as a context manager so the unknown-key check runs at the end::

        with Fields(data, path, "links[0]") as f:
            a = f.str("a")
            cost = f.int("cost", lo=1, hi=65535)
    """

    def __init__(self, data: Any, path: str | Path, where: str, line: int | None = None):
        self.path = str(path)
        self.where = where
        self.line = getattr(data, "line", None) or line
        if not isinstance(data, dict):
            raise ConfigError(
                self.path, self.line, where or "(top level)",
                f"expected a mapping (key: value), got {_describe(data)}",
            )
        self.data = data
        self.used: set[str] = set()

    # -- helpers ---------------------------------------------------------------------
    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def line_of(self, key: str) -> int | None:
        lines = getattr(self.data, "key_lines", {})
        return lines.get(key, self.line)

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, self.line_of(key), self.field(key), message)

    def __enter__(self) -> Fields:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.done()

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                allowed = ", ".join(sorted(self._known)) if self._known else "none"
                raise self.error(str(key), f"unknown key (allowed here: {allowed})")

    _known: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        self._known = self._known | {key}
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise ConfigError(
                    self.path, self.line, self.field(key), "missing required field"
                )
            return default
        return self.data[key]

    def known(self, *keys: str) -> None:
        """Declare keys as allowed without reading them (for the unknown-key message)."""
        self._known = self._known | set(keys)

    # -- typed readers -----------------------------------------------------------------
    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    # str, int and list below are methods: in the signatures after them, the builtin
    # types are spelled builtins.str, builtins.int and builtins.list
    def str(self, key: builtins.str, default: Any = _MISSING,
            pattern: builtins.str | None = None, hint: builtins.str = "") -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {_describe(value)}")
        if pattern is not None:
            import re

            if not re.fullmatch(pattern, value):
                raise self.error(key, f"expected {hint or 'a value matching ' + pattern}, "
                                      f"got {value!r}")
        return value

    def int(self, key: builtins.str, default: Any = _MISSING, lo: builtins.int | None = None,
            hi: builtins.int | None = None) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        return check_int(value, lo, hi, lambda msg: self.error(key, msg))

    def number(self, key: builtins.str, default: Any = _MISSING, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_describe(value)}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            rel = ">" if lo_open else ">="
            raise self.error(key, f"expected a number {rel} {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.error(key, f"expected a number <= {hi}, got {value}")
        return float(value)

    def bool(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_describe(value)}")
        return value

    def choice(self, key: builtins.str, choices: Iterable[builtins.str],
               default: Any = _MISSING) -> Any:
        choices = list(choices)
        value = self._get(key, default)
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def ipv4(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            raise self.error(key, f"expected an IPv4 address like 10.254.1.1, "
                                  f"got {value!r}") from None

    def ipv4_net(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ValueError:
            raise self.error(key, f"expected an IPv4 prefix like 10.1.100.0/24, "
                                  f"got {value!r}") from None

    def port_range(self, key: builtins.str) -> tuple[builtins.int, builtins.int] | None:
        """Optional port (``5000``) or inclusive range (``"5000-5999"``)."""
        value = self._get(key, None)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            return (value, value)
        if isinstance(value, str) and "-" in value:
            lo, _, hi = value.partition("-")
            digits = lo.strip().isdigit() and hi.strip().isdigit()
            if digits and 0 <= int(lo) <= int(hi) <= 65535:
                return (int(lo), int(hi))
        raise self.error(key, f"expected a port 0..65535 or a range like 1000-2000, "
                              f"got {value!r}")

    def mapping(self, key: builtins.str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {_describe(value)}")
        return value

    def list(self, key: builtins.str, default: Any = _MISSING, min_len: builtins.int = 0) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_describe(value)}")
        if len(value) < min_len:
            raise self.error(key, f"expected at least {min_len} item(s), got {len(value)}")
        return value

    # (``builtins.`` in annotations: the methods str, int and list shadow the types here)
    def items(self, key: builtins.str, reader: Callable[[Fields], T], default: Any = _MISSING,
              min_len: builtins.int = 0) -> builtins.list[T]:
        """Read a list of mappings, each through ``reader(Fields)``."""
        return self.indexed_items(key, lambda sub, _i: reader(sub), default, min_len)

    def indexed_items(self, key: builtins.str, reader: Callable[[Fields, builtins.int], T],
                      default: Any = _MISSING, min_len: builtins.int = 0) -> builtins.list[T]:
        """Like :meth:`items`, but ``reader(Fields, index)`` also gets the item's index."""
        seq = self.list(key, default, min_len)
        if seq is default and default is not _MISSING:
            return seq
        out: builtins.list[T] = []
        for i, item in enumerate(seq):
            with Fields(item, self.path, f"{self.field(key)}[{i}]",
                        self.item_line(key, i)) as sub:
                out.append(reader(sub, i))
        return out

    def item_line(self, key: builtins.str, index: builtins.int) -> builtins.int | None:
        """Line of item ``index`` of the list under ``key`` (else the key's line)."""
        lines = getattr(self.data.get(key), "item_lines", [])
        return lines[index] if index < len(lines) else self.line_of(key)

    # -- cross-checks ------------------------------------------------------------------
    def ref(self, key: builtins.str, known: Iterable[builtins.str], what: builtins.str) -> Any:
        """A string that must be one of ``known`` names (of a ``what``, for the message)."""
        value = self.str(key)
        names = set(known)
        if value not in names:
            shown = ", ".join(sorted(names)) or "none defined"
            raise self.error(key, f"unknown {what} {value!r} (known: {shown})")
        return value

    def unique(self, key: builtins.str, values: Sequence[Any], what: builtins.str = "name",
               item_field: builtins.str = "") -> None:
        """``values`` (one per item of the list under ``key``) must not repeat; the error
        names the second item (``key[i]``, plus ``.item_field`` if given) and the first."""
        seen: dict[Any, int] = {}
        for i, v in enumerate(values):
            if v in seen:
                where = f"{self.field(key)}[{i}]" + (f".{item_field}" if item_field else "")
                shown = " - ".join(v) if isinstance(v, tuple) else v
                raise ConfigError(self.path, self.item_line(key, i), where,
                                  f"duplicate {what} {shown!s} (first at {key}[{seen[v]}])")
            seen[v] = i


def check_int(value: Any, lo: int | None, hi: int | None,
              make_error: Callable[[str], Exception]) -> int:
    rng = ""
    if lo is not None and hi is not None:
        rng = f" in {lo}..{hi}"
    elif lo is not None:
        rng = f" >= {lo}"
    elif hi is not None:
        rng = f" <= {hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise make_error(f"expected an integer{rng}, got {_describe(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise make_error(f"expected an integer{rng}, got {value}")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"string {value!r}"
    return f"{type(value).__name__} {value!r}"
