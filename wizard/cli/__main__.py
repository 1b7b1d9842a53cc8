"""`python -m wizard.cli`: the same entry point as the `klarna-mtls` command."""

import sys

from wizard.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
