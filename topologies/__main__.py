import sys

from topologies.cli import main

sys.exit(main())
