"""Textual screens for klarna-mtls: one per onboarding stage, the dashboard and its screens, plus
modals. UI only; the work is in wizard.services (onboarding and the others), on a Session.

app.py composes them (WizardApp, make_app, run_tui); each screen is handed a ScreenServices
(services.py: the session, the domain calls, timing, display facts) and asks the app, typed as a
Shell (shell.py), only to navigate or tell the person something. unlock.py asks for passphrases.
Text that is not the program's own (a server's answer, a file) is shown through plain_text.py:
cleaned, never parsed as markup."""
