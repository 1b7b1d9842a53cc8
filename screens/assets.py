"""Where the TCSS lives: ./assets in a source checkout, the klarna_mtls_assets package when installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def assets_dir() -> Path:
    source = Path(__file__).resolve().parent.parent / "assets"
    if source.is_dir():
        return source
    return Path(str(resources.files("klarna_mtls_assets")))


def stylesheet(name: str) -> Path:
    return assets_dir() / name
