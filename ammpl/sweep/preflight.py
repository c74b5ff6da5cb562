"""What every run of a sweep needs, checked once before the first run starts.

Missing weights, a mistyped override key or a missing dataset folder would otherwise fail
every run of a sweep one after the other. Before anything starts, for the runs still to do:
each distinct command's config is merged as train.py merges it (dataset config, method
config, flags, overrides: an unknown key is the usual one-line ConfigError naming the
closest key), each backbone's weights are resolved as the runs resolve them, and each
dataset's folder is looked up under DATA. The first problem is raised (one line).
"""

from __future__ import annotations

from collections.abc import Sequence

from ammpl.sweep.done import parse_train_args
from ammpl.sweep.plan import Run

# the arguments that differ between runs of one configuration
_PER_RUN_FLAGS = ("--output-dir", "--seed", "--model-dir", "--load-epoch")


def _config_key(run: Run) -> tuple[str, ...]:
    args = run.train_args
    return tuple(
        "" if i and args[i - 1] in _PER_RUN_FLAGS else value for i, value in enumerate(args)
    )


def run_configs(runs: Sequence[Run]) -> list:
    """The merged config of each distinct command among `runs` (train.py's checks included)."""
    import ammpl.data.datasets  # noqa: F401  (registers the dataset readers)
    import ammpl.trainers  # noqa: F401  (registers trainers and their config nodes)
    from ammpl.cli.train import check_before_building
    from ammpl.engine.config import setup_cfg

    configs, seen = [], set()
    for run in runs:
        key = _config_key(run)
        if key in seen:
            continue
        seen.add(key)
        args = parse_train_args(run.train_args)
        cfg = setup_cfg(args)
        check_before_building(args, cfg)
        configs.append(cfg)
    return configs


def check_weights(configs: Sequence) -> list[str]:
    """Resolve each backbone's weights once (the names of the backbones checked)."""
    from ammpl.clip.backbones import backbone_weights, get_backbone_spec
    from ammpl.clip.weights import WeightsNotFoundError

    checked: dict[tuple[str, str], None] = {}
    for cfg in configs:
        backbone = cfg.MODEL.BACKBONE
        key = (backbone.NAME, backbone.PATH)
        if key in checked:
            continue
        checked[key] = None
        try:
            backbone_weights(get_backbone_spec(backbone.NAME), backbone.PATH or None)
        except WeightsNotFoundError:
            if not backbone.ALLOW_TINY_FALLBACK:
                raise
    return [name for name, _ in checked]


def check_datasets(configs: Sequence) -> list[str]:
    """Each dataset's folder under its root (the names of the datasets checked)."""
    from ammpl.data.datasets.benchmark import ReaderInfo
    from ammpl.data.registry import DATASET_REGISTRY, dataset_root

    checked: dict[tuple[str, str], None] = {}
    for cfg in configs:
        key = (cfg.DATASET.NAME, cfg.DATASET.ROOT)
        if key in checked:
            continue
        checked[key] = None
        root = dataset_root(cfg)
        reader = DATASET_REGISTRY.get(cfg.DATASET.NAME)
        if isinstance(reader, type) and issubclass(reader, ReaderInfo) and reader.dataset_dir:
            reader.locate(root)  # DataError: the folder expected, and what to download
    return [name for name, _ in checked]


def preflight(runs: Sequence[Run]) -> str:
    """Check what `runs` need (configs, weights, data); a one-line summary of what was
    checked, or the first problem as an AmmplError."""
    configs = run_configs(runs)
    backbones = check_weights(configs)
    datasets = check_datasets(configs)
    return (
        f"checked before the first run: {len(configs)} config(s), backbone(s) "
        f"{', '.join(dict.fromkeys(backbones))}, {len(set(datasets))} dataset folder(s)"
    )
