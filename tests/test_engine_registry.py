"""Trainer and evaluator registries: Dassl's behaviour plus a closest-name hint."""

from __future__ import annotations

import pytest
from _engine_helpers import make_cfg

from ammpl.engine import (
    EVALUATOR_REGISTRY,
    TRAINER_REGISTRY,
    Classification,
    build_evaluator,
    build_trainer,
    get_cfg_default,
)
from ammpl.utils.errors import ConfigError


@pytest.fixture
def isolated_trainers(monkeypatch):
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(TRAINER_REGISTRY, "_obj_map", dict(TRAINER_REGISTRY._obj_map))
    return TRAINER_REGISTRY


def test_register_and_build(isolated_trainers, tmp_path, capsys):
    @isolated_trainers.register()
    class EngineDemoTrainer:
        def __init__(self, cfg):
            self.cfg = cfg

    assert "EngineDemoTrainer" in isolated_trainers.registered_names()
    cfg = make_cfg(tmp_path, **{"TRAINER.NAME": "EngineDemoTrainer"})
    trainer = build_trainer(cfg)
    assert isinstance(trainer, EngineDemoTrainer) and trainer.cfg is cfg
    assert "Loading trainer: EngineDemoTrainer" in capsys.readouterr().out


def test_register_by_call_and_duplicate(isolated_trainers):
    class EngineTwice:
        pass

    assert isolated_trainers.register(EngineTwice) is EngineTwice
    with pytest.raises(KeyError, match="already registered"):
        isolated_trainers.register(EngineTwice)


def test_unknown_trainer_suggests_closest(isolated_trainers, tmp_path):
    @isolated_trainers.register()
    class EngineCoOpLike:
        pass

    cfg = make_cfg(tmp_path, **{"TRAINER.NAME": "EngineCoopLik"})
    with pytest.raises(ConfigError) as info:
        build_trainer(cfg)
    message = str(info.value)
    assert 'Did you mean "EngineCoOpLike"?' in message
    assert "Registered:" in message and "EngineCoOpLike" in message


def test_evaluator_registry():
    assert EVALUATOR_REGISTRY.get("Classification") is Classification
    assert isinstance(build_evaluator(get_cfg_default(), lab2cname={0: "a"}), Classification)
    cfg = get_cfg_default()
    cfg.TEST.EVALUATOR = "Classifcation"
    with pytest.raises(ConfigError, match='Did you mean "Classification"'):
        build_evaluator(cfg)
