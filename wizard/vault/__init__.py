"""Vault and OpenBao (one API): KV version 2 places named ``vault:MOUNT/PATH``, signed in the way
Vault's own command line signs in, through the maintained client ``hvac``."""
