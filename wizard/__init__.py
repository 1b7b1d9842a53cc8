"""klarna-mtls domain package: model, crypto, API client, secrets, sandbox and CLI.

Never imports Textual or Rich (tests/test_import_hygiene.py proves it).
"""

__version__ = "0.1.0"
