"""The registered `AMMPL` trainer: the shared CLIP prompt trainer plus AMMPL's model.

Only `prompt_learner` is registered (checkpoint folder `prompt_learner/`, keys `ctx`, `P`,
`pad`, `f_I.*`, `f_T.*`, `token_prefix`, `token_suffix`). Next to the checkpoints a small
`ammpl_meta.json` records the class names and patch geometry, which `ammpl-viz masks`
needs to draw the masks of saved epochs.
"""

from __future__ import annotations

import os
from dataclasses import asdict

from torch import nn

from ammpl.engine import TRAINER_REGISTRY, distributed
from ammpl.trainers.ammpl.config import AmmplSettings
from ammpl.trainers.ammpl.mask_stats import format_mask_line, mask_statistics
from ammpl.trainers.ammpl.model import AmmplCLIP
from ammpl.trainers.ammpl.viz import META_FILE
from ammpl.trainers.base import CLIPPromptTrainer, trainable_parameters
from ammpl.utils import write_json

GROUP_KEY = "ammpl_group"  # names the tensors of an optimiser group that has a multiplier


def check_group_labels(optimizer, state_dict: dict) -> None:
    """Before an optimiser state is loaded: the groups with a multiplier must hold the same
    tensors in the file and in this run. torch only compares group counts and sizes, and
    f_T and f_I have the same number of tensors, so without this a resume with another
    multiplier set could hand f_T's momentum to f_I. A ValueError, which the checkpoint
    loader reports in one line."""
    for index, (saved, current) in enumerate(
        zip(state_dict["param_groups"], optimizer.param_groups)
    ):
        if saved.get(GROUP_KEY) != current.get(GROUP_KEY):
            raise ValueError(
                f"optimiser group {index} holds {saved.get(GROUP_KEY) or 'other tensors'} in "
                f"the file and {current.get(GROUP_KEY) or 'other tensors'} in this run: resume "
                "with the TRAINER.AMMPL.*_LR_MULT values of the saved run"
            )


def model_meta(model: AmmplCLIP) -> dict:
    """What a mask picture needs besides the checkpoint: names and geometry."""
    pl = model.prompt_learner
    geometry = pl.geometry
    return {
        "classnames": list(pl.classnames),
        "class_specific": model.settings.class_specific,
        "grid": geometry.grid if geometry else None,
        "patch_size": geometry.patch if geometry else None,
        "image_size": geometry.grid * geometry.patch if geometry else None,
        "settings": asdict(model.settings),
    }


@TRAINER_REGISTRY.register()
class AMMPL(CLIPPromptTrainer):
    """Adaptive Multi-Modality Prompt Learning (Wu et al., ACM MM 2024)."""

    CFG_NODE = "AMMPL"
    MODEL_NAME = "prompt_learner"

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        AmmplSettings.from_cfg(cfg.TRAINER.AMMPL)

    @property
    def eval_shardable(self) -> bool:
        """TEST_MASK "sample" draws the masks of batch j after those of batches 0..j-1, so
        under torchrun every rank then evaluates the whole split (same numbers, no speed-up)."""
        return self.cfg.TRAINER.AMMPL.TEST_MASK != "sample"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        settings = AmmplSettings.from_cfg(self.cfg.TRAINER.AMMPL, seed=self.cfg.SEED)
        variant = "class-specific" if settings.class_specific else "generalisable"
        print(f"AMMPL: {variant} model, components {settings.components()}")
        print(
            f"AMMPL: test mask '{settings.test_mask}', text shift '{settings.text_shift}', "
            f"order '{settings.interaction_order}', class chunk "
            f"{settings.class_chunk or 'automatic'}"
        )
        print(
            f"AMMPL: interaction init '{settings.interact_init}', straight-through '{settings.ste}'"
            f", fill bound {settings.fill_max_norm:g} (0 = off), test draws {settings.test_draws}"
        )
        if settings.interact and settings.text_shift == "scalar":
            print(
                "Note: TEXT_SHIFT 'scalar' adds the same number to every entry of a context "
                "token; the text encoder's LayerNorms remove it, so the image → text shift has "
                "no effect (use 'vector', the default, for a working shift)"
            )
        return AmmplCLIP(settings, classnames, clip_model)

    def optimizer_param_groups(self, registered: nn.Module) -> list:
        """The first group holds the context and every tensor without a group of its own,
        with Dassl's settings. P has its own group: lr × P_LR_MULT (`lr_mult` makes the
        warm-up scale it too) and no weight decay, which would pull every keep probability
        towards 0 ("mask everything"). N, f_T and f_I get a group each (lr × PAD_LR_MULT,
        F_T_LR_MULT, F_I_LR_MULT; weight decay as the first group) only when their
        multiplier is not 1, so that a run with the defaults builds the optimiser of before
        and resumes its checkpoints: groups [main, P] or a single list without P."""
        lr = self.cfg.OPTIM.LR
        params = trainable_parameters(registered)
        P = params.pop("P", None)
        groups = []
        if P is not None:
            mult = float(self.cfg.TRAINER.AMMPL.P_LR_MULT)
            print(f"AMMPL: P trains with lr × {mult:g} and no weight decay")
            groups.append({"params": [P], "lr": lr * mult, "weight_decay": 0.0, "lr_mult": mult})
        settings = AmmplSettings.from_cfg(self.cfg.TRAINER.AMMPL)
        for prefix, mult in settings.lr_mults().items():
            if mult == 1.0:
                continue
            names = [n for n in params if n == prefix or n.startswith(prefix + ".")]
            key = f"TRAINER.AMMPL.{prefix.upper()}_LR_MULT"
            if not names:
                print(f"Note: {key} {mult:g} has no effect: this model has no {prefix}")
                continue
            print(f"AMMPL: {prefix} trains with lr × {mult:g}")
            members = [params.pop(n) for n in names]
            groups.append({"params": members, "lr": lr * mult, "lr_mult": mult, GROUP_KEY: prefix})
        if not groups:
            return list(params.values())
        return [{"params": list(params.values())}, *groups]

    def build_model(self) -> None:
        super().build_model()
        if self.optim is not None:
            self.optim.register_load_state_dict_pre_hook(check_group_labels)

    def _learner(self) -> nn.Module:
        """The prompt learner, also when the model is wrapped (DataParallel, DDP)."""
        return getattr(self.model, "module", self.model).prompt_learner

    def mask_stats(self) -> dict | None:
        """This epoch's mask statistics (ammpl.trainers.ammpl.mask_stats), None without P."""
        learner = self._learner()
        if learner.P is None:
            return None
        return mask_statistics(learner.P, learner.mask_counter.per_class())

    def before_epoch(self) -> None:
        super().before_epoch()
        self._learner().mask_counter.reset()

    def after_epoch(self) -> None:
        stats = self.mask_stats()
        self._epoch_mask_stats = stats
        if stats is not None:
            print(format_mask_line(self.epoch + 1, self.max_epoch, stats))
        super().after_epoch()

    def epoch_extras(self) -> dict:
        stats = getattr(self, "_epoch_mask_stats", None)
        return {} if stats is None else {"mask": stats}

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        super().save_model(epoch, directory, is_best, val_result, model_name)
        folder = os.path.join(directory, self.MODEL_NAME)
        if distributed.is_main_process() and os.path.isdir(folder):
            write_json(model_meta(self.model), os.path.join(folder, META_FILE))
