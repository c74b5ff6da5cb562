"""ammpl's trainers inside a CoOp fork on Dassl (`ammpl.integrations.dassl`).

Dassl cannot be installed here: `tests/_fake_dassl` is a small fake written from Dassl's
contract (DASSL_API.md), put on sys.path only inside these tests. A "fork" is simulated the
way CoOp's train.py builds its config: Dassl's defaults, the fork's own TRAINER.COOP /
TRAINER.COCOOP nodes, then our `extend_cfg`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from yacs.config import CfgNode as CN

from ammpl.engine import TrainerBase as OurTrainerBase
from ammpl.engine import build_trainer as our_build_trainer
from ammpl.engine import set_random_seed
from ammpl.engine.config import get_cfg_default as our_cfg_default
from ammpl.integrations.dassl import (
    NOT_INSTALLED,
    dassl_trainer_class,
    extend_cfg,
    register_ammpl_trainers,
)
from ammpl.trainers.ammpl import AMMPL
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import CoOp
from ammpl.utils import AmmplError, ConfigError

FAKE_DASSL = Path(__file__).resolve().parent / "_fake_dassl"
DATASET_CONFIG = "configs/datasets/caltech101.yaml"
AMMPL_CONFIG = "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"
COOP_CONFIG = "configs/trainers/CoOp/vit_b16_ep50.yaml"
TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", 0]
ONE_EPOCH = TINY + ["OPTIM.MAX_EPOCH", 1, "DATASET.NUM_SHOTS", 2]


def _dassl_modules() -> dict:
    return {n: m for n, m in sys.modules.items() if n == "dassl" or n.startswith("dassl.")}


@contextlib.contextmanager
def fake_dassl():
    """A freshly imported fake Dassl (empty registry), importable only inside the block;
    whatever `dassl` modules were imported before come back afterwards."""
    previous = _dassl_modules()
    for name in previous:
        del sys.modules[name]
    sys.path.insert(0, str(FAKE_DASSL))
    try:
        yield SimpleNamespace(
            engine=importlib.import_module("dassl.engine"),
            config=importlib.import_module("dassl.config"),
        )
    finally:
        sys.path.remove(str(FAKE_DASSL))
        for name in _dassl_modules():
            del sys.modules[name]
        sys.modules.update(previous)


def register_fork_coop(engine) -> type:
    """The fork's own CoOp trainer (registered by its `import trainers.coop`)."""

    @engine.TRAINER_REGISTRY.register()
    class CoOp(engine.TrainerX):
        pass

    return CoOp


def fork_extend_cfg(cfg: CN) -> None:
    """CoOp's train.py `extend_cfg`, plus the one line this integration asks for."""
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CSC = False
    cfg.TRAINER.COOP.CTX_INIT = ""
    cfg.TRAINER.COOP.PREC = "fp16"
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    extend_cfg(cfg)


def settings(root, out, trainer: str, seed: int, opts: list) -> list[str]:
    """The train.py flags as KEY VALUE pairs, then the trailing opts."""
    pairs = ["DATASET.ROOT", root, "OUTPUT_DIR", out, "SEED", seed, "TRAINER.NAME", trainer]
    return [str(item) for item in pairs + list(opts)]


def merged(cfg, repo_root: Path, config: str, pairs: list[str]):
    """train.py's merge order (dataset yaml → method yaml → flags → opts), then freeze;
    Dassl's yacs node and ours both have these two methods."""
    cfg.merge_from_file(str(repo_root / DATASET_CONFIG))
    cfg.merge_from_file(str(repo_root / config))
    cfg.merge_from_list(pairs)
    cfg.freeze()
    return cfg


def fork_cfg(dassl, repo_root, root, out, trainer, config, seed=1, opts=ONE_EPOCH):
    cfg = dassl.config.get_cfg_default()
    fork_extend_cfg(cfg)
    return merged(cfg, repo_root, config, settings(root, out, trainer, seed, opts))


def our_trainer(repo_root, root, out, trainer, config, seed=2, opts=ONE_EPOCH):
    pairs = settings(root, out, trainer, seed, opts)
    cfg = merged(our_cfg_default(), repo_root, config, pairs)
    set_random_seed(cfg.SEED)
    return our_build_trainer(cfg)


def dassl_trainer(dassl, cfg):
    set_random_seed(cfg.SEED)  # train.py seeds before building the trainer
    return dassl.engine.build_trainer(cfg)


def predictions(trainer, batch) -> torch.Tensor:
    trainer.set_model_mode("eval")
    return trainer.model_inference(batch["img"])


@pytest.fixture(scope="module")
def dassl():
    """One fake Dassl for the module: a fork CoOp, then ours (AMMPL_CoOp asked for)."""
    with fake_dassl() as fake:
        register_fork_coop(fake.engine)
        fake.available = register_ammpl_trainers()
        fake.available += register_ammpl_trainers(["AMMPL_CoOp"])
        yield fake


@pytest.fixture(scope="module")
def ammpl_run(dassl, repo_root, benchmark_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("dassl_ammpl")
    cfg = fork_cfg(dassl, repo_root, benchmark_root, out, "AMMPL", AMMPL_CONFIG)
    trainer = dassl_trainer(dassl, cfg)
    trainer.train()
    return trainer, out


def test_registers_every_clip_trainer_and_keeps_the_forks_coop(dassl):
    registry = dassl.engine.TRAINER_REGISTRY
    assert dassl.available[0] == "AMMPL"
    assert {"CoCoOp", "MaPLe", "IVLP", "VPT", "ZeroshotCLIP", "AMMPL_CoOp"} <= set(dassl.available)
    assert "CoOp" not in dassl.available
    assert registry.get("CoOp").__module__ == __name__  # the fork's own, untouched
    assert registry.get("AMMPL_CoOp").ammpl_trainer is CoOp
    assert register_ammpl_trainers(["AMMPL"]) == ["AMMPL"]  # again: a no-op, no error


def test_the_built_trainer_runs_on_dassls_engine_not_ours(ammpl_run, dassl):
    trainer, _ = ammpl_run
    assert isinstance(trainer, dassl.engine.TrainerX)
    assert not isinstance(trainer, OurTrainerBase)
    assert type(trainer).ammpl_trainer is AMMPL
    assert not hasattr(trainer, "run_record")


def test_training_leaves_dassl_checkpoints_and_no_results_json(ammpl_run):
    trainer, out = ammpl_run
    folder = out / "prompt_learner"
    assert (folder / "model.pth.tar-1").is_file()
    assert (folder / "checkpoint").read_text().strip() == "model.pth.tar-1"
    assert (folder / "ammpl_meta.json").is_file()  # AMMPL.save_model's super() reached Dassl's
    assert not (out / "results.json").exists()
    state = torch.load(folder / "model.pth.tar-1", weights_only=True)["state_dict"]
    assert set(state) == set(trainer.model.prompt_learner.state_dict())  # Dassl: everything


def test_our_engine_predicts_the_same_from_the_dassl_checkpoint(
    ammpl_run, repo_root, benchmark_root, tmp_path
):
    trainer, out = ammpl_run
    ours = our_trainer(repo_root, benchmark_root, tmp_path, "AMMPL", AMMPL_CONFIG)
    batch = next(iter(trainer.test_loader))
    assert not torch.equal(predictions(ours, batch), predictions(trainer, batch))
    ours.load_model(str(out), epoch=1)
    torch.testing.assert_close(
        predictions(ours, batch), predictions(trainer, batch), rtol=0, atol=0
    )
    assert ours.test() == pytest.approx(trainer.test())


def test_a_second_dassl_trainer_loads_and_resumes_the_checkpoint(
    ammpl_run, dassl, repo_root, benchmark_root, tmp_path
):
    trainer, out = ammpl_run
    batch = next(iter(trainer.test_loader))
    opts = TINY + ["OPTIM.MAX_EPOCH", 2, "DATASET.NUM_SHOTS", 2, "RESUME", str(out)]
    cfg = fork_cfg(dassl, repo_root, benchmark_root, tmp_path, "AMMPL", AMMPL_CONFIG, 2, opts)
    resumed = dassl_trainer(dassl, cfg)
    resumed.load_model(str(out), epoch=1)
    torch.testing.assert_close(predictions(resumed, batch), predictions(trainer, batch))

    resumed.before_train()  # Dassl's resume: strict full state dict, optimiser, scheduler
    assert resumed.start_epoch == 1
    assert resumed.get_current_lr() == pytest.approx(0.0035)  # epoch 2 of the warm-up schedule
    resumed.train()
    saved = sorted(p.name for p in (tmp_path / "prompt_learner").glob("model.pth.tar-*"))
    assert saved == ["model.pth.tar-2"]


def test_dassls_loop_trains_to_the_same_weights_as_ours(
    ammpl_run, repo_root, benchmark_root, tmp_path
):
    trainer, _ = ammpl_run
    ours = our_trainer(repo_root, benchmark_root, tmp_path, "AMMPL", AMMPL_CONFIG, seed=1)
    initial = {k: v.clone() for k, v in ours.model.prompt_learner.state_dict().items()}
    ours.train()
    expected = ours.model.prompt_learner.state_dict()
    assert not torch.equal(expected["ctx"], initial["ctx"])
    for key, value in trainer.model.prompt_learner.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def test_our_coop_under_a_prefixed_name_trains_keeps_the_best_and_swaps_checkpoints(
    dassl, repo_root, benchmark_root, tmp_path
):
    out, ours_out = tmp_path / "dassl", tmp_path / "ours"
    opts = ONE_EPOCH + ["TEST.FINAL_MODEL", "best_val"]
    cfg = fork_cfg(dassl, repo_root, benchmark_root, out, "AMMPL_CoOp", COOP_CONFIG, opts=opts)
    trainer = dassl_trainer(dassl, cfg)
    assert type(trainer).__name__ == "AMMPL_CoOp" and isinstance(trainer, dassl.engine.TrainerX)
    trainer.train()  # ends by loading model-best.pth.tar through our load_model
    saved = sorted(p.name for p in (out / "prompt_learner").glob("model*"))
    assert saved == ["model-best.pth.tar", "model.pth.tar-1"]

    batch = next(iter(trainer.test_loader))
    trained = predictions(trainer, batch)
    ours = our_trainer(repo_root, benchmark_root, ours_out, "CoOp", COOP_CONFIG)
    untrained = predictions(ours, batch)
    assert not torch.equal(untrained, trained)
    ours.save_model(0, str(ours_out))  # our format: trainable tensors and buffers only

    ours.load_model(str(out), epoch=1)  # Dassl's checkpoint → our engine
    torch.testing.assert_close(predictions(ours, batch), trained, rtol=0, atol=0)
    trainer.load_model(str(ours_out), epoch=1)  # ours → the Dassl-built trainer
    torch.testing.assert_close(predictions(trainer, batch), untrained, rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, config",
    [
        ("CoCoOp", "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
        ("MaPLe", "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"),
        ("IVLP", "configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml"),
        ("VPT", "configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml"),
    ],
)
def test_other_clip_trainers_train_and_reload_on_dassl(
    name, config, dassl, repo_root, benchmark_root, tmp_path
):
    opts = TINY + ["OPTIM.MAX_EPOCH", 1, "DATASET.NUM_SHOTS", 1, "DATALOADER.TRAIN_X.BATCH_SIZE", 5]
    cfg = fork_cfg(dassl, repo_root, benchmark_root, tmp_path, name, config, opts=opts)
    trainer = dassl_trainer(dassl, cfg)
    trainer.train()
    batch = next(iter(trainer.test_loader))
    before = predictions(trainer, batch)
    trainer.load_model(str(tmp_path), epoch=1)  # the full state dict Dassl saved
    torch.testing.assert_close(predictions(trainer, batch), before)


def test_zero_shot_clip_evaluates_on_dassl(dassl, repo_root, benchmark_root, tmp_path):
    cfg = fork_cfg(dassl, repo_root, benchmark_root, tmp_path, "ZeroshotCLIP", COOP_CONFIG)
    trainer = dassl_trainer(dassl, cfg)
    trainer.load_model("")  # Dassl's train.py --eval-only without --model-dir
    assert 0.0 <= trainer.test() <= 100.0


def test_a_config_without_extend_cfg_is_a_one_line_error(
    dassl, repo_root, benchmark_root, tmp_path
):
    cfg = dassl.config.get_cfg_default()
    cfg.TRAINER.NAME = "AMMPL"
    cfg.freeze()
    with pytest.raises(
        ConfigError, match=r"TRAINER\.AMMPL.*ammpl\.integrations\.dassl\.extend_cfg"
    ):
        dassl.engine.build_trainer(cfg)


def test_a_name_the_fork_registered_is_skipped_with_a_note(capsys):
    with fake_dassl() as fake:
        fork_coop = register_fork_coop(fake.engine)
        available = register_ammpl_trainers(["CoOp", "AMMPL"])
        assert available == ["AMMPL"]
        assert fake.engine.TRAINER_REGISTRY.get("CoOp") is fork_coop
    notes = [line for line in capsys.readouterr().out.splitlines() if "'CoOp'" in line]
    assert len(notes) == 1 and "AMMPL_CoOp" in notes[0]


def test_an_unknown_trainer_name_suggests_the_closest():
    with fake_dassl(), pytest.raises(ConfigError, match="Did you mean 'AMMPL_CoOp'"):
        register_ammpl_trainers(["AMMPL_CoOpp"])


def test_without_dassl_the_error_says_what_to_use_instead(monkeypatch):
    for name in _dassl_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dassl", None)  # `import dassl` fails
    with pytest.raises(AmmplError) as error:
        register_ammpl_trainers()
    assert str(error.value) == NOT_INSTALLED
    assert NOT_INSTALLED.startswith("the original Dassl is not installed")
    with pytest.raises(AmmplError, match="not installed"):
        dassl_trainer_class("AMMPL")


def test_extend_cfg_adds_our_nodes_and_keeps_the_forks_values():
    with fake_dassl() as fake:
        cfg = fake.config.get_cfg_default()
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 8  # the fork's own value
    cfg.TRAINER.COOP.FORK_ONLY = "kept"
    added = extend_cfg(cfg)

    ours = our_cfg_default()
    assert cfg.TRAINER.COOP.N_CTX == 8 and cfg.TRAINER.COOP.FORK_ONLY == "kept"
    assert cfg.TRAINER.COOP.PREC == ours.TRAINER.COOP.PREC  # missing inside: added
    assert dict(cfg.TRAINER.AMMPL) == dict(ours.TRAINER.AMMPL)
    assert type(cfg.TRAINER.AMMPL) is CN  # the fork's node class, not ours
    assert cfg.MODEL.BACKBONE.PATH == "" and cfg.MODEL.BACKBONE.ALLOW_TINY_FALLBACK is False
    assert {"TRAINER.AMMPL", "TRAINER.MAPLE", "TRAINER.COOP.PREC", "MODEL.BACKBONE.PATH"} <= set(
        added
    )
    assert "TRAINER.COOP.N_CTX" not in added and "TRAINER.NAME" not in added
    assert extend_cfg(cfg) == []  # idempotent

    cfg.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        extend_cfg(cfg)


class Toy(CLIPPromptTrainer):
    """Methods that reach the parent class through zero-argument super()."""

    def requested_precision(self) -> str:
        return "toy+" + super().requested_precision()

    @torch.no_grad()
    def decorated(self) -> str:
        return super().requested_precision()

    @property
    def via_property(self) -> str:
        return super().requested_precision()


def test_super_calls_reach_the_twin_parents_and_the_original_still_works():
    with fake_dassl() as fake:
        twin = dassl_trainer_class(Toy, "ToyOnDassl")
        assert twin.__name__ == "ToyOnDassl" and issubclass(twin, fake.engine.TrainerX)
        assert not issubclass(twin, OurTrainerBase)
    cfg = SimpleNamespace(TRAINER={})
    for cls in (twin, Toy):
        trainer = object.__new__(cls)  # no constructor: only the methods are under test
        trainer.cfg = cfg
        assert trainer.requested_precision() == "toy+fp32"
        assert trainer.decorated() == "fp32" and trainer.via_property == "fp32"
