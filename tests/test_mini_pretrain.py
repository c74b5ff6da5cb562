"""Pretraining recipes of the mini CLIP: caption truth, curricula, resumable runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ammpl.mini.pretrain import (
    Recipe,
    caption_truth,
    contrastive_loss,
    draw_batch,
    main,
    mask_patches,
    pretrain,
    sample_batch,
)
from ammpl.mini.world import Scene, caption, describe, render, sample_scene
from ammpl.utils.errors import CheckpointError

TINY = Recipe(steps=6, batch_size=8, warmup=2, seed=3, loss="truth", simple=(1.0, 0.0),
              shape_only=(0.5, 0.0))  # fmt: skip


def _scene(shape: str, colour: str, count: int = 1) -> Scene:
    return Scene(shape, colour, "plain", "large" if count == 1 else "small", count, "dark")


def test_a_caption_is_true_of_every_image_it_describes():
    scenes = [_scene("star", "red"), _scene("star", "blue"), _scene("ring", "red"),
              _scene("star", "red", count=2)]  # fmt: skip
    named = [{"shape": "star", "count": "1"}, {"colour": "blue", "count": "1"},
             {"shape": "ring", "colour": "red", "count": "1"},
             {"shape": "star", "count": "2"}]  # fmt: skip
    truth = caption_truth(scenes, named)
    expected = np.array(
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool
    )  # "a star" is true of the red and the blue single star, never of two stars
    assert (truth == expected).all()


def test_describe_names_what_it_says_and_caption_draws_as_before():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(50):
        scene = sample_scene(rng_a)
        assert sample_scene(rng_b) == scene
        render(scene, rng_a), render(scene, rng_b)
        text, named = describe(scene, rng_a)
        assert caption(scene, rng_b) == text
        for factor, value in named.items():
            if factor != "count":
                assert value in text
    text, named = describe(_scene("moon", "red"), np.random.default_rng(0), shape_only=True)
    assert "moon" in text and "red" not in text and set(named) == {"shape", "count"}


def test_the_default_batch_is_the_original_recipes_draw():
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    images, texts = sample_batch(rng_a, 5)
    batch = draw_batch(rng_b, 5)
    assert torch.equal(batch.tensors()[0], images) and torch.equal(batch.tensors()[1], texts)
    assert batch.truth.diagonal().all()
    simple = draw_batch(np.random.default_rng(1), 6, simple=1.0, shape_only=1.0)
    assert simple.truth.diagonal().all()


def test_truth_loss_equals_clip_loss_when_only_the_diagonal_is_true():
    from ammpl.mini.model import build_mini_clip

    model = build_mini_clip(0)
    images, texts = sample_batch(np.random.default_rng(0), 4)
    with torch.no_grad():
        plain = contrastive_loss(model, images, texts)
        eye = contrastive_loss(model, images, texts, torch.eye(4, dtype=torch.bool))
    torch.testing.assert_close(plain, eye)


def test_a_pool_is_the_same_however_many_processes_render_it(monkeypatch):
    from ammpl.mini.pretrain import ScenePool

    monkeypatch.setattr(ScenePool, "CHUNK", 4)
    here = ScenePool.render(seed=2, size=11, with_simple=True, workers=0)
    there = ScenePool.render(seed=2, size=11, with_simple=True, workers=2)
    assert np.array_equal(here.pixels, there.pixels) and here.scenes == there.scenes
    assert np.array_equal(here.simple_pixels, there.simple_pixels)
    assert len(here.scenes) == len(here.simple_scenes) == 11
    assert {s.background for s in here.simple_scenes} == {"dark"}
    batch = here.draw(np.random.default_rng(0), 8, simple=0.5, shape_only=0.5)
    assert batch.pixels.shape == (8, 64, 64, 3) and batch.truth.diagonal().all()


@pytest.mark.parametrize("workers", [0, 1])
def test_an_interrupted_run_resumed_gives_the_same_weights(tmp_path, workers):
    torch.set_num_threads(1)
    straight, losses = pretrain(recipe=TINY, log_every=0)
    state = tmp_path / "run.state.pt"
    pretrain(recipe=TINY, log_every=0, state_file=state, stop_after=2, workers=workers)
    resumed, resumed_losses = pretrain(
        recipe=TINY, log_every=0, state_file=state, resume=True, workers=workers
    )
    assert resumed_losses == losses
    for (key, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key


def test_patch_mask_hides_whole_patches_up_to_the_share_under_one_fill_per_image():
    torch.manual_seed(0)
    images = torch.randn(64, 3, 64, 64)
    assert torch.equal(mask_patches(images, 0.0, 8), images)
    masked = mask_patches(images, 0.5, 8)
    changed = (masked != images).any(dim=1)  # (N, H, W)
    patches = changed.view(64, 8, 8, 8, 8).any(dim=(2, 4))  # (N, rows, cols)
    # a patch is hidden whole or not at all, and every image keeps at least half of them
    assert torch.equal(changed, patches.repeat_interleave(8, 1).repeat_interleave(8, 2))
    shares = patches.float().mean(dim=(1, 2))
    assert shares.max() <= 0.75 and 0.15 < shares.mean() < 0.35  # U(0, 0.5): 0.25 on average
    # one fill patch per image, repeated wherever it hides something
    image = int(shares.argmax())
    rows, cols = patches[image].nonzero()[:2].unbind(1)
    first = masked[image, :, rows[0] * 8 : rows[0] * 8 + 8, cols[0] * 8 : cols[0] * 8 + 8]
    second = masked[image, :, rows[1] * 8 : rows[1] * 8 + 8, cols[1] * 8 : cols[1] * 8 + 8]
    assert torch.equal(first, second)


def test_a_patch_masked_run_resumed_gives_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    recipe = Recipe(**{**TINY.__dict__, "patch_mask": 0.5})
    straight, losses = pretrain(recipe=recipe, log_every=0)
    plain, plain_losses = pretrain(recipe=TINY, log_every=0)
    assert losses != plain_losses  # the masks reach the loss
    state = tmp_path / "run.state.pt"
    pretrain(recipe=recipe, log_every=0, state_file=state, stop_after=3)
    resumed, resumed_losses = pretrain(recipe=recipe, log_every=0, state_file=state, resume=True)
    assert resumed_losses == losses
    for (key, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key


def test_resuming_with_other_settings_or_no_state_is_a_one_line_error(tmp_path, capsys):
    state = tmp_path / "run.state.pt"
    with pytest.raises(CheckpointError, match="no pretraining state"):
        pretrain(recipe=TINY, log_every=0, state_file=state, resume=True)
    pretrain(recipe=TINY, log_every=0, state_file=state, stop_after=1)
    other = Recipe(**{**TINY.__dict__, "lr": 1e-3})
    with pytest.raises(CheckpointError, match=r"other settings \(lr\)"):
        pretrain(recipe=other, log_every=0, state_file=state, resume=True)
    out = tmp_path / "w.pt"
    assert main(["--steps", "2", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no pretraining state" in err and len(err.strip().splitlines()) == 1


class _RunsCode:
    """Unpickling this creates a file: what a hostile state file could do instead."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_state_file_is_read_without_running_code_from_it(tmp_path, capsys):
    from ammpl.mini import probe

    state = tmp_path / "run.state.pt"
    pretrain(recipe=TINY, log_every=0, state_file=state, stop_after=1)
    saved = torch.load(state, weights_only=False)
    assert isinstance(saved["torch"], str) and type(saved["torch"]) is str
    # a state written before torch's version was stored as a str still resumes
    torch.save({**saved, "torch": torch.__version__}, state)
    pretrain(recipe=TINY, log_every=0, state_file=state, resume=True, stop_after=2)
    marker = tmp_path / "ran"
    torch.save({**saved, "rng": _RunsCode(str(marker))}, state)
    with pytest.raises(CheckpointError, match="cannot be|can be read safely"):
        pretrain(recipe=TINY, log_every=0, state_file=state, resume=True)
    assert probe.main([str(state)]) == 2
    err = capsys.readouterr().err
    assert "could run code" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()
    state.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match="not a pretraining state that can be read"):
        pretrain(recipe=TINY, log_every=0, state_file=state, resume=True)


def test_sigterm_finishes_the_step_writes_the_state_and_resume_goes_on(tmp_path):
    import os
    import signal

    torch.set_num_threads(1)
    _, losses = pretrain(recipe=TINY, log_every=0)
    state = tmp_path / "run.state.pt"
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) == 2:  # during step 2: as if `kill <pid>` arrived
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)  # not always SIG_DFL: ray.init sets its own
    _, first = pretrain(recipe=TINY, log_every=1, log=log, state_file=state)
    assert len(first) == 2 and "stopped at step 2/6; continue with --resume" in lines[-1]
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
    _, resumed = pretrain(recipe=TINY, log_every=0, state_file=state, resume=True)
    assert resumed == losses


def test_a_dead_render_process_is_a_one_line_error_not_a_hang(monkeypatch):
    import os
    import signal

    from ammpl.mini.pretrain import BatchStream
    from ammpl.utils.errors import AmmplError

    monkeypatch.setattr(BatchStream, "POLL_SECONDS", 0.2)
    state = np.random.default_rng(0).bit_generator.state
    stream = BatchStream(TINY, state, first_step=0, workers=1)
    try:
        assert stream.next().pixels.shape[0] == TINY.batch_size
        os.kill(stream.process.pid, signal.SIGKILL)
        stream.process.join()
        while not stream.queue.empty():  # batches drawn ahead before it died
            stream.queue.get()
        with pytest.raises(AmmplError, match="render process .* stopped"):
            stream.next()
    finally:
        stream.close()


def test_init_starts_from_the_given_weights_and_bad_files_are_one_line(tmp_path, capsys):
    from dataclasses import replace

    from ammpl.mini.model import build_mini_clip, pack_state
    from ammpl.mini.pretrain import save_weights

    start = tmp_path / "start.pt"
    save_weights(build_mini_clip(seed=7), start, {})
    model, losses = pretrain(recipe=replace(TINY, init=str(start)), log_every=0, stop_after=0)
    assert losses == []
    expected, got = pack_state(build_mini_clip(seed=7).state_dict()), pack_state(model.state_dict())
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    fresh, _ = pretrain(recipe=TINY, log_every=0, stop_after=0)  # seed 3's random weights
    assert not torch.equal(fresh.visual.proj, model.visual.proj)

    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    for path, message in ((tmp_path / "none.pt", "does not exist"), (other, "does not hold mini")):
        out = tmp_path / "w.pt"
        assert main(["--steps", "2", "--init", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
