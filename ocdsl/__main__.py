"""``python -m ocdsl ...`` is ``ocdsl ...`` (the console script), for harnesses that start
runs with the interpreter they run in."""

import sys

from ocdsl.cli import main

sys.exit(main())
