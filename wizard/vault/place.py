"""``vault:MOUNT/PATH``: where something lives in Vault, written as ``bao kv get`` names it.

The first segment is the KV version 2 mount (``secret`` in ``vault:secret/klarna-mtls/checkout``),
the rest the secret's path inside it. The API's own ``data/`` and ``metadata/`` segments are not
written: the adapter adds them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wizard.core.errors import InputError
from wizard.core.rules import clean_text

PREFIX = "vault:"
# Letters, digits and a few punctuation marks: safe in a URL path and in a policy's path pattern.
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,127}$")
_API_SEGMENTS = ("data", "metadata")
_EXAMPLE = "vault:secret/klarna-mtls/checkout"


@dataclass(frozen=True)
class VaultPlace:
    mount: str
    path: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.mount}/{self.path}"

    @property
    def data_path(self) -> str:
        """The API path a policy names to read or write this secret's versions."""
        return f"{self.mount}/data/{self.path}"

    @property
    def metadata_path(self) -> str:
        """The API path a policy names to list under this place."""
        return f"{self.mount}/metadata/{self.path}"

    def child(self, name: str) -> VaultPlace:
        """The place ``name`` below this one (a report in a folder of reports)."""
        return parse_place(f"{self}/{name}")


def is_vault_place(text: str) -> bool:
    """True when ``text`` names a Vault place (it may still be malformed: parse it)."""
    return text.startswith(PREFIX)


def parse_place(text: str) -> VaultPlace:
    """``vault:MOUNT/PATH`` as a VaultPlace; InputError saying what is wrong otherwise."""
    if not is_vault_place(text):
        raise _malformed(text, f"it does not start with '{PREFIX}'")
    segments = text[len(PREFIX) :].split("/")
    if len(segments) < 2:
        raise _malformed(text, "it names a mount but no path inside it")
    bad = next((s for s in segments if not _SEGMENT_RE.match(s)), None)
    if bad is not None:
        why = (
            "it has an empty segment (// or a slash at an end)"
            if not bad
            else f"the segment '{clean_text(bad)}' is not allowed"
        )
        raise _malformed(text, why)
    if segments[1] in _API_SEGMENTS:
        mount, rest = segments[0], "/".join(segments[2:]) or "…"
        raise InputError(
            f"The Vault place '{clean_text(text)}' names the API's '{segments[1]}/' segment.",
            hint=f"Name it as `bao kv get` does, without it: vault:{mount}/{rest}.",
        )
    return VaultPlace(segments[0], "/".join(segments[1:]))


def _malformed(text: str, why: str) -> InputError:
    return InputError(
        f"'{clean_text(text)}' is not a Vault place: {why}.",
        hint=f"Write vault:MOUNT/PATH, e.g. {_EXAMPLE} (letters, digits and . _ - @ + = in each segment).",
    )
