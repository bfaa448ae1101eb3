import sys

from dmano.cli import main

sys.exit(main())
