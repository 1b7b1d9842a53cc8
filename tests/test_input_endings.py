"""Names checked with a regular expression end where the text ends: `$` also matches before a final
newline, so "web\n" passed as a runtime name and "a\n" as a profile name (redteam IN-07, the same
hole in other names); and the runtime exchange's files never land in the tool's own folders."""

from __future__ import annotations

import pytest

from wizard.core.errors import InputError
from wizard.core.paths import valid_profile_name
from wizard.core.runtimes import verify_runtime_name
from wizard.services.runtime_exchange import write_exchange


@pytest.mark.parametrize("ending", ["\n", "\r\n", " ", "\t"])
def test_a_name_with_a_trailing_newline_or_space_is_refused(ending):
    assert valid_profile_name("checkout") and not valid_profile_name("checkout" + ending)
    assert verify_runtime_name("web-1") == "web-1"
    with pytest.raises(InputError):
        verify_runtime_name("web-1" + ending)


def test_a_runtime_exchange_file_is_never_written_into_the_tools_folders(tmp_path):
    kept = tmp_path / "state"
    kept.mkdir(mode=0o700)
    with pytest.raises(InputError):
        write_exchange(kept / "journal.json", {"kind": "x"}, [kept])
    assert not (kept / "journal.json").exists()
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    written = write_exchange(out / "runtime-request-web.json", {"kind": "x"}, [kept])
    assert written.read_text().startswith("{")
