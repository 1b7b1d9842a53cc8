"""`--all` for `status` and `check`: every profile on this machine, a few at a time, sharing
connections; each profile locked for the run, or read-only when another process writes it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from wizard.cli.session import open_unlocked_session
from wizard.core.errors import WizardError
from wizard.core.locking import try_profile_lock
from wizard.core.paths import Paths

# Profiles checked at once by --all: more costs client CPU (httpcore scans every pooled connection
# per request) and buys little; fewer would leave Klarna's latency unoverlapped.
FLEET_CONCURRENCY = 4


def add_concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=FLEET_CONCURRENCY,
        metavar="N",
        help=f"with --all: profiles checked at once (default {FLEET_CONCURRENCY})",
    )


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return number


def each_profile(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]], purpose: str
) -> list[tuple[str, Any]]:
    """Every profile's result of ``work``, each profile locked (or read-only when another process
    writes it) for the run."""
    paths = Paths.from_env()
    names = paths.profiles()
    with contextlib.ExitStack() as stack:
        held = {n: stack.enter_context(try_profile_lock(paths, n, purpose)) for n in names}
        results = asyncio.run(_gather_all(args, names, held, work))
    return list(zip(names, results, strict=True))


async def _gather_all(
    args: argparse.Namespace, names: list[str], held: dict[str, bool], work: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """``work(session)`` for every profile, at most --concurrency at once, all sharing one
    connection per trust and certificate; a WizardError becomes that profile's result."""
    from wizard.klarna.tls import ConnectionPool

    gate = asyncio.Semaphore(getattr(args, "concurrency", FLEET_CONCURRENCY))
    async with ConnectionPool() as pool:

        async def one(name: str) -> Any:
            async with gate:
                try:
                    session = open_unlocked_session(
                        argparse.Namespace(
                            **{**vars(args), "profile": name, "bound_keys_only": True, "read_only": not held[name]}
                        )
                    )
                    session.clients.use_connections(pool)
                    return await work(session)
                except WizardError as error:
                    return error

        return await asyncio.gather(*(one(n) for n in names))
