"""``python -m nanonb.bench <protocol>``."""

import sys

from nanonb.bench import main

sys.exit(main())
