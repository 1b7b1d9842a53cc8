"""The one type that holds a secret in memory: an API key, a key or store passphrase.

Its ``repr`` and ``str`` never show the value, so a crash report, a debugger, a log line or an
f-string that was not meant for it shows ``SecretValue('klarna_test_api_…ab12')`` or
``SecretValue('***')`` instead. Only ``reveal()`` gives the value, at the point of use."""

from __future__ import annotations

from typing import Generic, NoReturn, TypeVar

from wizard.core.rules import mask_key

V = TypeVar("V", str, bytes)


class SecretValue(Generic[V]):
    __slots__ = ("_value",)

    def __init__(self, value: V | SecretValue[V]) -> None:
        if isinstance(value, SecretValue):  # wrapping twice keeps one layer
            value = value.reveal()
        self._value: V = value

    def reveal(self) -> V:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        if isinstance(self._value, str) and self._value.startswith("klarna_"):
            return f"SecretValue({mask_key(self._value)!r})"
        return "SecretValue('***')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickled (multiprocessing, caches) with its value
        raise TypeError("A SecretValue cannot be pickled.")
