"""`python -m vaultserver …`: the command line without the `vaultserver` script on PATH. Vault starts its own
background runs this way (a scheduled backup is `python -m vaultserver --data-dir D backup TARGET`), so they
use the same interpreter and code as the app that started them."""

import sys

from vaultserver.cli import main

if __name__ == "__main__":
    sys.exit(main())
