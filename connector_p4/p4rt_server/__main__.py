"""``python -m connector_p4.p4rt_server``: see :mod:`connector_p4.p4rt_server.cli`."""

import sys

from connector_p4.p4rt_server.cli import main

sys.exit(main())
