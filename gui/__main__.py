"""`python -m gui`: the same as the `vault` command (see gui.launch)."""

import sys

from gui.launch import main

sys.exit(main())
