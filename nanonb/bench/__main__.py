"""``python -m nanonb.bench <protocol>``: see :mod:`nanonb.bench.run`."""

import sys

from .run import main

sys.exit(main())
