"""CoOp's `parse_test_res.py` command line (see `ammpl.results.parse` for the details).

python parse_test_res.py output/<dataset>/CoOp/<cfg>_16shots/nctx16_cscFalse_ctpend
python parse_test_res.py output/base2new/test_new/<dataset>/shots_16/<trainer>/<cfg> --test-log
python parse_test_res.py output/ZeroshotCLIP/vit_b16 --test-log   # mean over datasets
"""

import sys

from ammpl.results.cli import parse_test_res_main

if __name__ == "__main__":
    sys.exit(parse_test_res_main())
