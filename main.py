"""Open VAURA Studio from a source checkout: `python main.py [CLIP]` (see `python main.py --help`)."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
