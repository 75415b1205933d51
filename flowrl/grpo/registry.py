"""Names to constructors, the one lookup behind `variants.get_variant`, `rewards.load_reward` and the text trainer's
hooks (`flowrl.text.hook_types.resolve`): a key of a plain dict literal, or a user's ``package.module:attribute``.
Standard library only, so the core stays torch-only."""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Mapping


def lookup(
    name: str, table: Mapping[str, Callable], *, what: str, path_form: str = "package.module:factory"
) -> Callable:
    """`table[name]`, or the object at the dotted path ``package.module:attribute`` (`pkgutil.resolve_name`).

    Raises:
        ValueError: `name` is neither a key of `table` nor a dotted path; the message lists the valid names.
    """
    if name in table:
        return table[name]
    if ":" in name:
        return pkgutil.resolve_name(name)
    raise ValueError(f"Unknown {what} {name!r}. Valid: {sorted(table)}, or '{path_form}'.")
