"""Our from-scratch engine with Dassl's contract (docs/DASSL.md, DASSL_API.md §1).

Dassl's `dassl.config`, `dassl.engine`, `dassl.optim`, `dassl.evaluation`, `dassl.metrics`
and `dassl.utils` names used by prompt-learning code are importable from here.
"""

from ammpl.engine.checkpoint import (
    load_checkpoint,
    load_pretrained_weights,
    resume_from_checkpoint,
    save_checkpoint,
)
from ammpl.engine.config import (
    CfgNode,
    get_cfg_default,
    merge_from_file,
    merge_from_list,
    register_cfg_extension,
    setup_cfg,
)
from ammpl.engine.evaluator import (
    EVALUATOR_REGISTRY,
    Classification,
    EvaluatorBase,
    build_evaluator,
)
from ammpl.engine.logger import setup_logger
from ammpl.engine.lr_scheduler import build_lr_scheduler
from ammpl.engine.metrics import compute_accuracy
from ammpl.engine.optim import build_optimizer
from ammpl.engine.run_record import RunRecord
from ammpl.engine.trainer import (
    TRAINER_REGISTRY,
    SimpleTrainer,
    TrainerBase,
    TrainerX,
    build_trainer,
)
from ammpl.engine.utils import (
    AverageMeter,
    MetricMeter,
    collect_env_info,
    count_num_param,
    mkdir_if_missing,
    read_json,
    set_random_seed,
    write_json,
)

__all__ = [
    "EVALUATOR_REGISTRY",
    "TRAINER_REGISTRY",
    "AverageMeter",
    "CfgNode",
    "Classification",
    "EvaluatorBase",
    "MetricMeter",
    "RunRecord",
    "SimpleTrainer",
    "TrainerBase",
    "TrainerX",
    "build_evaluator",
    "build_lr_scheduler",
    "build_optimizer",
    "build_trainer",
    "collect_env_info",
    "compute_accuracy",
    "count_num_param",
    "get_cfg_default",
    "load_checkpoint",
    "load_pretrained_weights",
    "merge_from_file",
    "merge_from_list",
    "mkdir_if_missing",
    "read_json",
    "register_cfg_extension",
    "resume_from_checkpoint",
    "save_checkpoint",
    "set_random_seed",
    "setup_cfg",
    "setup_logger",
    "write_json",
]
