"""A CoOp fork's own train.py after `register_ammpl_trainers()` (issue 9, item 9): a config
whose `extend_cfg` lacks our line fails while merging our method config, and that becomes
one line naming the missing line; our AmmplErrors are one line too; anything else keeps its
traceback."""

from __future__ import annotations

import sys

import pytest
from test_integration_dassl import AMMPL_CONFIG, fake_dassl
from yacs.config import CfgNode as CN

from ammpl.integrations.dassl import register_ammpl_trainers
from ammpl.integrations.dassl_errors import explain
from ammpl.utils import ConfigError


@pytest.fixture
def fork(monkeypatch):
    """A fake Dassl with ammpl registered; the excepthook is restored afterwards."""
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: seen.append(exc[1]))
    with fake_dassl() as fake:
        register_ammpl_trainers(["AMMPL"])
        fake.previous_hook_saw = seen
        yield fake


def forgotten_line_error(fake, repo_root) -> BaseException:
    cfg = fake.config.get_cfg_default()
    cfg.TRAINER.COOP = CN()  # the fork's own node; the ammpl_extend_cfg(cfg) line is missing
    cfg.TRAINER.COOP.N_CTX = 16
    with pytest.raises(KeyError) as info:
        cfg.merge_from_file(str(repo_root / AMMPL_CONFIG))
    return info.value


def test_a_forgotten_extend_cfg_line_is_one_line_naming_it(fork, repo_root, capsys):
    error = forgotten_line_error(fork, repo_root)
    sys.excepthook(type(error), error, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: the config has no key TRAINER.AMMPL, which ammpl adds")
    assert "ammpl_extend_cfg(cfg)" in err[0] and "extend_cfg(cfg)" in err[0]
    assert fork.previous_hook_saw == []


def test_a_missing_key_on_the_command_line_is_explained_too(fork):
    cfg = fork.config.get_cfg_default()
    with pytest.raises(AssertionError) as info:
        cfg.merge_from_list(["MODEL.BACKBONE.PATH", "/w.pt"])
    assert "ammpl_extend_cfg(cfg)" in explain(info.value)


def test_our_errors_are_one_line_and_others_keep_their_traceback(fork, capsys, monkeypatch):
    error = ConfigError("TRAINER.AMMPL.TEST_MASK must be one of threshold, …")
    sys.excepthook(type(error), error, None)
    assert capsys.readouterr().err == f"error: {error}\n"
    unrelated = KeyError("Non-existent config key: TRAINER.FORKONLY.X")
    sys.excepthook(type(unrelated), unrelated, None)
    other = ValueError("boom")
    sys.excepthook(type(other), other, None)
    assert fork.previous_hook_saw == [unrelated, other]
    monkeypatch.setenv("AMMPL_DEBUG", "1")
    sys.excepthook(type(error), error, None)
    assert fork.previous_hook_saw[-1] is error
