"""Entry point of the bundled application: one executable, two commands.

The bundle holds a single program. Started as `vaura` (a link or copy of it made by the build) it
is the command-line tool; under any other name it opens VAURA Studio. One executable keeps the
bundle to one copy of torch and Qt and one dependency analysis.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def main() -> int:
    multiprocessing.freeze_support()  # a frozen child process must not start a second GUI
    if Path(sys.argv[0]).stem.lower() == "vaura":
        from vaura_core.cli import main as cli_main

        return cli_main()
    from app.main import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
