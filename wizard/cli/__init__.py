"""The command line: a front end over the domain, like screens/. One module per command group."""

from wizard.cli.main import main

__all__ = ["main"]
