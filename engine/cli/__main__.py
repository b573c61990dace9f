"""`python -m secretpatch.cli`: the same as the `secretpatch` command."""

import sys

from .main import main

sys.exit(main())
