"""`cfg.TRAINER.AMMPL`: the method's options (AMMPL.md "Configuration keys") and their checks.

The paper publishes no hyperparameters; every default here is the choice AMMPL.md makes.
`AmmplSettings` is the validated, typed view the model is built from, so the model can be
built (in tests, in the bench) without a full config tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from yacs.config import CfgNode as CN

from ammpl.engine.config import register_cfg_extension
from ammpl.utils import ConfigError

TEST_MASK_MODES = ("threshold", "expected", "sample", "none")
INTERACT_INITS = ("default", "zero")
STE_MODES = ("fill", "image")
# Tensors that may get an optimiser group of their own: (parameter name prefix, config key).
LR_MULT_KEYS = (("pad", "PAD_LR_MULT"), ("f_T", "F_T_LR_MULT"), ("f_I", "F_I_LR_MULT"))
TEXT_SHIFTS = ("vector", "scalar")
INTERACTION_ORDERS = ("image_first", "text_first")
PRECISIONS = ("fp16", "fp32", "amp", "bf16")


def extend_cfg(cfg: CN) -> None:
    node = CN()
    node.N_CTX = 4
    node.CTX_INIT = "a photo of a"
    node.CLASS_SPECIFIC = False  # True for the few-shot protocol, False for base-to-new / xd
    node.PREC = "fp16"
    node.P_INIT_MEAN = 0.9
    node.P_INIT_STD = 0.05
    # P (the keep probabilities) is its own optimiser group: lr = OPTIM.LR × P_LR_MULT at
    # every epoch (warm-up included) and no weight decay (decay would pull every keep
    # probability towards 0, "mask everything"). The other tensors keep OPTIM.WEIGHT_DECAY.
    node.P_LR_MULT = 1.0
    # The padding N, f_T and f_I get a group of their own with lr = OPTIM.LR × their
    # multiplier (weight decay as the main group) when the multiplier is not 1; at 1 they
    # stay in the main group, so the optimiser and its checkpoints are those of before.
    node.PAD_LR_MULT = 1.0
    node.F_T_LR_MULT = 1.0
    node.F_I_LR_MULT = 1.0
    node.PAD_INIT_STD = 0.02
    node.MASK = True  # C1: learnable patch mask
    node.PAD = True  # C2: learnable padding of masked patches (needs MASK True)
    # C3: image → text shift and text → padding networks. f_I and f_T receive L2-normalised
    # features (x/‖x‖, z/‖z‖), as CoCoOp's meta-net does: CLIP's features are only compared
    # by cosine, so their norm carries no meaning, and normalising keeps the networks' inputs
    # at a fixed scale whatever the backbone.
    node.INTERACT = True
    # "default": nn.Linear's initialisation for f_I and f_T; "zero": their output layers start
    # at zero, so h = 0 and E = 0 at step 0 (the prompt is "a photo of a", the fill is N).
    node.INTERACT_INIT = "default"
    # Bound on the fill's patch-embedding norm, relative to the mean patch-token norm of the
    # image it is put into (0 = no bound).
    node.FILL_MAX_NORM = 0.0
    # Straight-through gradient of P: "fill" = blend M·I + (1 − M)·fill, dÎ/dM = I − fill;
    # "image" = Eq. 4–5 literally (M ⊙ I, then the fill): dÎ/dM = I. Same forward.
    node.STE = "fill"
    node.MASK_PER_IMAGE = True
    node.TEST_MASK = "threshold"
    # With TEST_MASK "sample": average the logits over this many seeded Bernoulli draws.
    node.TEST_DRAWS = 1
    node.TEXT_SHIFT = "vector"
    node.INTERACTION_ORDER = "image_first"
    node.HIDDEN_RATIO = 16
    node.CLASS_CHUNK = 0  # (image, class) pairs per encoder pass; 0 = from free memory
    cfg.TRAINER.AMMPL = node


register_cfg_extension(extend_cfg)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"TRAINER.AMMPL.{key} must be one of {', '.join(allowed)}, got '{value}'")
    return value


@dataclass(frozen=True)
class AmmplSettings:
    """Validated AMMPL options; field names are the config keys in lower case."""

    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    class_specific: bool = False
    p_init_mean: float = 0.9
    p_init_std: float = 0.05
    p_lr_mult: float = 1.0
    pad_lr_mult: float = 1.0
    f_t_lr_mult: float = 1.0
    f_i_lr_mult: float = 1.0
    pad_init_std: float = 0.02
    mask: bool = True
    pad: bool = True
    interact: bool = True
    interact_init: str = "default"
    fill_max_norm: float = 0.0
    ste: str = "fill"
    mask_per_image: bool = True
    test_mask: str = "threshold"
    test_draws: int = 1
    text_shift: str = "vector"
    interaction_order: str = "image_first"
    hidden_ratio: int = 16
    class_chunk: int = 0
    seed: int = 0  # seeds the generator of TEST_MASK "sample"

    def __post_init__(self) -> None:
        _choice("TEST_MASK", self.test_mask, TEST_MASK_MODES)
        _choice("TEXT_SHIFT", self.text_shift, TEXT_SHIFTS)
        _choice("INTERACTION_ORDER", self.interaction_order, INTERACTION_ORDERS)
        _choice("INTERACT_INIT", self.interact_init, INTERACT_INITS)
        _choice("STE", self.ste, STE_MODES)
        if self.n_ctx < 1:
            raise ConfigError(f"TRAINER.AMMPL.N_CTX must be ≥ 1, got {self.n_ctx}")
        if self.hidden_ratio < 1:
            raise ConfigError(f"TRAINER.AMMPL.HIDDEN_RATIO must be ≥ 1, got {self.hidden_ratio}")
        if self.class_chunk < 0:
            raise ConfigError(
                f"TRAINER.AMMPL.CLASS_CHUNK must be ≥ 0 (0 = automatic), got {self.class_chunk}"
            )
        for key in ("P_LR_MULT", *(key for _, key in LR_MULT_KEYS), "FILL_MAX_NORM"):
            value = getattr(self, key.lower())
            if not value >= 0:  # also catches NaN
                raise ConfigError(f"TRAINER.AMMPL.{key} must be ≥ 0, got {value}")
        if self.test_draws < 1:
            raise ConfigError(f"TRAINER.AMMPL.TEST_DRAWS must be ≥ 1, got {self.test_draws}")
        if self.test_draws > 1 and self.test_mask != "sample":
            raise ConfigError(
                f"TRAINER.AMMPL.TEST_DRAWS {self.test_draws} needs TEST_MASK sample (the test "
                f"mask '{self.test_mask}' is deterministic); set TEST_DRAWS 1 or TEST_MASK sample"
            )
        if self.p_init_std < 0 or self.pad_init_std < 0:
            raise ConfigError("TRAINER.AMMPL.P_INIT_STD and PAD_INIT_STD must be ≥ 0")

    @classmethod
    def from_cfg(cls, node: CN, seed: int = 0) -> AmmplSettings:
        if node.PREC not in PRECISIONS:
            raise ConfigError(
                f"TRAINER.AMMPL.PREC must be one of {', '.join(PRECISIONS)}, got '{node.PREC}'"
            )
        if bool(node.PAD) and not bool(node.MASK):
            # A config asking for padding without a mask is a mistake, not an ablation: the
            # padding only fills masked patches, so it would silently do nothing.
            raise ConfigError(
                "TRAINER.AMMPL.PAD True needs TRAINER.AMMPL.MASK True (padding fills masked "
                "patches); with MASK False set PAD False too"
            )
        return cls(
            n_ctx=int(node.N_CTX),
            ctx_init=str(node.CTX_INIT),
            class_specific=bool(node.CLASS_SPECIFIC),
            p_init_mean=float(node.P_INIT_MEAN),
            p_init_std=float(node.P_INIT_STD),
            p_lr_mult=float(node.P_LR_MULT),
            pad_lr_mult=float(node.PAD_LR_MULT),
            f_t_lr_mult=float(node.F_T_LR_MULT),
            f_i_lr_mult=float(node.F_I_LR_MULT),
            pad_init_std=float(node.PAD_INIT_STD),
            mask=bool(node.MASK),
            pad=bool(node.PAD),
            interact=bool(node.INTERACT),
            interact_init=str(node.INTERACT_INIT),
            fill_max_norm=float(node.FILL_MAX_NORM),
            ste=str(node.STE),
            mask_per_image=bool(node.MASK_PER_IMAGE),
            test_mask=str(node.TEST_MASK),
            test_draws=int(node.TEST_DRAWS),
            text_shift=str(node.TEXT_SHIFT),
            interaction_order=str(node.INTERACTION_ORDER),
            hidden_ratio=int(node.HIDDEN_RATIO),
            class_chunk=int(node.CLASS_CHUNK),
            seed=max(int(seed), 0),
        )

    def lr_mults(self) -> dict[str, float]:
        """{parameter name prefix: multiplier} of the tensors that may get their own group."""
        return {prefix: getattr(self, key.lower()) for prefix, key in LR_MULT_KEYS}

    @property
    def uses_padding(self) -> bool:
        """Padding only ever shows in masked patches."""
        return self.mask and self.pad

    @property
    def uses_text_to_image(self) -> bool:
        """E = f_T(z) is added to the padding, which only shows in masked patches."""
        return self.mask and self.interact

    def components(self) -> str:
        """The paper's Table 3 name of the active component set (C1 mask, C2 pad, C3 interact)."""
        parts = [
            name
            for name, on in (("C1", self.mask), ("C2", self.uses_padding), ("C3", self.interact))
            if on
        ]
        return "+".join(parts) if parts else "text prompts only"
