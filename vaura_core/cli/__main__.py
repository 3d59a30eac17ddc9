import sys

from vaura_core.cli import main

sys.exit(main())
