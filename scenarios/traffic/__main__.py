"""``python -m scenarios.traffic gen|sink|report`` (see :mod:`scenarios.traffic.cli`)."""

import sys

from scenarios.traffic.cli import main

sys.exit(main())
