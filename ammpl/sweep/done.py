"""When is a run finished? The one rule shared by the shell scripts and `ammpl-sweep`.

The rule itself (a command's settings, and the comparison with what a run folder's
`results.json` recorded) is `ammpl.utils.run_settings`, below both train.py, which records
the settings, and this package; here it is applied to a train.py command line. A folder that
holds a run with other settings (finished or not: resuming it would load the other run's
checkpoint) is a `RunConflictError` naming the first difference.

From the shell: `python -m ammpl.sweep.done DIR [TRAIN.PY ARGS ...]` exits 0 (finished),
1 (to run) or 2 (one-line error); without train.py arguments only the test result counts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ammpl.utils import run_settings
from ammpl.utils.errors import AmmplError, ConfigError
from ammpl.utils.run_settings import (  # noqa: F401  (the rule's names, as before)
    DONE,
    PENDING,
    RESULTS_FILE,
    RunConflictError,
    has_test_result,
    read_record,
    requested_settings,
)


def parse_train_args(argv: Sequence[str]) -> argparse.Namespace:
    """train.py's own parser on `argv` (the arguments after train.py)."""
    from ammpl.cli.train import build_parser

    parser = build_parser()
    parser.error = _raise_config_error  # type: ignore[method-assign]
    return parser.parse_args(list(argv))


def _raise_config_error(message: str):
    raise ConfigError(f"train.py arguments: {message}")


_defaults_cache: dict[str, Any] | None = None


def config_defaults() -> dict[str, Any]:
    """Flat default config (with every method node registered)."""
    global _defaults_cache
    if _defaults_cache is None:
        import ammpl.trainers  # noqa: F401  (registers the method config nodes)
        from ammpl.engine.config import get_cfg_default

        _defaults_cache = {
            k: run_settings.plain(v) for k, v in run_settings.flatten(get_cfg_default()).items()
        }
    return _defaults_cache


def check_folder(
    output_dir: str, requested: Mapping[str, Any] | None, shown: str | None = None
) -> str:
    """DONE or PENDING for `requested` settings in `output_dir` (None: test result only);
    raises RunConflictError (naming the folder as `shown`) when it holds a run with other
    settings."""
    return run_settings.check_folder(output_dir, requested, config_defaults, shown)


def run_state(train_argv: Sequence[str], cwd: str | None = None) -> str:
    """DONE or PENDING for the train.py command `train_argv` (arguments after train.py)."""
    cwd = cwd or os.getcwd()
    args = parse_train_args(train_argv)
    if not args.output_dir:
        raise ConfigError("train.py arguments without --output-dir: no run folder to check")
    folder = run_settings.absolute(args.output_dir, cwd)
    return check_folder(folder, requested_settings(args, cwd), args.output_dir)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m ammpl.sweep.done DIR [TRAIN.PY ARGS ...]", file=sys.stderr)
        return 2
    folder, train_argv = argv[0], argv[1:]
    if read_record(folder) is None:  # nothing there yet: no need for train.py's parser
        return 1
    try:
        if train_argv:
            state = run_state(train_argv)
        else:
            state = check_folder(folder, None)
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0 if state == DONE else 1


if __name__ == "__main__":
    sys.exit(main())
