"""End-to-end runs of a tiny TrainerX: log lines, checkpoints, results.json, resume."""

from __future__ import annotations

import io
import os
import re
import sys

import pytest
import torch
from _engine_helpers import SyntheticTrainer, make_cfg

from ammpl.engine import read_json, set_random_seed, setup_logger
from ammpl.engine.logger import close_logger
from ammpl.engine.trainer import NonFiniteLossError
from ammpl.utils.errors import CheckpointError

BATCH_LINE = re.compile(
    r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] time [\d.]+ \([\d.]+\) "
    r"data [\d.]+ \([\d.]+\) loss [\d.]+ \([\d.]+\) acc [\d.]+ \([\d.]+\) "
    r"lr \d\.\d{4}e[+-]\d\d eta \d+:\d\d:\d\d$"
)


def parse_test_res(log_path: str) -> float | None:
    """CoOp's parse_test_res.py logic for one file: armed by `Finish training`, last match wins."""
    regex = re.compile(r"\* accuracy: ([\.\deE+-]+)%")
    armed, value = False, None
    with open(log_path) as handle:
        for line in handle:
            line = line.strip()
            if line == "Finish training":
                armed = True
            if armed:
                match = regex.search(line)
                if match:
                    value = float(match.group(1))
    return value


def run(cfg, interrupt_at=None, log: bool = True, trainer_cls=SyntheticTrainer):
    """What the CLI does: seed, logger, build, train (the logger is always closed)."""
    set_random_seed(cfg.SEED)
    if log:
        setup_logger(cfg.OUTPUT_DIR)
    try:
        trainer = trainer_cls(cfg)
        trainer.interrupt_at = interrupt_at
        trainer.train()
    finally:
        close_logger()
    return trainer


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted 4-epoch run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    trainer = run(make_cfg(out))
    return out, trainer, weights(trainer)


def test_log_lines_and_final_test(reference_run):
    out, _, _ = reference_run
    text = (out / "log.txt").read_text()
    lines = text.splitlines()
    batch_lines = [line for line in lines if line.startswith("epoch [")]
    # 6 batches per epoch, PRINT_FREQ 2 -> batches 2, 4, 6 of each of the 4 epochs
    assert len(batch_lines) == 12
    assert all(BATCH_LINE.match(line) for line in batch_lines), batch_lines[:2]
    assert batch_lines[0].startswith("epoch [1/4] batch [2/6] ")
    assert "lr 1.0000e-05" in batch_lines[0]  # constant warm-up epoch
    tail = lines[lines.index("Finish training") :]
    assert tail[1:4] == ["Deploy the last-epoch model", "Evaluate on the *test* set", "=> result"]
    assert tail[4] == "* total: 18"
    assert re.fullmatch(r"\* accuracy: \d+\.\d\d%", tail[6])
    assert re.fullmatch(r"Elapsed: \d+:\d\d:\d\d", tail[-1])
    assert "Checkpoint saved to " + os.path.join(str(out), "model", "model.pth.tar-4") in text
    assert "No checkpoint found, train from scratch" in text


def test_finished_folder_holds_what_dassl_leaves(reference_run):
    out, _, _ = reference_run
    try:
        import tensorboard  # noqa: F401

        has_tensorboard = True
    except ImportError:
        has_tensorboard = False
    assert (out / "tensorboard").is_dir() == has_tensorboard
    assert listing(out / "model") == ["checkpoint", "model.pth.tar-4"]
    assert (out / "model" / "checkpoint").read_text() == "model.pth.tar-4\n"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_results_json(reference_run):
    out, _, _ = reference_run
    record = read_json(out / "results.json")
    assert record["trainer"] == "SyntheticTrainer"
    assert record["dataset"] == "Synthetic"
    assert record["seed"] == 1
    assert record["num_shots"] == -1 and record["subsample_classes"] == "all"
    assert record["status"] == "finished" and record["eval_only"] is False
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4]
    assert record["epochs"][0]["lr"] == pytest.approx(1e-5)
    assert record["epochs"][1]["lr"] == pytest.approx(0.05)
    assert {"loss", "acc", "time_s"} <= set(record["epochs"][0])
    test = record["results"]["test"]
    assert test["total"] == 18 and 0 <= test["correct"] <= 18
    assert test["accuracy"] == pytest.approx(100 * test["correct"] / 18)
    assert {"error_rate", "macro_f1"} <= set(test) and test["epoch"] == 4
    assert record["torch_version"] == torch.__version__
    assert "ammpl_version" in record and "git_commit" in record and record["wall_time_s"] >= 0
    assert parse_test_res(str(out / "log.txt")) == pytest.approx(test["accuracy"], abs=0.006)


def test_interrupted_run_resumes_to_identical_weights(reference_run, tmp_path):
    _, reference, reference_weights = reference_run
    cfg = make_cfg(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, interrupt_at=(1, 2))  # third batch of epoch 2 of 4
    assert listing(tmp_path / "model") == ["checkpoint", "model.pth.tar-1"]
    record = read_json(tmp_path / "results.json")
    assert record["status"] == "interrupted"
    assert [e["epoch"] for e in record["epochs"]] == [1]

    resumed = run(cfg)
    for key, value in reference_weights.items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert listing(tmp_path / "model") == ["checkpoint", "model.pth.tar-4"]
    record = read_json(tmp_path / "results.json")
    reference_record = read_json(reference.run_record.path)
    assert [e["loss"] for e in record["epochs"]] == [e["loss"] for e in reference_record["epochs"]]
    assert record["results"]["test"]["accuracy"] == reference_record["results"]["test"]["accuracy"]

    log = (tmp_path / "log.txt").read_text()
    assert re.search(r"^==== new run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ====$", log, re.M)
    assert "Found checkpoint at" in log and "Successfully loaded checkpoint" in log
    assert "epoch [2/4] batch [2/6]" in log.split("==== new run")[1]
    assert "epoch [1/4]" not in log.split("==== new run")[1]


def test_rerun_into_finished_folder_only_tests(tmp_path):
    cfg = make_cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 2})
    first = run(cfg)
    before = weights(first)
    first_log = (tmp_path / "log.txt").read_text()

    again = run(cfg)
    log = (tmp_path / "log.txt").read_text()
    assert log.startswith(first_log)  # appended, never overwritten
    assert not list(tmp_path.glob("log.txt-*"))
    second = log[len(first_log) :]
    assert second.startswith("==== new run ")
    assert "epoch [" not in second
    assert "Finish training" in second and "* accuracy:" in second
    for key, value in before.items():
        assert torch.equal(again.model.state_dict()[key], value)
    assert listing(tmp_path / "model") == ["checkpoint", "model.pth.tar-2"]


def test_checkpoint_freq_keeps_dassl_files(tmp_path):
    cfg = make_cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 5, "TRAIN.CHECKPOINT_FREQ": 2})
    run(cfg, log=False)
    assert listing(tmp_path / "model") == [
        "checkpoint",
        "model.pth.tar-2",
        "model.pth.tar-4",
        "model.pth.tar-5",
    ]


def test_best_val_saves_and_deploys_best_model(tmp_path, capsys):
    cfg = make_cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 3, "TEST.FINAL_MODEL": "best_val"})
    trainer = run(cfg, log=False)
    out = capsys.readouterr().out
    assert out.count("Evaluate on the *val* set") == 3
    assert "Deploy the model with the best val performance" in out
    assert listing(tmp_path / "model") == ["checkpoint", "model-best.pth.tar", "model.pth.tar-3"]
    assert (tmp_path / "model" / "checkpoint").read_text() == "model.pth.tar-3\n"
    best = torch.load(tmp_path / "model" / "model-best.pth.tar", weights_only=True)
    assert best["val_result"] == pytest.approx(trainer.best_result)
    assert "val" in read_json(tmp_path / "results.json")["results"]


def test_eval_only_loads_epoch_and_reports(reference_run, tmp_path, capsys):
    train_dir, reference, reference_weights = reference_run
    cfg = make_cfg(tmp_path / "eval")
    set_random_seed(5)
    trainer = SyntheticTrainer(cfg)
    with pytest.raises(CheckpointError, match=r"model\.pth\.tar-3; saved epochs there: 4"):
        trainer.load_model(str(train_dir), epoch=3)
    with pytest.raises(CheckpointError, match="model-best.pth.tar exists only"):
        trainer.load_model(str(train_dir))
    trainer.load_model(str(train_dir), epoch=4)
    accuracy = trainer.test()
    record = read_json(tmp_path / "eval" / "results.json")
    assert record["eval_only"] is True and record["status"] == "evaluated"
    assert record["results"]["test"]["epoch"] == 4
    assert accuracy == pytest.approx(
        read_json(reference.run_record.path)["results"]["test"]["accuracy"]
    )
    assert f"Load {os.path.join(str(train_dir), 'model', 'model.pth.tar-4')} to model" in (
        capsys.readouterr().out
    )


def test_resume_flag_without_checkpoint_is_an_error(tmp_path):
    cfg = make_cfg(tmp_path / "out", RESUME=str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        run(cfg, log=False)


def test_non_finite_loss_is_reported(tmp_path):
    cfg = make_cfg(tmp_path, **{"OPTIM.LR": 1e30, "OPTIM.WARMUP_EPOCH": -1})
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, batch \d+"):
        run(cfg, log=False)
    assert read_json(tmp_path / "results.json")["status"] == "failed: NonFiniteLossError"


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_terminal_and_never_in_log(tmp_path, monkeypatch):
    terminal_out, terminal_err = _FakeTerminal(), _FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal_out)
    monkeypatch.setattr(sys, "stderr", terminal_err)
    run(make_cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 1}))
    assert "it/s" in terminal_err.getvalue() or "s/it" in terminal_err.getvalue()
    log = (tmp_path / "log.txt").read_text()
    assert "\r" not in log and "it/s" not in log
    assert "epoch [1/1] batch [6/6]" in log and "epoch [1/1] batch [6/6]" in terminal_out.getvalue()


def test_build_data_loader_uses_data_manager(monkeypatch, tmp_path):
    import ammpl.data
    from ammpl.engine import TrainerX

    class FakeManager:
        def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None):
            self.train_loader_x, self.val_loader, self.test_loader = "x", None, "t"
            self.num_classes, self.num_source_domains = 7, 1
            self.lab2cname = {i: str(i) for i in range(7)}
            self.dataset = "d"

    class NoModel(TrainerX):
        def build_model(self):
            pass

    monkeypatch.setattr(ammpl.data, "DataManager", FakeManager, raising=False)
    trainer = NoModel(make_cfg(tmp_path))
    assert (trainer.train_loader_x, trainer.test_loader, trainer.num_classes) == ("x", "t", 7)
    assert trainer.val_loader is None and trainer.train_loader_u is None
    assert isinstance(trainer.dm, FakeManager)


def test_checkpoint_state_dict_hook_saves_and_resumes_a_subset(tmp_path):
    class TrainableOnly(SyntheticTrainer):
        def build_model(self):
            super().build_model()
            self.model[0].requires_grad_(False)  # a "frozen backbone"

        def checkpoint_state_dict(self, name):
            module = self._models[name]
            frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
            return {k: v for k, v in module.state_dict().items() if k not in frozen}

    cfg = make_cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 2})
    with pytest.raises(KeyboardInterrupt):
        run(cfg, interrupt_at=(1, 0), log=False, trainer_cls=TrainableOnly)
    saved = torch.load(tmp_path / "model" / "model.pth.tar-1", weights_only=True)
    assert set(saved["state_dict"]) == {"3.weight", "3.bias"}
    assert "rng_state" in saved and saved["epoch"] == 1
    trainer = run(cfg, log=False, trainer_cls=TrainableOnly)
    assert trainer.start_epoch == 1
