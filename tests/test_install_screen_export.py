"""The Install screen's export of extra formats (bundle, PKCS#12, Kubernetes Secret)."""

import pytest

from screens.install import InstallScreen
from screens.services import ScreenServices
from wizard.core.interlocks import ActionRefused
from wizard.services.session import Session


def test_export_without_an_installed_pair_is_a_clear_error(paths):
    """Before: install.current_pair() returned None and export_bundle crashed with an
    AttributeError deep inside (a bare traceback); now the export gate's refusal, which the app reports."""
    screen = InstallScreen(ScreenServices(Session(paths, "export")))
    with pytest.raises(ActionRefused, match="No certificate is installed here"):
        screen.export(["bundle"], b"")
    assert not (screen.session.install_dir / "exports").exists()
