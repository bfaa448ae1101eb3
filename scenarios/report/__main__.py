"""``python -m scenarios.report`` (see :mod:`scenarios.report.cli`)."""

import sys

from scenarios.report.cli import main

sys.exit(main())
