"""One check for a key that takes one of a few named values, with the same one-line message everywhere."""

from __future__ import annotations

from collections.abc import Iterable


def check_choice(key: str, value: object, allowed: Iterable[str]) -> None:
    """Raise a ValueError naming `key`, the value and what is allowed, unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {', '.join(map(repr, allowed))}.")
