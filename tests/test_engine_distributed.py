"""DDP under torchrun (ammpl/engine/distributed.py): gloo on CPU, ranks as forked processes.

The end-to-end runs use CoOp and MaPLe on the tiny backbone with deterministic transforms,
so a step depends only on the images of the global batch: 2 processes must then end with
the learnable tensors of 1 process (float summation order aside: relative tolerance 1e-5;
MaPLe, whose fp16-rounded prompts make gradients sum in fp16, within 1% of what its last
epoch changed) and with identical test metrics, equal to a plain single-process evaluation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import ammpl.cli.train  # noqa: F401  (imported before forking: the ranks start warm)
import ammpl.data.datasets  # noqa: F401
import ammpl.trainers  # noqa: F401
from ammpl.cli.train import main as train_main
from ammpl.engine import get_cfg_default
from ammpl.engine.distributed import (
    ShardedEvalBatches,
    ShardedTrainBatches,
    rank_info_from_env,
)
from ammpl.engine.evaluator import Classification
from ammpl.utils import ConfigError
from tests._distributed_helpers import recorded_writes, run_ranks

REL_TOL = 1e-5  # float32 gradients summed in another order over 2 epochs of SGD
# MaPLe rounds its prompts to fp16 in every forward, per sequence (quirk Q5): gradients are
# summed in fp16, in another order on 2 processes, so its differences are measured against
# what the last epoch changed: without synchronisation they would be of that order
MOVEMENT_TOL = 0.01


# ------------------------------------------------------------------------------ samplers
@pytest.mark.parametrize(("num", "batch", "world"), [(20, 3, 2), (20, 4, 2), (17, 5, 3), (7, 9, 3)])
def test_rank_shares_make_up_the_one_process_batches(num, batch, world):
    drop_last = num >= batch  # Dassl's rule
    one = ShardedTrainBatches(num, batch, 0, 1, seed=3, drop_last=drop_last)
    shards = [
        ShardedTrainBatches(num, batch, r, world, seed=3, drop_last=drop_last) for r in range(world)
    ]
    for epoch in (0, 1):
        one.set_epoch(epoch)
        for shard in shards:
            shard.set_epoch(epoch)
        expected = list(one)
        per_rank = [list(shard) for shard in shards]
        assert all(len(steps) == len(expected) for steps in per_rank)
        for step, batch_indices in enumerate(expected):
            parts = [steps[step] for steps in per_rank]
            assert sorted(i for part in parts for i in part) == sorted(batch_indices)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    one.set_epoch(0)
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first  # a new shuffle every epoch


def test_a_batch_smaller_than_the_process_count_is_a_one_line_error():
    with pytest.raises(ConfigError, match="cannot be split over 2 processes"):
        ShardedTrainBatches(16, 1, 0, 2, seed=1)  # CoCoOp's BATCH_SIZE 1


def test_eval_shards_are_whole_one_process_batches_in_order():
    for num, batch, world in [(15, 4, 2), (10, 100, 2), (23, 5, 3), (3, 2, 4)]:
        shards = [list(ShardedEvalBatches(num, batch, r, world)) for r in range(world)]
        flat = [b for shard in shards for b in shard]
        expected = [list(range(s, min(s + batch, num))) for s in range(0, num, batch)]
        assert flat == expected


def test_rank_info_needs_the_whole_torchrun_environment():
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "x"}
    assert rank_info_from_env(env) is None
    info = rank_info_from_env({**env, "MASTER_PORT": "1"})
    assert (info.rank, info.world_size, info.local_rank) == (1, 2, 1)
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        rank_info_from_env({**env, "MASTER_PORT": "1", "RANK": "2"})


def test_gathered_shards_give_the_one_process_metrics():
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(23, 5, generator=gen), torch.randint(0, 5, (23,), generator=gen)
    whole = Classification(cfg)
    whole.process(logits, labels)
    shards = []
    for start, stop in [(0, 8), (8, 8), (8, 23)]:  # an empty shard included
        part = Classification(cfg)
        part.process(logits[start:stop], labels[start:stop])
        shards.append(part.shard_state())
    merged = Classification(cfg)
    merged.process(logits[:3], labels[:3])  # stale state is replaced
    merged.load_shards(shards)
    assert (merged.total, merged.correct) == (whole.total, whole.correct)
    assert merged.evaluate() == whole.evaluate()


# ------------------------------------------------------------------------------ end to end
REPO_ROOT = Path(__file__).resolve().parents[1]
COOP_CONFIG = ("CoOp", "vit_b16_ep50", "TRAINER.COOP.N_CTX", 4, "OPTIM.LR", 0.2)
MAPLE_CONFIG = ("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "TRAINER.MAPLE.PROMPT_DEPTH", 2)


def train_args(root: Path, out: Path, method: tuple = COOP_CONFIG, *extra) -> list:
    trainer, config, *opts = method
    return [
        "--root", root, "--seed", 1, "--trainer", trainer,
        "--dataset-config-file", REPO_ROOT / "configs/datasets/caltech101.yaml",
        "--config-file", REPO_ROOT / f"configs/trainers/{trainer}/{config}.yaml",
        "--output-dir", out, *extra,
        "USE_CUDA", False,  # gloo on CPU even on a GPU machine (bench/gpu_check.sh)
        "MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", 0, "OPTIM.MAX_EPOCH", 2,
        "DATASET.NUM_SHOTS", 4, *opts,
        "DATALOADER.TRAIN_X.BATCH_SIZE", 3,  # 2 processes: 2 + 1 images per step
        "DATALOADER.TEST.BATCH_SIZE", 4, "INPUT.TRANSFORMS", "['normalize']",
        "TRAIN.CHECKPOINT_FREQ", 1,
    ]  # fmt: skip


def learned(out: Path, folder: str = "prompt_learner", epoch: int = 2) -> dict:
    state = torch.load(out / folder / f"model.pth.tar-{epoch}", weights_only=True)
    return state["state_dict"]


def final_test_metrics(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]["test"]


def assert_same_tensors(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        error = (actual[key].float() - value.float()).abs().max().item()
        scale = max(value.float().abs().max().item(), 1e-12)
        assert error <= REL_TOL * scale, f"{key}: max error {error:.3g} (scale {scale:.3g})"


@pytest.fixture(scope="module")
def coop_runs(benchmark_root, tmp_path_factory):
    """CoOp trained by 1 and by 2 processes; every rank records what it writes."""
    tmp = tmp_path_factory.mktemp("ddp")
    runs = {}
    for world in (1, 2):
        out = tmp / f"world{world}"
        report = tmp_path_factory.mktemp("report") / "writes"
        codes = run_ranks(world, train_args(benchmark_root, out), [tmp, benchmark_root], report)
        assert codes == [0] * world
        runs[world] = (out, report)
    return runs


def test_two_processes_learn_what_one_process_learns(coop_runs):
    (one, _), (two, _) = coop_runs[1], coop_runs[2]
    assert not torch.equal(learned(two)["ctx"], learned(two, epoch=1)["ctx"])  # it trained
    assert_same_tensors(learned(two), learned(one))
    assert final_test_metrics(two) == final_test_metrics(one)
    record = json.loads((two / "results.json").read_text())
    assert record["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
        "global_batch": 3,
        "eval_sharded": True,
    }
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]


def test_the_gathered_test_metrics_are_those_of_a_plain_process(
    coop_runs, benchmark_root, tmp_path
):
    two, _ = coop_runs[2]
    out = tmp_path / "eval"
    extra = ("--eval-only", "--model-dir", two, "--load-epoch", 2)
    assert train_main([str(a) for a in train_args(benchmark_root, out, COOP_CONFIG, *extra)]) == 0
    plain = final_test_metrics(out)
    assert {k: plain[k] for k in ("accuracy", "macro_f1", "total", "correct")} == {
        k: final_test_metrics(two)[k] for k in ("accuracy", "macro_f1", "total", "correct")
    }


def test_only_rank_zero_writes(coop_runs):
    two, report = coop_runs[2]
    assert recorded_writes(report, 1) == []
    written = "\n".join(recorded_writes(report, 0))  # the recorder sees rank 0's files
    for name in ("log.txt", "results.json", "model.pth.tar-2", "checkpoint"):
        assert name in written


def test_log_holds_one_copy_of_each_line(coop_runs):
    two, _ = coop_runs[2]
    log = (two / "log.txt").read_text()
    assert log.count("=> result") == 1
    assert log.count("Finish training") == 1
    assert "DDP: 2 processes, global batch 3" in log


def test_resume_continues_the_same_two_process_run(coop_runs, benchmark_root, tmp_path):
    two, _ = coop_runs[2]
    out = tmp_path / "resumed"
    shutil.copytree(two, out)
    folder = out / "prompt_learner"
    (folder / "model.pth.tar-2").unlink()
    (folder / "checkpoint").write_text("model.pth.tar-1\n")
    codes = run_ranks(2, train_args(benchmark_root, out, COOP_CONFIG, "--resume", out))
    assert codes == [0, 0]
    assert "Successfully loaded checkpoint" in (out / "log.txt").read_text()
    assert torch.equal(learned(out)["ctx"], learned(two)["ctx"])
    assert final_test_metrics(out)["accuracy"] == final_test_metrics(two)["accuracy"]


def test_maple_registers_its_whole_model_yet_only_prompts_are_synchronised(
    benchmark_root, tmp_path
):
    """MaPLe registers the whole CLIP wrapper (frozen towers inside): DDP sees only its
    prompts and projections, and 2 processes still learn what 1 learns."""
    states = []
    for world in (1, 2):
        out = tmp_path / f"maple{world}"
        assert run_ranks(world, train_args(benchmark_root, out, MAPLE_CONFIG)) == [0] * world
        states.append(learned(out, "MultiModalPromptLearner"))
    epoch1 = learned(tmp_path / "maple1", "MultiModalPromptLearner", epoch=1)
    assert states[1].keys() == states[0].keys()
    for key, value in states[0].items():
        moved = (value.float() - epoch1[key].float()).abs().max().item()
        error = (states[1][key].float() - value.float()).abs().max().item()
        assert error <= MOVEMENT_TOL * moved, f"{key}: error {error:.3g}, moved {moved:.3g}"
    assert (states[0]["prompt_learner.ctx"] - epoch1["prompt_learner.ctx"]).abs().max() > 1e-3


def test_more_processes_than_batch_images_stop_before_anything_is_built(benchmark_root, tmp_path):
    out = tmp_path / "cocoop"
    args = train_args(benchmark_root, out) + ["DATALOADER.TRAIN_X.BATCH_SIZE", 1]
    assert run_ranks(2, args) == [2, 2]
    assert not (out / "results.json").exists()


def test_order_dependent_evaluation_runs_whole_on_every_rank(benchmark_root, tmp_path):
    """AMMPL's TEST_MASK sample draws masks batch after batch: 2 processes then evaluate the
    whole split each, and report what one plain process reports."""
    method = ("AMMPL", "vit_b16_c4_ep5_batch4_ctxv1", "TRAINER.AMMPL.TEST_MASK", "sample")
    trained = tmp_path / "trained"
    assert train_main([str(a) for a in train_args(benchmark_root, trained, method)]) == 0
    evaluate = ("--eval-only", "--model-dir", trained, "--load-epoch", 2)
    plain, two = tmp_path / "plain", tmp_path / "two"
    assert train_main([str(a) for a in train_args(benchmark_root, plain, method, *evaluate)]) == 0
    assert run_ranks(2, train_args(benchmark_root, two, method, *evaluate)) == [0, 0]
    assert final_test_metrics(two) == final_test_metrics(plain)
    assert json.loads((two / "results.json").read_text())["distributed"]["eval_sharded"] is False


def register_coop_with_an_idle_tensor() -> None:
    """In a rank only: CoOp with a trainable tensor that no step uses."""
    from torch import nn

    from ammpl.engine import TRAINER_REGISTRY
    from ammpl.trainers.coop import CoOp

    class CoOpWithIdleTensor(CoOp):
        def build_custom_clip(self, classnames, clip_model):
            model = super().build_custom_clip(classnames, clip_model)
            model.prompt_learner.idle = nn.Parameter(torch.zeros(3))
            return model

    TRAINER_REGISTRY.register(CoOpWithIdleTensor)


def test_a_trainable_tensor_left_out_of_a_step_is_a_one_line_error(benchmark_root, tmp_path, capfd):
    args = train_args(benchmark_root, tmp_path / "idle")
    args[args.index("CoOp")] = "CoOpWithIdleTensor"
    codes = run_ranks(2, args, prepare=register_coop_with_an_idle_tensor)
    assert codes == [2, 2]
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "got no gradient in the previous step" in errors[0]
