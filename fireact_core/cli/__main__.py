"""`python -m fireact_core.cli ...`: the same as the `fireact` command."""

import sys

from . import main

sys.exit(main())
