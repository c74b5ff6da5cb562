"""Config defaults, merge order of train.py, and the errors a typo produces."""

from __future__ import annotations

import argparse

import pytest

from ammpl.engine import config as config_module
from ammpl.engine.config import (
    CfgNode,
    get_cfg_default,
    merge_from_file,
    merge_from_list,
    register_cfg_extension,
    setup_cfg,
)
from ammpl.utils.errors import ConfigError

DASSL_DEFAULTS = {
    "OUTPUT_DIR": "./output",
    "RESUME": "",
    "SEED": -1,
    "USE_CUDA": True,
    "VERBOSE": True,
    "INPUT.SIZE": (224, 224),
    "INPUT.INTERPOLATION": "bilinear",
    "INPUT.TRANSFORMS": (),
    "INPUT.NO_TRANSFORM": False,
    "INPUT.PIXEL_MEAN": [0.485, 0.456, 0.406],
    "INPUT.PIXEL_STD": [0.229, 0.224, 0.225],
    "INPUT.RRCROP_SCALE": (0.08, 1.0),
    "INPUT.CROP_PADDING": 4,
    "DATASET.ROOT": "",
    "DATASET.NAME": "",
    "DATASET.SOURCE_DOMAINS": (),
    "DATASET.TARGET_DOMAINS": (),
    "DATASET.NUM_SHOTS": -1,
    "DATASET.NUM_LABELED": -1,
    "DATASET.VAL_PERCENT": 0.1,
    "DATASET.SUBSAMPLE_CLASSES": "all",
    "DATALOADER.NUM_WORKERS": 4,
    "DATALOADER.K_TRANSFORMS": 1,
    "DATALOADER.RETURN_IMG0": False,
    "DATALOADER.TRAIN_X.SAMPLER": "RandomSampler",
    "DATALOADER.TRAIN_X.BATCH_SIZE": 32,
    "DATALOADER.TRAIN_X.N_DOMAIN": 0,
    "DATALOADER.TRAIN_X.N_INS": 16,
    "DATALOADER.TRAIN_U.SAME_AS_X": True,
    "DATALOADER.TEST.SAMPLER": "SequentialSampler",
    "DATALOADER.TEST.BATCH_SIZE": 32,
    "MODEL.INIT_WEIGHTS": "",
    "MODEL.BACKBONE.NAME": "",
    "MODEL.BACKBONE.PRETRAINED": True,
    "MODEL.HEAD.NAME": "",
    "OPTIM.NAME": "adam",
    "OPTIM.LR": 0.0003,
    "OPTIM.WEIGHT_DECAY": 5e-4,
    "OPTIM.MOMENTUM": 0.9,
    "OPTIM.SGD_DAMPNING": 0,
    "OPTIM.SGD_NESTEROV": False,
    "OPTIM.RMSPROP_ALPHA": 0.99,
    "OPTIM.ADAM_BETA1": 0.9,
    "OPTIM.ADAM_BETA2": 0.999,
    "OPTIM.STAGED_LR": False,
    "OPTIM.NEW_LAYERS": (),
    "OPTIM.BASE_LR_MULT": 0.1,
    "OPTIM.LR_SCHEDULER": "single_step",
    "OPTIM.STEPSIZE": (-1,),
    "OPTIM.GAMMA": 0.1,
    "OPTIM.MAX_EPOCH": 10,
    "OPTIM.WARMUP_EPOCH": -1,
    "OPTIM.WARMUP_TYPE": "linear",
    "OPTIM.WARMUP_CONS_LR": 1e-5,
    "OPTIM.WARMUP_MIN_LR": 1e-5,
    "OPTIM.WARMUP_RECOUNT": True,
    "TRAIN.CHECKPOINT_FREQ": 0,
    "TRAIN.PRINT_FREQ": 10,
    "TRAIN.COUNT_ITER": "train_x",
    "TEST.EVALUATOR": "Classification",
    "TEST.PER_CLASS_RESULT": False,
    "TEST.COMPUTE_CMAT": False,
    "TEST.NO_TEST": False,
    "TEST.SPLIT": "test",
    "TEST.FINAL_MODEL": "last_step",
    "TRAINER.NAME": "",
    # ours
    "MODEL.BACKBONE.PATH": "",
    "MODEL.BACKBONE.ALLOW_TINY_FALLBACK": False,
    "DATASET.CACHE_DIR": "",
    "DATASET.SKIP_BAD_IMAGES": False,
}


def lookup(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.fixture
def coop_node(monkeypatch):
    """A method node registered only for the test (the registry list is restored after)."""
    monkeypatch.setattr(config_module, "_CFG_EXTENSIONS", [])

    def extend(cfg):
        cfg.TRAINER.COOP = CfgNode()
        cfg.TRAINER.COOP.N_CTX = 16
        cfg.TRAINER.COOP.CSC = False
        cfg.TRAINER.COOP.CTX_INIT = ""
        cfg.TRAINER.COOP.PREC = "fp16"
        cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"

    register_cfg_extension(extend)
    register_cfg_extension(extend)  # idempotent
    return extend


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("key", sorted(DASSL_DEFAULTS))
def test_defaults(key):
    assert lookup(get_cfg_default(), key) == DASSL_DEFAULTS[key]


def test_defaults_are_fresh_and_extended(coop_node):
    first, second = get_cfg_default(), get_cfg_default()
    first.OPTIM.LR = 1.0
    assert second.OPTIM.LR == 0.0003
    assert first.TRAINER.COOP.N_CTX == 16
    assert config_module._CFG_EXTENSIONS == [coop_node]
    assert type(first.clone()) is CfgNode


def test_merge_order_of_setup_cfg(tmp_path, coop_node):
    dataset_yaml = write(
        tmp_path / "data.yaml",
        "DATASET:\n  NAME: Caltech101\nOPTIM:\n  LR: 0.5\n  MAX_EPOCH: 3\n",
    )
    method_yaml = write(
        tmp_path / "method.yaml",
        "INPUT:\n  SIZE: (32, 32)\n  INTERPOLATION: bicubic\n"
        "OPTIM:\n  LR: 0.002\n  WARMUP_CONS_LR: 1e-5\n  STEPSIZE: [5, 8]\n"
        "TRAINER:\n  COOP:\n    CTX_INIT: a photo of a\n",
    )
    args = argparse.Namespace(
        dataset_config_file=dataset_yaml,
        config_file=method_yaml,
        root="/data",
        output_dir="/out",
        resume="",
        seed=0,
        source_domains=None,
        target_domains=["b"],
        transforms=["normalize"],
        trainer="CoOp",
        backbone="ViT-B/16",
        head="",
        opts=[
            "OPTIM.MAX_EPOCH",
            "7",
            "TRAINER.COOP.N_CTX",
            "4",
            "DATASET.SUBSAMPLE_CLASSES",
            "base",
        ],
    )
    cfg = setup_cfg(args)
    assert cfg.is_frozen()
    assert cfg.DATASET.NAME == "Caltech101"
    assert cfg.OPTIM.LR == 0.002  # method YAML after dataset YAML
    assert cfg.OPTIM.MAX_EPOCH == 7  # opts last
    assert cfg.INPUT.SIZE == (32, 32) and cfg.INPUT.INTERPOLATION == "bicubic"
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and cfg.OPTIM.STEPSIZE == (5, 8)
    assert cfg.TRAINER.COOP.CTX_INIT == "a photo of a" and cfg.TRAINER.COOP.N_CTX == 4
    assert cfg.DATASET.ROOT == "/data" and cfg.OUTPUT_DIR == "/out"
    assert cfg.SEED == 0  # Dassl would drop seed 0
    assert cfg.DATASET.TARGET_DOMAINS == ("b",) and cfg.DATASET.SOURCE_DOMAINS == ()
    assert cfg.INPUT.TRANSFORMS == ("normalize",)
    assert cfg.TRAINER.NAME == "CoOp" and cfg.MODEL.BACKBONE.NAME == "ViT-B/16"
    assert cfg.MODEL.HEAD.NAME == "" and cfg.RESUME == ""
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "base"


@pytest.mark.parametrize("seed, expected", [(None, -1), (-1, -1), (0, 0), (3, 3)])
def test_seed_flag(seed, expected):
    assert setup_cfg(argparse.Namespace(seed=seed)).SEED == expected


def test_minimal_namespace():
    cfg = setup_cfg(argparse.Namespace())
    assert cfg.is_frozen() and cfg.OPTIM.NAME == "adam"


def test_unknown_key_in_file_names_file_and_closest_key(tmp_path, coop_node):
    path = write(tmp_path / "m.yaml", "TRAINER:\n  COOP:\n    NCTX: 4\n")
    with pytest.raises(ConfigError) as info:
        merge_from_file(get_cfg_default(), path)
    assert str(info.value) == (
        f"Unknown config key 'TRAINER.COOP.NCTX' in {path}; did you mean 'TRAINER.COOP.N_CTX'?"
    )


@pytest.mark.parametrize(
    "key, hint",
    [
        ("TRAINER.COOP.NCTX", "TRAINER.COOP.N_CTX"),
        ("OPTIM.MAX_EPOCHS", "OPTIM.MAX_EPOCH"),
        ("TRAIN.MAX_EPOCH", "OPTIM.MAX_EPOCH"),
        ("DATALOADER.TRAINX.BATCH_SIZE", "DATALOADER.TRAIN_X.BATCH_SIZE"),
        ("optim.lr", "OPTIM.LR"),
    ],
)
def test_unknown_key_on_command_line(key, hint, coop_node):
    with pytest.raises(ConfigError) as info:
        merge_from_list(get_cfg_default(), [key, "1"])
    assert str(info.value) == (
        f"Unknown config key '{key}' in the command line; did you mean '{hint}'?"
    )


def test_unknown_key_without_any_similar_key():
    with pytest.raises(ConfigError, match=r"no similar key exists \(top-level sections: INPUT"):
        merge_from_list(get_cfg_default(), ["FOO.BAR", "1"])


@pytest.mark.parametrize(
    "opts, message",
    [
        (["OPTIM.MAX_EPOCH", "ten"], "'OPTIM.MAX_EPOCH' in the command line expects an int"),
        (["OPTIM.MAX_EPOCH", "2.5"], "expects an int (default 10), got float 2.5"),
        (["TEST.NO_TEST", "maybe"], "expects a bool"),
        (["INPUT.SIZE", "224"], "expects a tuple"),
        (["OPTIM", "1"], "is a section; give a full key such as 'OPTIM.NAME'"),
        (["OPTIM.LR", "0.1", "OPTIM.GAMMA"], "KEY VALUE pairs; got 3 items"),
        (["OPTIM.LR", "0.1", "--eval-only"], "'--eval-only' appears among the trailing"),
    ],
)
def test_bad_command_line_values(opts, message):
    with pytest.raises(ConfigError) as info:
        merge_from_list(get_cfg_default(), opts)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_lenient_but_lossless_coercions():
    cfg = get_cfg_default()
    merge_from_list(
        cfg,
        ["OPTIM.WEIGHT_DECAY", "0", "DATASET.NAME", "101", "TEST.NO_TEST", "true",
         "OPTIM.STEPSIZE", "[5, 8]", "MODEL.INIT_WEIGHTS", "None", "OPTIM.LR", "1e-3"],
    )  # fmt: skip
    assert cfg.OPTIM.WEIGHT_DECAY == 0.0 and isinstance(cfg.OPTIM.WEIGHT_DECAY, float)
    assert cfg.DATASET.NAME == "101"
    assert cfg.TEST.NO_TEST is True
    assert cfg.OPTIM.STEPSIZE == (5, 8)
    assert cfg.MODEL.INIT_WEIGHTS is None  # yacs: None is accepted for any key
    assert cfg.OPTIM.LR == 1e-3


def test_file_errors(tmp_path):
    cfg = get_cfg_default()
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=f"Config file not found: {missing}"):
        merge_from_file(cfg, missing)
    with pytest.raises(ConfigError, match="is not valid YAML"):
        merge_from_file(cfg, write(tmp_path / "bad.yaml", "OPTIM: [unclosed\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        merge_from_file(cfg, write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="'OPTIM' in .* is a section"):
        merge_from_file(cfg, write(tmp_path / "s.yaml", "OPTIM: 3\n"))
    with pytest.raises(ConfigError, match="'SEED' in .* is a single value"):
        merge_from_file(cfg, write(tmp_path / "v.yaml", "SEED:\n  A: 1\n"))
    with pytest.raises(ConfigError, match="'OPTIM.LR' in .*w.yaml expects a float"):
        merge_from_file(cfg, write(tmp_path / "w.yaml", "OPTIM:\n  LR: fast\n"))
    merge_from_file(cfg, write(tmp_path / "empty.yaml", ""))
    assert cfg == get_cfg_default()


def test_node_methods_use_checked_merges(tmp_path):
    cfg = get_cfg_default()
    cfg.merge_from_list(["OPTIM.LR", "0.25"])
    assert cfg.OPTIM.LR == 0.25
    with pytest.raises(ConfigError, match="did you mean 'OPTIM.LR'"):
        cfg.merge_from_file(write(tmp_path / "x.yaml", "OPTIM:\n  LRR: 1.0\n"))


def test_frozen_config_refuses_merges():
    cfg = get_cfg_default()
    cfg.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        merge_from_list(cfg, ["OPTIM.LR", "0.1"])
