"""`--all` for `status` and `check`: every profile on this machine, a few at a time, sharing
connections; each profile locked for the run, or read-only when another process writes it.

Unattended (cron), each profile reads its API key from its own store, and one profile never stops
the others: one that cannot be opened (a damaged journal, a store whose passphrase was not given, a
missing key, even an unexpected failure) becomes that profile's result, and a profile whose
installed pair is broken is reported as critical without calling Klarna (``failure_code``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from wizard.cli.session import open_set_up_session, unlock
from wizard.core.errors import WizardError
from wizard.core.findings import ExitCode
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
                    profile_args = argparse.Namespace(
                        **{**vars(args), "profile": name, "bound_keys_only": True, "read_only": not held[name]}
                    )
                    return await _one_profile(profile_args, pool, work)
                except WizardError as error:
                    return error
                except Exception as error:  # noqa: BLE001 - one profile's failure never hides the others
                    return _unexpected(name, error)

        return await asyncio.gather(*(one(n) for n in names))


async def _one_profile(args: argparse.Namespace, pool: Any, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open the profile, judge its installed pair on this machine, then load its key and work."""
    from wizard.services.pair_files import InstalledPairBroken
    from wizard.services.repair import installed_pair_problems

    session = open_set_up_session(args)
    problems = installed_pair_problems(session)
    if problems:
        return InstalledPairBroken(problems, profile=session.profile)
    unlock(args, session)
    session.clients.use_connections(pool)
    return await work(session)


def failure_code(error: WizardError) -> ExitCode:
    """The exit code a profile's failure counts for: CRITICAL when its installed pair is broken
    (that is the finding, and ``klarna-mtls repair`` restores it), ERROR when the profile could not
    be opened or checked."""
    from wizard.services.pair_files import InstalledPairBroken

    return ExitCode.CRITICAL if isinstance(error, InstalledPairBroken) else ExitCode.ERROR


def _unexpected(name: str, error: Exception) -> WizardError:
    """As the command's own handler: the traceback to the private log, one line for this profile."""
    logging.getLogger("klarna_mtls").error("unexpected failure for profile %s", name, exc_info=error)
    return WizardError(
        f"Unexpected failure ({type(error).__name__}).",
        title="Unexpected failure",
        hint=f"Details are in {Paths.from_env().log_path()}.",
    )
