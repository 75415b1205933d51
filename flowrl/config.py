"""Configuration: nested dataclasses are the schema, YAML presets override their defaults, and command-line
``key.path=value`` overrides both (values parsed with ``yaml.safe_load``).

Every field is documented by the string literal written under it (cleanrl style); `field_docs` reads those, so the
documentation lives in one place and `flowrl <command> --show-config` prints it. Unknown keys and values of the
wrong type raise `ConfigError` naming the field, the bad value and the valid keys or the expected type.
`dump_yaml(load_yaml_text(...))` round-trips to an equal object.

The schemas themselves live next to their trainers (`flowrl/train/`); this module is the machinery.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which, why and what is valid."""


# --------------------------------------------------------------------------------------------------- field docs


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal written under each field of dataclass `cls`, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # source unavailable (e.g. defined in a REPL): no docs, nothing else breaks
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


# --------------------------------------------------------------------------------------------------- coercion


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp` and convert lossless cases (int -> float, list -> tuple)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"`{path}` = {value!r} does not match {_type_name(tp)}.")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"`{path}` = {value!r} is not valid; expected one of {list(args)}.")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"`{path}` must be a mapping of the fields of {tp.__name__}, got {value!r}.")
        return from_dict(tp, value, path=path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{path}` = {value!r} must be a list ({_type_name(tp)}).")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"`{path}` = {value!r} must have {len(args)} items ({_type_name(tp)}).")
            items = [_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"`{path}` = {value!r} must be a mapping ({_type_name(tp)}).")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, f"{path}.<key>"): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string: accept numeric literals
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{path}` = {value!r} must be a number (float).")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{path}` = {value!r} must be an integer.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{path}` = {value!r} must be true or false.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{path}` = {value!r} must be a string.")
        return value
    raise ConfigError(
        f"`{path}` has an unsupported annotation {tp!r} (flowrl.config supports scalars, Literal, "
        "Optional, list, tuple, dict and nested dataclasses)."
    )


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=False)


def from_dict(cls: type[T], data: dict[str, Any], *, path: str = "") -> T:
    """Build dataclass `cls` from a (partial) nested mapping; missing fields keep their defaults.

    Raises:
        ConfigError: on an unknown key (listing the valid ones) or a value of the wrong type.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"`{path or cls.__name__}` must be a mapping, got {data!r}.")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"`{path}`" if path else cls.__name__
        raise ConfigError(f"Unknown key {unknown[0]!r} in {where}. Valid keys: {', '.join(names)}.")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # __post_init__ validation
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path or cls.__name__}: {e}") from e


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), suitable for YAML and JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a": {"b": 3}, "c": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override {item!r} is not of the form key.path=value (e.g. train.iterations=20).")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"Override {item!r}: the value is not valid YAML ({e}).") from e
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {item!r} conflicts with an earlier override of {part!r}.")
        node[parts[-1]] = value
    return out


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file (an empty file is an empty mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping at the top level, got {kind}.")
    return data


def resolve(cls: type[T], *, preset: dict[str, Any] | None = None, overrides: list[str] = ()) -> T:
    """Defaults < preset mapping < ``key.path=value`` overrides, validated into `cls`."""
    data = merge(preset or {}, parse_overrides(list(overrides)))
    return from_dict(cls, data)


def dump_yaml(cfg: Any) -> str:
    """The config as YAML text, with each field's documentation as a comment above it."""
    lines: list[str] = []

    def emit(obj: Any, indent: int) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            pad = " " * indent
            if f.name in docs:
                lines.append(f"{pad}# {docs[f.name]}")
            if dataclasses.is_dataclass(value):
                lines.append(f"{pad}{f.name}:")
                emit(value, indent + 2)
            else:
                text = yaml.safe_dump({f.name: to_dict(value)}, default_flow_style=True, width=10_000).strip()
                lines.append(f"{pad}{text[1:-1] if text.startswith('{') else text}")

    emit(cfg, 0)
    return "\n".join(lines) + "\n"


def load_yaml_text(cls: type[T], text: str) -> T:
    """Inverse of `dump_yaml`."""
    return from_dict(cls, yaml.safe_load(text) or {})


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """Rows ``(key.path, type, doc)`` for every leaf field of `cls` (for ``--help`` style listings)."""
    rows = []
    hints = _hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, key + ".")
        else:
            rows.append((key, _type_name(tp), docs.get(f.name, "")))
    return rows


# --------------------------------------------------------------------------------------------------- shared sections


@dataclasses.dataclass
class OptimConfig:
    """The optimizer section of both trainers' configs (each trainer's subclass sets its own `lr`)."""

    lr: float = 3e-4
    """Learning rate."""
    weight_decay: float = 0.0
    """Weight decay (decoupled, as AdamW's)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas (the image trainer's optim.name=sgd uses betas[0] as its momentum)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""


__all__ = [
    "ConfigError",
    "OptimConfig",
    "describe",
    "dump_yaml",
    "field_docs",
    "from_dict",
    "load_yaml_file",
    "load_yaml_text",
    "merge",
    "parse_overrides",
    "resolve",
    "to_dict",
]
