"""Nested dicts (TOML, JSON, the environment) -> frozen dataclasses: the one config loader.

The settings tree (``engine.settings``), the response-criteria profiles (``engine.criteria``) and
a model's ``config.json`` (``engine.segmentation.model_config``) are all built by
:func:`build_config`. The field types of the dataclass say what a value must be:

- a nested dataclass: a table, built the same way;
- ``bool``, ``int``, ``float``, ``str``, ``Path``; ``X | None``;
- an ``Enum``: by value, else by member name (``"ET"`` -> ``Label.ET``);
- ``tuple[X, ...]`` and fixed ``tuple[X, Y, Z]`` from a list; ``Mapping[K, V]`` / ``dict`` from a
  table (keys read leniently, as TOML and JSON keys are always text: ``"1"`` -> 1); ``Any`` as given.

Two ways to read a value. **Strict** (typed files: TOML, JSON): a ``bool`` must be true or false,
an ``int`` an integer, a ``float`` a number, a ``str`` a string. **Lenient** (text from the
environment, or files whose numbers may come as strings): ``"8642"`` is an int, ``"yes"`` / ``"off"``
a bool, ``"a, b"`` a ``tuple[str, ...]``, anything a ``str``.

Every refusal is a :class:`~engine.errors.ConfigError` that names the source and the key:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Port:
...     http_port: int = 8642
>>> build_config(Port, {"http_port": "80"}, source="settings", lenient=True)
Port(http_port=80)
>>> build_config(Port, {"http_port": "80"}, source="site.toml")
Traceback (most recent call last):
...
engine.errors.ConfigError: site.toml: http_port must be an integer, got '80'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from engine.errors import ConfigError

T = TypeVar("T")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def build_config(
    cls: type[T], data: Mapping[str, Any], *, source: str, lenient: bool = False,
    unknown_keys: str = "refuse", given: Mapping[str, Any] | None = None,
) -> T:
    """Build the dataclass ``cls`` from ``data``; ``source`` names the file in every error.

    A key ``data`` lacks takes the field's default (a field without one is an error); an unknown
    key is refused (``unknown_keys="refuse"``, the default) or left out (``"ignore"``). ``given``
    values go to the constructor as they are (not read from ``data``). A ``ValueError`` the
    constructor raises (its own checks) becomes ``ConfigError("<source> is invalid")`` with the
    message as detail.
    """
    if unknown_keys not in {"refuse", "ignore"}:
        msg = f"Argument 'unknown_keys' must be 'refuse' or 'ignore', got {unknown_keys!r}"
        raise ValueError(msg)
    return _Builder(source=source, lenient=lenient, refuse_unknown=unknown_keys == "refuse").build(
        cls, data, key="", given=given or {})


@dataclasses.dataclass(frozen=True, slots=True)
class _Builder:
    source: str
    lenient: bool
    refuse_unknown: bool

    def build(self, cls: type[T], data: Mapping[str, Any], *, key: str, given: Mapping[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        hints = get_type_hints(cls)
        unknown = sorted(set(data) - set(fields))
        if unknown and self.refuse_unknown:
            where = f"{self.source}: {key}" if key else self.source
            raise ConfigError(f"Unknown key(s) {', '.join(unknown)} in {where}",
                              action=f"Use one of: {', '.join(sorted(fields))}.")
        kwargs: dict[str, Any] = dict(given)
        for name, f in fields.items():
            if name in given:
                continue
            child = f"{key}.{name}" if key else name
            if name in data:
                kwargs[name] = self.coerce(hints[name], data[name], key=child)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{self.source}: key {child} is missing")
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ConfigError(f"{self.source} is invalid", detail=str(exc)) from exc

    def coerce(self, hint: Any, value: Any, *, key: str) -> Any:  # noqa: PLR0911 - one branch per kind
        origin, args = get_origin(hint), get_args(hint)
        if hint is Any:
            return value
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                self.refuse(key, "a table", value)
            return self.build(hint, value, key=key, given={})
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            if len(options) != 1:
                msg = f"Argument 'hint' must be one type or one type | None, got {hint}"
                raise TypeError(msg)
            return self.coerce(options[0], value, key=key)
        if isinstance(hint, type) and issubclass(hint, Enum):
            return self.enum(hint, value, key=key)
        if origin is tuple:
            return self.tuple_of(args, value, key=key)
        if origin in (dict, Mapping) or hint is dict:
            if not isinstance(value, Mapping):
                self.refuse(key, "a table", value)
            kinds = args or (Any, Any)
            keys = dataclasses.replace(self, lenient=True)  # TOML and JSON keys are always text
            return {keys.coerce(kinds[0], k, key=f"{key} key {k!r}"): self.coerce(kinds[1], v, key=f"{key}.{k}")
                    for k, v in value.items()}
        if hint in (bool, int, float, str, Path):
            return self.scalar(hint, value, key=key)
        msg = f"Argument 'hint' has a type the config loader does not read: {hint}"
        raise TypeError(msg)

    def scalar(self, hint: type, value: Any, *, key: str) -> Any:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if self.lenient and text in _TRUE | _FALSE:
                return text in _TRUE
            self.refuse(key, "true or false", value)
        if hint in (int, float):
            expected = "an integer" if hint is int else "a number"
            if isinstance(value, bool):
                self.refuse(key, expected, value)
            if isinstance(value, int) or (hint is float and isinstance(value, float)):
                return hint(value)
            if self.lenient:
                try:
                    return hint(value)
                except (TypeError, ValueError):
                    pass
            self.refuse(key, expected, value)
        if hint is Path:
            if not isinstance(value, str | Path):
                self.refuse(key, "a path", value)
            return Path(value).expanduser().resolve() if str(value) else Path(value)
        if isinstance(value, str):
            return value
        if self.lenient and not isinstance(value, Mapping | list | tuple):
            return str(value)
        return self.refuse(key, "a string", value)

    def enum(self, hint: type[Enum], value: Any, *, key: str) -> Enum:
        try:
            return hint(value)
        except ValueError:
            if isinstance(value, str) and value in hint.__members__:
                return hint[value]
        options = ", ".join(m.value if isinstance(m.value, str) else m.name for m in hint)
        return self.refuse(key, f"one of {options}", value)

    def tuple_of(self, args: tuple[Any, ...], value: Any, *, key: str) -> tuple[Any, ...]:
        if isinstance(value, str) and self.lenient and args[1:] == (Ellipsis,):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
            self.refuse(key, "a list", value)
        if args[1:] == (Ellipsis,):
            return tuple(self.coerce(args[0], v, key=f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            self.refuse(key, f"a list of {len(args)} values", value)
        return tuple(self.coerce(a, v, key=f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))

    def refuse(self, key: str, expected: str, value: Any) -> Any:
        raise ConfigError(f"{self.source}: {key} must be {expected}, got {value!r}")
