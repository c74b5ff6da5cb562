"""`python -m ammpl.paper`: see `ammpl.paper.cli`."""

import sys

from ammpl.paper.cli import main

sys.exit(main())
