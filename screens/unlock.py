"""The passphrases and the API key a run needs, each asked in a PassphraseModal awaited from a
worker: the private key's passphrase (KLARNA_MTLS_KEY_PASSPHRASE is tried first), then the API key
from the store the person chose (the encrypted secrets file asks for its own passphrase), and that
passphrase again for keys created later. A wrong passphrase is asked again inside the modal;
cancelling goes on, and calls that need what was not given ask again when they fail."""

from __future__ import annotations

import asyncio
import os

from screens.modals import PassphraseModal, display_path
from screens.services import ScreenServices
from screens.shell import Shell
from wizard.core.env_vars import API_KEY_ENV, STORE_PASSPHRASE_ENV
from wizard.core.errors import SecretStoreError
from wizard.core.logs import register_secret
from wizard.core.secret_value import SecretValue

KEY_PASSPHRASE_ENV = "KLARNA_MTLS_KEY_PASSPHRASE"


async def unlock(app: Shell, services: ScreenServices) -> None:
    """What a resumed run needs, in order: the private key's passphrase, then the API key."""
    await ask_key_passphrase(app, services)
    await load_api_key(app, services)


async def ask_key_passphrase(app: Shell, services: ScreenServices, *, problem: str = "", force: bool = False) -> bool:
    """The private key's passphrase when the key is encrypted and none is known yet (``force``: ask
    again, ``problem`` saying why). True when one was given."""
    from wizard.core import crypto  # cryptography: not needed for the first paint

    session = services.session
    if not force and (not session.evidence.key_encrypted or session.key_passphrase is not None):
        return True
    path = session.key_path

    def check(passphrase: bytes) -> bytes:
        crypto.load_private_key_file(path, passphrase)
        return passphrase

    passphrase = await app.push_screen_wait(
        PassphraseModal(
            "Private key passphrase",
            f"Your private key {display_path(path)} is encrypted. Enter its passphrase to use it in this run.",
            check,
            env_var=KEY_PASSPHRASE_ENV,
            problem=problem,
        )
    )
    if passphrase is None:
        app.notify("Without the key passphrase, steps that use the certificate will ask again.", severity="warning")
        return False
    register_secret(passphrase)  # never in a log line, even quoted by a library
    session.set_key_passphrase(passphrase)
    return True


async def load_api_key(app: Shell, services: ScreenServices) -> None:
    """The API key, loaded the one way the domain offers (``resolve_api_key``: KLARNA_API_KEY when
    set, else the store the person chose). Keyring calls block, so they run in a thread."""
    from wizard.secrets.resolve import recorded_store, resolve_api_key  # keyring: not needed for the first paint

    session = services.session
    kind = session.evidence.secret_backend
    if session.unlocked or kind not in ("keyring", "sandbox", "env", "encrypted-file", "vault"):
        return
    if kind == "encrypted-file" and not os.environ.get(API_KEY_ENV):
        await ask_store_passphrase(app, services)
        return
    try:
        key, _ = await asyncio.to_thread(
            resolve_api_key, session.profile, session.paths, recorded_store(session.evidence)
        )
        session.unlock(key)
    except SecretStoreError as error:
        advice = error.message
        if kind == "env":
            advice = (
                f"KLARNA_API_KEY is not set. Quit (ctrl+q) and start again with "
                f"KLARNA_API_KEY=… klarna-mtls --profile {session.profile}."
            )
        app.notify(advice, severity="warning", timeout=15)


async def ask_store_passphrase(app: Shell, services: ScreenServices) -> None:
    """The encrypted secrets file's passphrase, checked by loading the API key with it."""
    from wizard.secrets.resolve import resolve_api_key

    session = services.session

    def check(passphrase: bytes) -> tuple[SecretValue[bytes], SecretValue[str]]:
        key, _ = resolve_api_key(session.profile, session.paths, "encrypted-file", passphrase=passphrase, use_env=False)
        return SecretValue(passphrase), SecretValue(key)

    answer = await app.push_screen_wait(
        PassphraseModal(
            "Secrets file passphrase",
            "Your API key is kept in the encrypted secrets file "
            f"{display_path(session.paths.secrets_file())}. Enter its passphrase to load the key for this run.",
            check,
            env_var=STORE_PASSPHRASE_ENV,
            input_id="store-passphrase-modal",
        )
    )
    if answer is None:
        app.notify("Without the API key, steps that call Klarna cannot run.", severity="warning")
        return
    passphrase, key = answer
    services.remember_store_passphrase(passphrase)
    session.unlock(key)


async def store_passphrase_for_new_keys(app: Shell, services: ScreenServices) -> bytes | None:
    """The encrypted file's passphrase for keys created or rotated later (call from a worker): the
    one given earlier in this run, else KLARNA_MTLS_STORE_PASSPHRASE (None: the domain reads it),
    else asked and checked. None when cancelled."""
    from wizard.secrets.resolve import open_profile_store, prove_opens

    if services.store_passphrase:
        return services.store_passphrase.reveal()
    if os.environ.get(STORE_PASSPHRASE_ENV):
        return None  # open_profile_store reads it itself
    paths = services.session.paths

    def check(passphrase: bytes) -> SecretValue[bytes]:
        store = open_profile_store("encrypted-file", paths, passphrase=passphrase)
        prove_opens(store)  # a wrong passphrase is said here, before any key is created
        return SecretValue(passphrase)

    answer = await app.push_screen_wait(
        PassphraseModal(
            "Secrets file passphrase",
            f"The new key is kept in the encrypted secrets file {display_path(paths.secrets_file())}. "
            "Enter its passphrase.",
            check,
            input_id="store-passphrase-modal",
        )
    )
    if answer is None:
        return None
    services.remember_store_passphrase(answer)
    return answer.reveal()
