"""`python -m echodepth.cli ...` is `echodepth ...`."""

import sys

from . import main

sys.exit(main())
