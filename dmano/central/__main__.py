"""``python -m dmano.central --config FILE``: the centralized baseline orchestrator."""

import sys

from dmano.central.cli import main

sys.exit(main())
