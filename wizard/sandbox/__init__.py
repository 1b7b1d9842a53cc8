"""The embedded sandbox: a local server that behaves like Klarna's credentials API over real mTLS.

``start_sandbox`` runs it in a background thread (tests, ``klarna-mtls --sandbox``);
``klarna-mtls sandbox serve`` runs it as a process (curl, the benchmarks).

Choices where Klarna publishes nothing ([ours] in klarna-api.md):
- CN: strict by default (the account suffix, as the Distribution/Direct pages say); with
  ``allow_custom_cn`` any CN of 1 to 64 characters (the newer page).
- Errors: 400 INPUT_ERROR/VALIDATION_ERROR with ``validation_errors`` naming the parameter;
  409 RESOURCE_ERROR/LIMIT_EXCEEDED for an 11th active certificate; 404 RESOURCE_ERROR/NOT_FOUND;
  401 ACCESS_ERROR/UNAUTHORIZED or API_KEY_DISABLED; 403 ACCESS_ERROR/MTLS_REQUIRED once enforced
  (401 with ``refusal_status``);
  413 INPUT_ERROR/PAYLOAD_TOO_LARGE over 1 MB; injected 5xx are TECHNICAL_ERROR/INTERNAL_ERROR and
  429 ACCESS_ERROR/RATE_LIMITED with Retry-After.
- Answers (in the default "ours" mode; ``answers="docs-only"`` sends only what Klarna documents,
  see answers.py): create 201 (the entry plus ``secret``); PUT enforcement 200 with the state (204 when
  ``put_enforcement_answers_204``); DELETE enforcement and DELETE api-key 204.
- Other shapes and timings Klarna's docs allow are switches, all off by default (options.py lists
  every setting): a propagation delay for new certificates on an enforced account, no verification
  header once enforced, enforcement refusals answered 401, the mode in a field named ``status``
  (or in both fields, agreeing or not), empty listings as ``null``, and a CN Klarna assigns.
- Revoking a revoked certificate changes nothing; a future ``revoked_from`` applies on the clock.
- Idempotency keys are remembered per account, operation and path for 24 h (sandbox clock); a
  refusal is not remembered, so a corrected retry with the same key can pass.
- The sandbox clock (real time + an offset that ``advance_clock`` or ``POST /__sandbox__/clock``
  moves forward, kept in the state as ``clock_offset``) decides ACTIVE/EXPIRED/REVOKED, enforcement,
  idempotency windows and propagation. A certificate's X.509 window starts in real time (so TLS,
  which checks real time, keeps working after the clock is advanced) and ends at its ``expires_at``
  on the sandbox clock, so its notAfter states the life Klarna gives it. The ``Date`` header reads real time unless ``date_follows_clock`` is set (then
  an advanced clock looks to the client like its own clock running behind Klarna's).
- ``certificate_lifetime_seconds`` (or the ``certificate_lifetime`` property) shortens the life of
  certificates issued from then on, so expiry can be reached for real or with the clock.
- The initial API key is stored (0600) so it survives restarts; other keys are kept hashed.
- One sandbox serves a folder at a time (a lock held while it runs): two would each keep their own
  copy of the state and overwrite each other's saves.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from wizard.core.locking import LOCK_NAME, ProfileBusy, file_lock
from wizard.sandbox.options import ANSWER_MODES, AnswerMode, SandboxOptions
from wizard.sandbox.server import FAULT_KINDS, OPERATIONS, Fault, SandboxServer, serve_in_thread
from wizard.sandbox.state import SandboxState


class Sandbox:
    """A running sandbox. Also a context manager that stops it on exit."""

    def __init__(
        self,
        state: SandboxState,
        server: SandboxServer,
        thread: threading.Thread,
        admin_token: str,
        release_folder: Callable[[], None] = lambda: None,
    ) -> None:
        self._state = state
        self._server = server
        self._thread = thread
        self.admin_token = admin_token
        self._release_folder = release_folder
        self._stopped = False

    @property
    def base_url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"https://{'[' + host + ']' if ':' in host else host}:{port}"

    @property
    def state_dir(self) -> Path:
        return self._state.folder

    @property
    def ca_bundle(self) -> Path:
        return self._state.ca_bundle

    @property
    def account_id(self) -> str:
        return str(self._state.data["initial"]["account_id"])

    @property
    def api_key(self) -> str:
        return str(self._state.data["initial"]["api_key"])

    def __repr__(self) -> str:  # the throwaway key still stays out of reprs
        return f"Sandbox(base_url={self.base_url!r}, account_id={self.account_id!r})"

    def mint_account(self, environment: str = "test") -> tuple[str, str]:
        return self._state.mint_account(environment)

    def inject(self, fault: Fault) -> None:
        self._server.add_fault(fault)

    def clear_faults(self) -> None:
        self._server.clear_faults()

    def advance_clock(self, seconds: float) -> None:
        self._state.advance_clock(seconds)

    def now(self) -> datetime:
        return self._state.now()

    @property
    def options(self) -> SandboxOptions:
        """The settings in force (options.py); change them with ``configure``."""
        return self._state.options

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings by their options.py names, e.g. ``configure(propagation_delay=120)``;
        a bad one raises ValueError and changes nothing. Answers every setting now in force."""
        with self._state.lock:
            self._state.options.update(settings)
            return self._state.options.as_dict()

    @property
    def certificate_lifetime(self) -> timedelta:
        return self._state.options.certificate_lifetime

    @certificate_lifetime.setter
    def certificate_lifetime(self, value: timedelta) -> None:
        self.configure(certificate_lifetime_seconds=value.total_seconds())

    @property
    def enforcement_delay(self) -> float:
        return self._state.options.enforcement_delay

    @enforcement_delay.setter
    def enforcement_delay(self, seconds: float) -> None:
        self.configure(enforcement_delay=seconds)

    @property
    def put_enforcement_answers_204(self) -> bool:
        return self._state.options.put_enforcement_answers_204

    @put_enforcement_answers_204.setter
    def put_enforcement_answers_204(self, value: bool) -> None:
        self.configure(put_enforcement_answers_204=value)

    @property
    def answers(self) -> AnswerMode:
        """ "ours" (every field the sandbox knows) or "docs-only" (only what Klarna documents)."""
        return self._state.options.answers

    @answers.setter
    def answers(self, mode: str) -> None:
        self.configure(answers=mode)

    @property
    def allow_custom_cn(self) -> bool:
        return self._state.options.allow_custom_cn

    @allow_custom_cn.setter
    def allow_custom_cn(self, value: bool) -> None:
        self.configure(allow_custom_cn=value)

    def stop(self) -> None:
        """Stop accepting, end open keep-alive connections, release the port. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._release_folder()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    enforcement_delay: float = 300.0,
    answers: str = "ours",
    **settings: Any,
) -> Sandbox:
    """Serve a sandbox on ``host:port`` (0: a free port) in a background thread. ``settings`` are
    options.py's names, e.g. ``start_sandbox(folder, propagation_delay=120, refusal_status=401)``;
    a bad one raises ValueError before anything listens."""
    options = SandboxOptions()
    options.update({"enforcement_delay": enforcement_delay, "answers": answers} | settings)
    with contextlib.ExitStack() as folder_lock:
        folder_lock.enter_context(_hold_folder(Path(state_dir)))
        state = SandboxState(Path(state_dir), options=options)
        admin_token = secrets.token_urlsafe(24)
        server, thread = serve_in_thread(state, host, port, admin_token)
        return Sandbox(state, server, thread, admin_token, release_folder=folder_lock.pop_all().close)


@contextlib.contextmanager
def _hold_folder(folder: Path) -> Iterator[None]:
    held = contextlib.ExitStack()
    try:
        held.enter_context(
            file_lock(folder / LOCK_NAME, "klarna-mtls sandbox", wait=0.0, what=f"The sandbox folder {folder}")
        )
    except ProfileBusy as busy:
        raise ProfileBusy(
            busy.message,
            title="Sandbox in use",
            hint="One sandbox serves a folder at a time. Close that wizard or sandbox first, "
            "or serve this one from its own folder: klarna-mtls sandbox serve --state-dir DIR.",
        ) from None
    with held:
        yield


__all__ = ["ANSWER_MODES", "Sandbox", "SandboxOptions", "Fault", "FAULT_KINDS", "OPERATIONS", "start_sandbox"]
