"""Server text stays text (issue 22, rule 4; red team HS-01, HS-02, HS-03, A41, A42, HS-11).

Strings a Klarna-shaped server controls (a key's description, an error's message, code and ids,
certificate ids, CNs and states, runtime names and reports) are fed to every screen that shows
them, to the CLI's output and to the log. Nothing may be interpreted: no Rich/Textual markup
(``[@click=app.quit]`` an action, ``[/x]`` a crash, ``[link=…]`` a hyperlink) and no byte that
drives the terminal (ESC, CSI, OSC 52 clipboard writes, OSC 8 links, C1 controls, bidi overrides).

What reached the terminal is read from the screen's full frame, as Textual writes it: every
segment's text and style, and the byte stream of that frame."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import tempfile
from dataclasses import replace

import pytest
from conftest import record_figure
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from snapshot_apps import dashboard_app, fixed_findings, fixed_keys, fixed_status, keys_app
from tests_support import settle

from wizard.core import rules
from wizard.core.errors import ApiError
from wizard.core.findings import Finding

SIZE = (160, 40)

# ---------------------------------------------------------------- the hostile strings
MARKUP = [
    "[@click=app.quit]",
    "[@click=screen.dismiss]",
    "[/x]",
    "[/]",
    "[link=https://evil.example]",
    "[/link]",
    "[b]",
    "[bold red on blue]",
    "[",
    "]",
    "\\[",
    "$variable",
]
ESCAPES = [
    "\x1b]52;c;cHduZWQ=\x07",  # OSC 52: write "pwned" to the clipboard
    "\x1b]52;c;cHduZWQ=\x1b\\",
    "\x1b]8;;https://evil.example\x1b\\",  # OSC 8: a hyperlink
    "\x1b]0;owned\x07",  # the window title
    "\x1b]0;owned",  # unterminated
    "\x1b[2J",
    "\x1b[H",
    "\x1b[5;5H",
    "\x1b[31m",
    "\x1bP+q\x1b\\",  # DCS
    "\x1bc",
    "\x1b(0",
    "\x9b2J",  # C1 CSI
    "\x9d0;t\x9c",  # C1 OSC … ST
    "\x90q\x9c",
    "\x1b",
    "\x07",
    "\x00",
    "\x7f",
    "\x85",
    "\r",
    "\n",
    "\t",
    "\ud800",  # a lone surrogate (JSON can carry one): it cannot even be encoded
]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\u2028"]

fragments = st.one_of(
    st.sampled_from(MARKUP + ESCAPES + BIDI),
    st.text(max_size=12),
    st.builds(lambda char, n: char * n, st.sampled_from("Aé界[\x1b"), st.integers(1000, 4000)),  # long lines
)
hostile_text = st.lists(fragments, min_size=1, max_size=8).map("".join)
hostile_lists = st.lists(hostile_text, min_size=1, max_size=4)

# The red team's own strings.
HS01 = "[@click=app.quit]CLICKME[/] \x1b]52;c;cHduZWQ=\x1b\\ \x1b[2J\x1b[H TAIL"
HS02 = "[/unbalanced] [bold"
HS03 = "DOCMSG \x1b]52;c;ZG9jdG9y\x1b\\ \x1b[2J bad [/request] [link=https://evil]y[/link]"
A41 = "svc\x1b]0;owned\x07\x1b[2J\x1b[H\n * forged healthy line"
A42 = "svc [/bogus] [@click=app.quit]x[/] [link=https://evil]y[/link]"
RED_TEAM = [HS01, HS02, HS03, A41, A42]

# A Pilot app takes about a second to start: each example starts one and shows a batch of string
# lists in turn, through the screen's own display calls. Bounded and deterministic.
BATCH = 5
batches = st.lists(hostile_lists, min_size=BATCH, max_size=BATCH)
SCREEN_PROPERTY = settings(
    max_examples=2,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: shrinking apps takes minutes
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
FAST_PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
SCREEN_FIGURE = "hostile text: strings shown on a screen, none interpreted (screen x string)"
TERMINAL_FIGURE = "hostile text: strings printed by the CLI and after the TUI, none raw (output x string)"


# ---------------------------------------------------------------- what reached the terminal
# Anything but printable text: C0 (tab and newline included: a frame's lines have none), DEL, C1,
# the bidi controls, line/paragraph separators and lone surrogates.
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
# What Textual itself writes for a frame: colours (SGR) and absolute cursor moves.
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[\d+;\d+H|\r?\n")


def interpreted(app) -> list[str]:
    """What of the current frame is not plain text: a control character in a segment, a link or
    an action in a segment's style, or an escape sequence Textual did not write itself."""
    problems = []
    compositor = app.screen._compositor
    for y, strip in enumerate(compositor.render_strips()):
        for segment in strip:
            if FORBIDDEN.search(segment.text):
                problems.append(f"line {y}: control character in {segment.text!r}")
            style = segment.style
            if style is not None and (style.link or "@click" in (style.meta or {})):
                problems.append(f"line {y}: {segment.text!r} carries {style.link or style.meta}")
    console = Console(
        width=app.size.width,
        height=app.size.height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
        safe_box=False,
    )
    console.print(compositor.render_update(full=True, screen_stack=app._background_screens))
    stream = OWN_SEQUENCES.sub("", console.file.getvalue())
    problems += [f"terminal stream: {m.group()!r}" for m in FORBIDDEN.finditer(stream)][:5]
    return problems


def shown(text: str) -> str:
    """How a server string must appear: the one cleaner's output, character for character."""
    return rules.clean_text(text)


def start(text: str) -> str:
    """The start of a server string as a multi-line widget shows it (its first line, 40 characters)."""
    return rules.clean_text(text, keep_newlines=True).split("\n")[0][:40]


async def on_screen(pilot, name: str) -> None:
    """The screen ``name`` is on top with nothing failed: no error modal, the app still running."""
    await settle(pilot, failures_shown=True)
    app = pilot.app
    assert app.is_running and app.return_code is None
    assert type(app.screen).__name__ == name, f"{type(app.screen).__name__}: {getattr(app.screen, 'body_text', '')}"


@contextlib.contextmanager
def fresh_home():
    """Each app of an example in a home of its own: nothing one example saved reaches the next."""
    previous = os.environ["KLARNA_MTLS_HOME"]
    with tempfile.TemporaryDirectory() as home:
        os.environ["KLARNA_MTLS_HOME"] = home
        try:
            yield
        finally:
            os.environ["KLARNA_MTLS_HOME"] = previous


async def checked(pilot, name: str) -> None:
    """After a display call: the frame drawn, the screen still there, nothing interpreted."""
    await pilot.pause()
    await on_screen(pilot, name)
    problems = interpreted(pilot.app)
    assert problems == [], problems


# ---------------------------------------------------------------- the screens, with stand-in loaders
def hostile_keys(strings: list[str]):
    return fixed_keys()[:1] + [
        replace(fixed_keys()[1], credential_id=f"krn:x:{i}{s}", description=s, masked=s, status=s, created_at=s)
        for i, s in enumerate(strings)
    ]


async def keys_screen(batch: list[list[str]]) -> int:
    """The API-key table (HS-01, HS-02, A41, A42) and the disable confirmation quoting a description."""
    app = keys_app()

    async def load(session):
        return hostile_keys(batch[0])

    app.services.keys_loader = load
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await on_screen(pilot, "KeysScreen")
        for strings in batch:
            app.screen.show(hostile_keys(strings))  # what the refresh worker calls with Klarna's list
            await checked(pilot, "KeysScreen")
            table = app.screen.query_one("#keys")
            for i, s in enumerate(strings, start=1):
                assert str(table.get_row_at(i)[1]) == shown(s)  # the description, character for character
            table.move_cursor(row=1)
            await pilot.press("ctrl+d")
            await checked(pilot, "TypedConfirmModal")  # the tool's own key is unknown here: typed
            await pilot.press("escape")
            await on_screen(pilot, "KeysScreen")
    return 2 * sum(map(len, batch))


def hostile_status(strings: list[str]):
    template = fixed_status().certificates[0]
    rows = [
        replace(
            template,
            credential_id=f"krn:x:{i}{s}",
            cn=s,
            fingerprint=s,
            fingerprint_suffix=s,
            expires_at=s,
            status=s,
            last_seen_valid=s,
        )
        for i, s in enumerate(strings)
    ]
    return replace(
        fixed_status(),
        certificates=rows,
        enforcement_mode=strings[0],
        enforced_from=strings[-1],
        secret_backend=strings[-1],
        verification=strings[0],
    )


def hostile_runtimes(strings: list[str]):
    """Runtime names and report states are checked when read; a runtime's certificate ids and
    fingerprint come from a response file as they are."""
    from wizard.core.runtimes import ReadinessReport, RuntimeRecord

    report = ReadinessReport("rt0", None, "AB" * 32, "VALID", "2026-12-01T08:00:00Z", "1")
    return {f"rt{i}": RuntimeRecord(f"rt{i}", [s], s, None, report) for i, s in enumerate(strings)}


async def dashboard_screen(batch: list[list[str]]) -> int:
    """Klarna's certificate list, its enforcement answer, the details line and the runtimes panel."""
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, "DashboardScreen")
        for strings in batch:
            app.session.state.runtimes = hostile_runtimes(strings)
            app.screen.show(hostile_status(strings))  # what the refresh worker calls with Klarna's answer
            await checked(pilot, "DashboardScreen")
            details = str(app.screen.query_one("#details").content)
            assert details.startswith(rules.clean_text(f"krn:x:0{strings[0]}\n", keep_newlines=True))
    return 2 * sum(map(len, batch))


async def offline_dashboard(batch: list[list[str]]) -> int:
    """Klarna's error message in the dashboard's offline banner."""
    app = dashboard_app()
    errors = [ApiError(" ".join(strings), status=400, error_code=strings[0]) for strings in batch]

    async def refused(session):
        raise errors.pop(0)

    app.services.status_loader = refused
    async with app.run_test(size=SIZE) as pilot:
        for strings in batch:
            await on_screen(pilot, "DashboardScreen")
            await checked(pilot, "DashboardScreen")
            banner = str(app.screen.query_one("#offline").content)
            assert start(f"Klarna refused the call: {' '.join(strings)}") in banner  # an ApiError: refused
            if errors:
                app.screen.action_refresh()
    return sum(map(len, batch))


def hostile_findings(strings: list[str]) -> list[Finding]:
    return fixed_findings() + [Finding(s, "critical", f"list_api_keys refused: {s}", s) for s in strings]


async def doctor_screen(batch: list[list[str]]) -> int:
    """Findings quoting Klarna's error messages (HS-03)."""
    app = dashboard_app()
    answers = [hostile_findings(strings) for strings in batch]

    async def doctor(session):
        return answers.pop(0)

    app.services.findings_loader = doctor
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        for strings in batch:
            await on_screen(pilot, "DoctorScreen")
            await checked(pilot, "DoctorScreen")
            assert start(f"✗ {strings[0]}: list_api_keys refused") in str(app.screen.query_one("#findings").content)
            if answers:
                app.screen.action_run()
    return sum(map(len, batch))


async def error_modal(batch: list[list[str]]) -> int:
    """An ApiError: its message, hint, error code and ids."""
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for strings in batch:
            app.show_error(
                ApiError(
                    " ".join(strings),
                    status=400,
                    error_id=strings[0],
                    error_code=strings[-1],
                    klarna_correlation_id=strings[0],
                    hint=strings[-1],
                )
            )
            await checked(pilot, "ErrorModal")
            message = str(app.screen.query_one("#error-message").content)
            assert message == rules.clean_text(" ".join(strings), keep_newlines=True)
            await pilot.press("escape")
            await on_screen(pilot, "DashboardScreen")
    return sum(map(len, batch))


async def pair_check_screen(batch: list[list[str]]) -> int:
    """The pair doctor's findings (they quote Klarna's answer to the probe)."""
    from wizard.services import pair_doctor

    answers = [[Finding(s, "critical", s, s) for s in strings] for strings in batch]

    async def doctor_pair(session, cert, key, key_passphrase=None):
        return answers.pop(0)

    app = dashboard_app()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pair_doctor, "doctor_pair", doctor_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("p")
            await on_screen(pilot, "PairCheckScreen")
            app.screen.query_one("#cert-file").value = "certificate.pem"
            app.screen.query_one("#key-file").value = "private-key.pem"
            for _ in batch:
                app.screen.query_one("#key-file").focus()
                await pilot.press("enter")
                await checked(pilot, "PairCheckScreen")
    return sum(map(len, batch))


async def notices_and_progress(batch: list[list[str]]) -> int:
    """Notifications (``Key <masked> disabled.``), the progress panel's line, and a confirmation
    naming a server id (the rotation's 'Retire the old certificate?')."""
    from screens.modals import ConfirmModal
    from screens.progress import WorkPanel

    app = keys_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await on_screen(pilot, "KeysScreen")
        for strings in batch:
            app.clear_notifications()
            for s in strings:
                app.notify(f"Key {s} disabled.", title=s, timeout=60)
                app.screen.notify(f"[b]{s}[/b]", markup=True)  # a caller asking for markup gets none
            app.screen.query_one(WorkPanel).show(" ".join(strings))
            await checked(pilot, "KeysScreen")
            app.push_screen(ConfirmModal(strings[0], f"{strings[-1]}\nis no longer used here.", "Revoke old"))
            await checked(pilot, "ConfirmModal")
            await pilot.press("escape")
    return 3 * sum(map(len, batch))


async def stage_screens(batch: list[list[str]]) -> int:
    """The certificate id, CN and Klarna's enforcement answer on the Issue, Enforce and Done screens."""
    from snapshot_apps import evidence_through, snapshot_app

    from screens.done import DoneScreen
    from wizard.core.stages import Stage

    for stage, name in ((Stage.ISSUE, "IssueScreen"), (Stage.ENFORCE, "EnforceScreen")):
        app = snapshot_app(stage, evidence=evidence_through(stage.next()))  # the stage done, as resumed
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            if type(app.screen).__name__ == "WelcomeScreen":
                await pilot.press("ctrl+n")
            await on_screen(pilot, name)
            for strings in batch:
                ev = app.session.evidence
                ev.certificate_id, ev.enforcement_mode, ev.enforced_from = " ".join(strings), strings[0], strings[-1]
                app.screen.show_facts()
                await checked(pilot, name)
                app.push_screen(DoneScreen(app.services))
                await checked(pilot, "DoneScreen")
                app.pop_screen()
    return 3 * sum(map(len, batch))


SCREENS = {
    "keys": keys_screen,
    "dashboard": dashboard_screen,
    "offline dashboard": offline_dashboard,
    "doctor": doctor_screen,
    "error modal": error_modal,
    "pair check": pair_check_screen,
    "notices, progress, confirmation": notices_and_progress,
    "issue, enforce, done": stage_screens,
}


def run_surface(surface: str, batch: list[list[str]]) -> int:
    with fresh_home():
        return asyncio.run(SCREENS[surface](batch))


# ---------------------------------------------------------------- the red team's reproductions
async def test_hs01_a_description_is_no_clickable_action_and_writes_no_clipboard():
    app = keys_app()

    async def load(session):
        return hostile_keys([HS01])

    app.services.keys_loader = load
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await checked(pilot, "KeysScreen")  # no OSC 52, no clear screen, no action in a style
        strips = app.screen._compositor.render_strips()
        y, x = next((y, s.text.find("CLICKME")) for y, s in enumerate(strips) if "CLICKME" in s.text)
        await pilot.click(offset=(x + 2, y))  # the red team's click on the description cell
        await on_screen(pilot, "KeysScreen")  # before the fix: the app quit


@pytest.mark.parametrize("description", [HS02, A42, A41], ids=["HS-02", "A42", "A41"])
def test_hs02_a41_a42_a_description_shows_as_sent_on_the_keys_screen(description):
    assert run_surface("keys", [[description]]) == 2


@pytest.mark.parametrize("message", [HS03, "bad [/request]", "[@click=app.quit]x[/]"])
def test_hs03_the_doctor_shows_a_server_message_as_text(message):
    assert run_surface("doctor", [[message]]) == 1


# ---------------------------------------------------------------- the property, screen by screen
@pytest.mark.parametrize("surface", SCREENS)
@SCREEN_PROPERTY
@given(batch=batches)
@example(batch=[RED_TEAM])
def test_no_screen_interprets_server_text(surface, batch):
    count = run_surface(surface, batch)
    record_figure(SCREEN_FIGURE, count, count)


# ---------------------------------------------------------------- the one cleaner
@FAST_PROPERTY
@given(text=hostile_text, keep=st.booleans())
def test_the_cleaner_leaves_only_text(text, keep):
    out = rules.clean_text(text, keep_newlines=keep)
    assert not FORBIDDEN.search(out.replace("\n", "")) and ("\n" not in out or keep)
    assert all(len(line) <= rules.MAX_LINE for line in out.split("\n"))
    assert rules.clean_text(out, keep_newlines=keep) == out  # cleaning twice changes nothing more


@FAST_PROPERTY
@given(text=st.text(st.characters(blacklist_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), max_size=rules.MAX_LINE))
def test_ordinary_text_is_unchanged(text):
    assert rules.clean_text(text) == text  # why the snapshots of ordinary screens do not move


def test_a_cut_line_says_how_much_was_cut():
    out = rules.clean_text("A" * 5000)
    assert len(out) == rules.MAX_LINE and out == "A" * 976 + "… (4024 more characters)"


# ---------------------------------------------------------------- what stays in the terminal after the TUI
@FAST_PROPERTY
@given(strings=hostile_lists)
@example(strings=RED_TEAM)
def test_the_exit_summary_and_the_crash_report_are_text(strings, paths):
    """Printed after Textual has given the terminal back: the certificate id and Klarna's answers
    in the summary, a server's message quoted by a traceback in the crash report."""
    from snapshot_apps import snapshot_app

    from screens.exit_report import crash_report, exit_summary
    from wizard.core.stages import Stage

    session = snapshot_app(Stage.DONE).session
    ev = session.evidence
    certificate_id = "krn:x:" + " ".join(strings)
    ev.certificate_id, ev.enforcement_mode, ev.enforced_from = certificate_id, strings[0], strings[-1]
    summary = exit_summary(session)
    assert terminal_problems(summary) == []
    assert summary.split("\n")[1] == shown(f"  Certificate: {certificate_id}")  # one line, as sent
    try:
        raise ApiError(" ".join(strings), status=400)
    except ApiError as error:
        assert terminal_problems(crash_report(error, paths)) == []
    record_figure(TERMINAL_FIGURE, 2 * len(strings), 2 * len(strings))


# ---------------------------------------------------------------- the CLI
def hostile_profile(strings: list[str]) -> None:
    """A DONE profile (as the snapshot apps have) whose runtimes name certificates with ``strings``."""
    from snapshot_apps import snapshot_app

    from wizard.core.stages import Stage

    app = snapshot_app(Stage.DONE)
    app.session.state.runtimes = hostile_runtimes(strings)
    app.session.save()


def terminal_problems(output: str) -> list[str]:
    return [repr(m.group()) for m in FORBIDDEN.finditer(output.replace("\n", ""))]


@FAST_PROPERTY
@given(strings=hostile_lists)
@example(strings=RED_TEAM)
def test_no_cli_output_path_passes_server_text_raw(strings, capsys):
    """The three ways a command prints (emit, progress, fail) and the text the commands build from
    Klarna's answers: status, keys, findings, runtimes."""
    from argparse import Namespace

    from wizard.cli import checks, keys, status
    from wizard.cli.common import emit, fail, progress

    text, as_json = Namespace(json=False), Namespace(json=True)
    value = " ".join(strings)
    emit(text, {}, value)
    progress(text, value)
    out = capsys.readouterr()
    assert terminal_problems(out.out + out.err) == []
    fail(text, ApiError(value, status=400, error_code=value, hint=value))
    emit(text, {}, status._status_text(hostile_status(strings)))
    emit(text, {}, "\n".join(keys._line(row) for row in hostile_keys(strings)))
    checks._findings_out(text, hostile_findings(strings), 2)
    out = capsys.readouterr()
    assert terminal_problems(out.out + out.err) == []
    forged = [line for line in (out.out + out.err).split("\n") if line.startswith(" * forged")]
    assert forged == []  # in what a command builds from an answer, a server's newline starts no line
    emit(as_json, {"value": value}, value)  # JSON carries the string whole, escaped
    assert json.loads(capsys.readouterr().out)["value"] == value
    record_figure(TERMINAL_FIGURE, 7 * len(strings), 7 * len(strings))


def test_keys_list_and_runtime_list_print_server_text_as_text(monkeypatch, capsys):
    """End to end through the command line: ``keys list`` and ``runtime list`` (its certificate
    ids come from another machine's response file), and a refusal quoting Klarna's message."""
    from wizard.cli import main
    from wizard.services import api_keys

    monkeypatch.setenv("KLARNA_API_KEY", "klarna_test_api_" + "0" * 32)
    hostile_profile(RED_TEAM)

    async def listed(session):
        return hostile_keys(RED_TEAM)

    monkeypatch.setattr(api_keys, "list_keys", listed)
    assert main(["keys", "list", "--profile", "snap"]) == 0
    assert main(["runtime", "list", "--profile", "snap"]) in (0, 1)

    async def refused(session):
        raise ApiError(HS03, status=400, error_code=A42)

    monkeypatch.setattr(api_keys, "list_keys", refused)
    assert main(["keys", "list", "--profile", "snap"]) == 3
    out = capsys.readouterr()
    assert terminal_problems(out.out + out.err) == []
    assert "[/unbalanced] [bold" in out.out and "bad [/request]" in out.err  # shown, as sent


# What a print may be given in wizard/cli besides a literal, text made safe (terminal_text, clean) or
# JSON (json.dumps escapes every control and non-ASCII character), each with why it is safe.
PRINTS_ALLOWED = {
    ("runtime.py", "line"): "the probe's report, made by json.dumps just before",
    (
        "sandbox.py",
        "f'sandbox serving at {sandbox.base_url}\\n  CA bundle: {sandbox.ca_bundle}\\n  account:   "
        "{sandbox.account_id}\\n  (API key: run with --json to print it)'",
    ): "the local sandbox's own address and account",
}


def test_every_cli_print_is_cleaned_or_json():
    """Every output path of the CLI: a new print that passes server text raw fails here."""
    import ast
    from pathlib import Path

    import wizard.cli

    def made_safe(node) -> bool:
        called = node.func if isinstance(node, ast.Call) else None
        return (getattr(called, "id", None) or getattr(called, "attr", None)) in ("terminal_text", "clean", "dumps")

    unsafe = []
    for path in sorted(Path(wizard.cli.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"):
                continue
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) or made_safe(arg):
                continue
            if isinstance(arg, ast.JoinedStr) and all(
                made_safe(v.value) for v in arg.values if isinstance(v, ast.FormattedValue)
            ):
                continue  # an f-string whose every value is cleaned
            if (path.name, ast.unparse(arg)) not in PRINTS_ALLOWED:
                unsafe.append(f"{path.name}:{node.lineno} print({ast.unparse(arg)})")
    assert unsafe == []


# ---------------------------------------------------------------- the log (HS-11)
@FAST_PROPERTY
@given(strings=hostile_lists)
@example(strings=RED_TEAM)
def test_the_log_gets_server_text_as_text(strings, paths):
    from wizard.core.logs import setup_logging

    logger = setup_logging(paths)
    value = " ".join(strings)
    logger.warning("%s: %s", "ApiError", value)  # as the TUI's error handler logs a refusal
    logger.error("list_api_keys refused: " + value)
    for handler in logger.handlers:
        handler.flush()
    written = paths.log_path().read_text(encoding="utf-8", errors="replace")
    assert terminal_problems(written) == []
