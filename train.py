"""CoOp-style entry point: `python train.py --root $DATA --trainer CoOp ...`."""

import sys

from ammpl.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
