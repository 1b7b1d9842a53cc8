"""The core: the onboarding model (stages, checks, the action table), the journal's typed records,
locking, crypto, rules and errors. Pure rules plus this machine's own state files; no network."""
