"""Textual screens for klarna-mtls: one per onboarding stage, plus modals. UI only; the work is in
wizard.services.onboarding (and the other services), on a wizard.services.session.Session."""
