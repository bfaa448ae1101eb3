"""``python -m vnf``: run one VNF instance (see :mod:`vnf.cli`)."""

import sys

from vnf.cli import main

sys.exit(main())
