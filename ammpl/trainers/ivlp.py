"""IVLP (independent vision-language deep prompts) and DLP (its language-only config).

Baselines of the MaPLe paper (Khattak et al., CVPR 2023): learnable prompts at the inputs of
the first J blocks of each tower, with no coupling between the towers. DLP is this trainer
with `N_CTX_VISION 0, PROMPT_DEPTH_VISION 0`. The deep prompts live on our own modules
(`text_prompts`, `vision_prompts`), never on open_clip's blocks; `REFERENCE_KEY_MAP` renames
the reference checkpoints' keys (`image_encoder.VPT`, `…resblocks.{i}.VPT_shallow`) to them.

The pieces shared with VPT and MaPLe live here too: `TowerPrompts`, `EvalTextCache`,
`map_reference_state_dict`, `clamp_depth`, `configure_prompt_rounding`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import CTX_INIT_STD, ClassPrompts, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.utils import ConfigError


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.IVLP = CN()
    cfg.TRAINER.IVLP.N_CTX_VISION = 2
    cfg.TRAINER.IVLP.N_CTX_TEXT = 2
    cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"
    cfg.TRAINER.IVLP.PREC = "fp16"
    cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9
    cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9


register_cfg_extension(extend_cfg)

# Reference (MaPLe repository) key → our key, for loading its full-model checkpoints.
REFERENCE_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"^image_encoder\.VPT$", "vision_prompts.shallow"),
    (r"^image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$", r"vision_prompts.deep.\1"),
    (r"^text_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$", r"text_prompts.deep.\1"),
)


def map_reference_state_dict(
    state_dict: dict,
    key_map: Iterable[tuple[str, str]],
    keep: Iterable[str],
) -> dict:
    """Rename reference keys to ours and keep only the tensors a checkpoint of ours holds.

    Reference full-model checkpoints also carry the frozen CLIP weights (quirk Q21); those
    are dropped so that loading never swaps the backbone the run was built with.
    """
    patterns = [(re.compile(pattern), target) for pattern, target in key_map]
    keep = set(keep)
    mapped = {}
    for key, value in state_dict.items():
        for pattern, target in patterns:
            if pattern.match(key):
                key = pattern.sub(target, key)
                break
        if key in keep or key.rsplit(".", 1)[-1] in ("token_prefix", "token_suffix"):
            mapped[key] = value
    return mapped


def clamp_depth(depth: int, n_blocks: int, what: str) -> int:
    """Depths beyond the tower's blocks act as "every block", as in the reference, where
    only existing blocks own prompts (so the paper configs also run on the tiny backbone)."""
    if depth < 0:
        raise ConfigError(f"{what} must be ≥ 0, got {depth}")
    if depth > n_blocks:
        print(f"Note: {what} {depth} > {n_blocks} blocks; using {n_blocks}")
        return n_blocks
    return depth


def normal_prompts(n_tokens: int, width: int, device: torch.device | None) -> nn.Parameter:
    """Fresh prompt vectors, N(0, 0.02²), always fp32 (BASELINES §5.1, §8.1)."""
    prompt = torch.empty(n_tokens, width, dtype=torch.float32, device=device)
    nn.init.normal_(prompt, std=CTX_INIT_STD)
    return nn.Parameter(prompt)


class TowerPrompts(nn.Module):
    """The learnable prompts of one tower: `shallow` for block 0 (optional: the text
    side's block-0 prompt is the prompt learner's `ctx`) and `deep.{i}` for blocks 1..J−1."""

    def __init__(
        self,
        depth: int,
        n_tokens: int,
        width: int,
        with_shallow: bool,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.depth = depth if n_tokens > 0 else 0
        if with_shallow and self.depth >= 1:
            self.shallow = normal_prompts(n_tokens, width, device)
        else:
            self.shallow = None
        self.deep = nn.ParameterDict(
            {str(i): normal_prompts(n_tokens, width, device) for i in range(1, self.depth)}
        )

    def deep_list(self) -> list[torch.Tensor]:
        """Prompts of blocks 1..J−1, in block order."""
        return [self.deep[str(i)] for i in range(1, self.depth)]


class EvalTextCache:
    """Text features reused across evaluation batches (exact, quirk Q17: in evaluation the
    text side does not depend on the image). Recomputed whenever any tensor of the model
    changed (optimiser step, checkpoint load: both bump the tensor version), the device or
    dtype moved, or autocast changed; never used in training mode or with grads enabled."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    @staticmethod
    def _state_key(model: nn.Module) -> tuple:
        tensors = [*model.parameters(), *model.buffers()]
        device_type = tensors[0].device.type if tensors else "cpu"
        autocast = (
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type),
        )
        return autocast, tuple(
            (id(t), t._version, t.data_ptr(), t.dtype, t.device) for t in tensors
        )

    def get(self, model: nn.Module, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if model.training or torch.is_grad_enabled():
            self._key = self._value = None
            return compute()
        key = self._state_key(model)
        if key != self._key:
            self._value, self._key = compute(), key
        return self._value


def configure_prompt_rounding(*encoders: nn.Module) -> None:
    """The reference casts every inserted prompt with `.half()` in every precision mode
    (quirk Q5, reproduced): switch the encoders' rounding on."""
    for encoder in encoders:
        encoder.round_prompts_fp16 = True


class VLPromptLearner(ClassPrompts):
    """Text context of block 0 (MaPLe/IVLP init rule: CTX_INIT used when N ≤ 4, N kept)."""

    def __init__(self, n_ctx: int, ctx_init: str, classnames: list[str], clip_model: nn.Module):
        ctx, prompt_prefix, n_ctx = init_context(clip_model, n_ctx, ctx_init, rule="maple")
        print(f'Initial text context: "{prompt_prefix}"')
        print(f"Number of context words (tokens) for language prompting: {n_ctx}")
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix)
        self.ctx = nn.Parameter(ctx)

    def forward(self) -> torch.Tensor:
        return self.splice(self.ctx)


class IVLPCLIP(nn.Module):
    """Frozen CLIP with independent deep prompts in both towers (`node_name`: the config
    node `node` came from, for error messages; PromptSRC builds on this model)."""

    def __init__(
        self, node: CN, classnames: list[str], clip_model: nn.Module, node_name: str = "IVLP"
    ) -> None:
        super().__init__()
        text_blocks = len(clip_model.transformer.resblocks)
        vision_blocks = len(clip_model.visual.transformer.resblocks)
        if node.PROMPT_DEPTH_TEXT < 1:
            raise ConfigError(
                f"TRAINER.{node_name}.PROMPT_DEPTH_TEXT must be ≥ 1 (1 = shallow text prompts), "
                f"got {node.PROMPT_DEPTH_TEXT}"
            )
        if node.N_CTX_VISION < 0:
            raise ConfigError(
                f"TRAINER.{node_name}.N_CTX_VISION must be ≥ 0, got {node.N_CTX_VISION}"
            )
        text_depth = clamp_depth(node.PROMPT_DEPTH_TEXT, text_blocks, "PROMPT_DEPTH_TEXT")
        vision_depth = clamp_depth(node.PROMPT_DEPTH_VISION, vision_blocks, "PROMPT_DEPTH_VISION")
        device = clip_model.ln_final.weight.device

        self.prompt_learner = VLPromptLearner(
            node.N_CTX_TEXT, node.CTX_INIT, classnames, clip_model
        )
        n_ctx_text = self.prompt_learner.n_ctx
        self.text_prompts = TowerPrompts(
            text_depth, n_ctx_text, clip_model.ln_final.weight.shape[0], False, device
        )
        self.vision_prompts = TowerPrompts(
            vision_depth, node.N_CTX_VISION, clip_model.visual.conv1.weight.shape[0], True, device
        )
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        configure_prompt_rounding(self.image_encoder, self.text_encoder)
        self.text_cache = EvalTextCache()

    def text_features(self) -> torch.Tensor:
        def compute() -> torch.Tensor:
            return self.text_encoder(
                self.prompt_learner(),
                self.prompt_learner.eot_indices,
                deep_prompts=self.text_prompts.deep_list(),
            )

        return self.text_cache.get(self, compute)

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(
            image, self.vision_prompts.shallow, self.vision_prompts.deep_list()
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return clip_logits(self.image_features(image), self.text_features(), self.logit_scale)


class ReferenceCheckpointMixin:
    """Loads the reference repository's full-model checkpoints through REFERENCE_KEY_MAP."""

    REFERENCE_KEY_MAP: tuple[tuple[str, str], ...] = REFERENCE_KEY_MAP

    def map_checkpoint_keys(self, state_dict: dict) -> dict:
        keep = self.checkpoint_state_dict(self.MODEL_NAME).keys()
        return map_reference_state_dict(state_dict, self.REFERENCE_KEY_MAP, keep)


@TRAINER_REGISTRY.register()
class IVLP(ReferenceCheckpointMixin, CLIPPromptTrainer):
    """Independent V-L prompting; also DLP with the `…_language_only` config."""

    CFG_NODE = "IVLP"
    MODEL_NAME = "VLPromptLearner"
    REGISTER_WHOLE_MODEL = True

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return IVLPCLIP(self.cfg.TRAINER.IVLP, classnames, clip_model)
