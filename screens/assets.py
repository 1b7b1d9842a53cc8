"""Where the TCSS lives: ./assets in a source checkout, the klarna_mtls_assets package when installed."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path


def assets_dir() -> Path:
    source = Path(__file__).resolve().parent.parent / "assets"
    if source.is_dir():
        return source
    # assets/ has no __init__.py: it installs as a namespace package, so read its location.
    spec = find_spec("klarna_mtls_assets")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("klarna-mtls assets are missing; reinstall the package")
    return Path(list(spec.submodule_search_locations)[0])


def stylesheet(name: str) -> Path:
    return assets_dir() / name
