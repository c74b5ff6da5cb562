"""Backbone names → open_clip architectures and weight sources, and the one loader.

The table is data, as open_clip keeps its architectures and pretrained weights: the
Dassl/CoOp names (`ViT-B/16`, `RN50`, …) map to open_clip architectures with OpenAI's
weights, `tiny` is the seeded random test backbone, and any open_clip `architecture:tag`
(e.g. `ViT-B-16:openai`, `ViT-B-16-SigLIP:webli`) is accepted as well. `mini`, the small
CLIP pretrained here (weights shipped in the package, docs/MINI.md), is added by
`ammpl.mini.backbone`, a provider module this one names as data (BACKBONE_PROVIDERS) and
imports when the table is first read. `tiny-rn` is the random test backbone with a ResNet
(ModifiedResNet) image tower, for the RN50 paths.

`load_backbone` always returns the same kind of object: an open_clip model in fp32,
frozen, in eval mode, carrying `ammpl_backbone_name`, `ammpl_source` (where the weights
came from, for logs and results.json) and `ammpl_weights_hash` (a fingerprint of them).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import open_clip
import torch
from open_clip.model import convert_to_custom_text_state_dict, set_model_preprocess_cfg
from open_clip.pretrained import (
    get_pretrained_cfg,
    is_pretrained_cfg,
    list_pretrained_tags_by_model,
)
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from open_clip.transformer import QuickGELU
from torch import nn

from ammpl.clip.precision import to_reference_half
from ammpl.clip.tiny import (
    TINY_BACKBONE_NAME,
    TINY_RESNET_NAME,
    build_tiny_clip,
    build_tiny_resnet_clip,
)
from ammpl.clip.weights import (
    ResolvedWeights,
    WeightsNotFoundError,
    WeightSources,
    check_state_dict,
    read_state_dict,
    resolve_weights,
    tensors_hash,
    weights_hash,
)
from ammpl.utils import BackboneError, closest_name

__all__ = [
    "BACKBONE_REGISTRY",
    "BackboneSpec",
    "available_backbones",
    "build_architecture",
    "get_backbone_spec",
    "load_backbone",
    "load_backbone_providers",
    "register_backbone",
    "to_reference_half",
]

# Dassl / CoOp backbone names → open_clip architectures (all with OpenAI's weights).
DASSL_ARCHITECTURES = {
    "RN50": "RN50",
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "RN50x16": "RN50x16",
    "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}


@dataclass(frozen=True)
class BackboneSpec:
    """One row of the backbone table.

    `weights` None means the architecture has no published weights (the tiny test
    backbone): it is used with its seeded random weights unless a file is given.
    `builder` builds the architecture for names open_clip does not know.
    """

    name: str
    arch: str
    pretrained: str | None
    quick_gelu: bool
    weights: WeightSources | None
    builder: Callable[[], nn.Module] | None = None
    # Turns the file's tensors into the architecture's state dict (a packed format).
    unpack_state: Callable[[dict], dict] | None = None
    # weights_hash of the file that ships with the package; a mismatch is an error.
    bundled_hash: str | None = None


def open_clip_spec(name: str, arch: str, tag: str) -> BackboneSpec:
    """A row for an open_clip architecture + pretrained tag, from open_clip's own tables."""
    tag_cfg = get_pretrained_cfg(arch, tag)
    arch_cfg = open_clip.get_model_config(arch) or {}
    url = tag_cfg.get("url") or None
    fetch = f"python -c \"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')\""
    return BackboneSpec(
        name=name,
        arch=arch,
        pretrained=tag,
        # OpenAI's weights were trained with QuickGELU; open_clip's tables say which are.
        quick_gelu=bool(tag_cfg.get("quick_gelu") or arch_cfg.get("quick_gelu")),
        weights=WeightSources(
            display_name=name,
            openai_file=os.path.basename(url) if url else None,
            hf_hub=tag_cfg.get("hf_hub") or None,
            url=url,
            fetch_command=fetch,
        ),
    )


def _tiny_spec(name: str, builder: Callable[[], nn.Module]) -> BackboneSpec:
    """A test backbone: random weights from `builder`, nothing to download."""
    return BackboneSpec(
        name=name, arch=name, pretrained=None, quick_gelu=True, weights=None, builder=builder
    )


BACKBONE_REGISTRY: dict[str, BackboneSpec] = {
    name: open_clip_spec(name, arch, "openai") for name, arch in DASSL_ARCHITECTURES.items()
}
BACKBONE_REGISTRY[TINY_BACKBONE_NAME] = _tiny_spec(TINY_BACKBONE_NAME, build_tiny_clip)
BACKBONE_REGISTRY[TINY_RESNET_NAME] = _tiny_spec(TINY_RESNET_NAME, build_tiny_resnet_clip)
# Modules that add rows to the table when imported, named here as data: they import this
# module (never the other way round, `ammpl.mini` sits above `ammpl.clip`), and are
# imported the first time the table is read (`available_backbones`, `get_backbone_spec`,
# `load_backbone`, `register_backbone`). `ammpl.mini.backbone` adds `mini`, the small CLIP
# pretrained on the mini world (docs/MINI.md), whose weights ship with the package.
BACKBONE_PROVIDERS: list[str] = ["ammpl.mini.backbone"]
_loaded_providers: set[str] = set()
_providers_lock = threading.RLock()  # re-entrant: a provider calls register_backbone


def load_backbone_providers() -> None:
    """Import every provider module not imported yet (each registers its backbones)."""
    with _providers_lock:
        for module in BACKBONE_PROVIDERS:
            if module not in _loaded_providers:
                _loaded_providers.add(module)  # first: the provider reads the table too
                importlib.import_module(module)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a row to the table (a custom architecture, or weights under another name)."""
    load_backbone_providers()
    if spec.name in BACKBONE_REGISTRY:
        raise KeyError(f'A backbone named "{spec.name}" is already registered')
    BACKBONE_REGISTRY[spec.name] = spec
    return spec


def available_backbones() -> list[str]:
    """Names of the table; any open_clip `architecture:tag` is accepted too."""
    load_backbone_providers()
    return list(BACKBONE_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    load_backbone_providers()
    if name in BACKBONE_REGISTRY:
        return BACKBONE_REGISTRY[name]
    if ":" in name:
        arch, tag = name.split(":", 1)
        arch = arch.replace("/", "-")
        if arch in open_clip.list_models():
            if is_pretrained_cfg(arch, tag):
                return open_clip_spec(name, arch, tag)
            tags = ", ".join(list_pretrained_tags_by_model(arch)) or "none"
            raise BackboneError(
                f'open_clip has no pretrained tag "{tag}" for {arch} (backbone "{name}"); '
                f"its tags: {tags}"
            )
    candidates = list(BACKBONE_REGISTRY)
    if ":" in name:
        candidates += open_clip.list_pretrained(as_str=True)
    hint = closest_name(name, candidates)
    hint_text = f' Did you mean "{hint}"?' if hint else ""
    raise BackboneError(
        f'Unknown backbone "{name}" (MODEL.BACKBONE.NAME).{hint_text} Known: '
        f"{', '.join(BACKBONE_REGISTRY)}, or any open_clip architecture:tag such as "
        f"ViT-B-16:openai (see open_clip.list_pretrained())"
    )


# -- architecture ---------------------------------------------------------------------
def _build_open_clip(spec: BackboneSpec) -> nn.Module:
    """The architecture with random weights, exactly as open_clip's factory would build it."""
    cfg = open_clip.get_model_config(spec.arch)
    if cfg is None:
        raise BackboneError(f"open_clip has no architecture {spec.arch} (backbone {spec.name})")
    cfg["quick_gelu"] = spec.quick_gelu
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg["text_cfg"]
    if "timm_model_name" in cfg["vision_cfg"]:
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    if "hf_model_name" in cfg["text_cfg"]:
        cfg["text_cfg"]["hf_model_pretrained"] = False
    model_class = open_clip.CLIP
    if custom_text:
        model_class = open_clip.CoCa if "multimodal_cfg" in cfg else open_clip.CustomTextCLIP
    try:
        model = model_class(**cfg)
    except ImportError as error:
        raise BackboneError(
            f"building {spec.arch} (backbone {spec.name}) needs a package that is not "
            f"installed: {error}"
        ) from None
    tag_cfg = get_pretrained_cfg(spec.arch, spec.pretrained) if spec.pretrained else {}
    image_size = getattr(model.visual, "image_size", 224)
    set_model_preprocess_cfg(model, merge_preprocess_dict(PreprocessCfg(size=image_size), tag_cfg))
    return model


def build_architecture(spec: BackboneSpec) -> nn.Module:
    """The backbone's architecture, before any weights are loaded."""
    return spec.builder() if spec.builder is not None else _build_open_clip(spec)


def _mlp_activations(model: nn.Module) -> list[type]:
    return [
        type(module.mlp.gelu)
        for module in model.modules()
        if isinstance(getattr(module, "mlp", None), nn.Sequential) and hasattr(module.mlp, "gelu")
    ]


def check_activation(model: nn.Module, spec: BackboneSpec) -> None:
    """Weights trained with QuickGELU must run with it (and only those)."""
    activations = _mlp_activations(model)
    if not activations:
        return
    uses_quick_gelu = all(activation is QuickGELU for activation in activations)
    if spec.quick_gelu and not uses_quick_gelu:
        raise BackboneError(
            f"backbone {spec.name} was trained with QuickGELU but its architecture uses "
            f"{activations[0].__name__}; the registry entry must set quick_gelu"
        )
    if not spec.quick_gelu and QuickGELU in activations:
        raise BackboneError(f"backbone {spec.name} was not trained with QuickGELU but uses it")


def _align_with_open_clip(model: nn.Module, state: dict[str, torch.Tensor]) -> dict:
    """The two format differences open_clip's own loader smooths over."""
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    scale = state.get("logit_scale")
    if scale is not None and hasattr(model, "logit_scale") and scale.ndim != model.logit_scale.ndim:
        state["logit_scale"] = scale.reshape(model.logit_scale.shape)
    return state


# -- loading --------------------------------------------------------------------------
def _load_weights_into(spec: BackboneSpec, resolved: ResolvedWeights) -> nn.Module:
    file_hash = weights_hash(resolved.path)
    if resolved.kind == "bundled" and spec.bundled_hash and file_hash != spec.bundled_hash:
        raise BackboneError(
            f"the {spec.name} weights shipped at {resolved.path} have hash {file_hash}, not the "
            f"recorded {spec.bundled_hash}; reinstall the package (pip install -e .)"
        )
    state = read_state_dict(resolved.path)
    if spec.unpack_state is not None:
        state = spec.unpack_state(state)
    model = build_architecture(spec)
    state = _align_with_open_clip(model, state)
    check_state_dict(model, state, resolved.path, spec.name)
    model.load_state_dict(state, strict=True)
    model.ammpl_source = resolved.describe()
    model.ammpl_weights_hash = file_hash
    return model


def _random_model(spec: BackboneSpec) -> nn.Module:
    model = build_architecture(spec)
    model.ammpl_source = f"random:{spec.name} (seed 0)"
    model.ammpl_weights_hash = tensors_hash(model.state_dict())
    return model


def _tiny_fallback(name: str, error: WeightsNotFoundError) -> nn.Module:
    print(
        f"{name} weights not found (looked in {', '.join(error.places)}); "
        "using the tiny random backbone instead, as MODEL.BACKBONE.ALLOW_TINY_FALLBACK "
        f"(allow_tiny_fallback=True) permits; its accuracies say nothing about {name}"
    )
    model = _random_model(BACKBONE_REGISTRY[TINY_BACKBONE_NAME])
    model.ammpl_source = f"random:{TINY_BACKBONE_NAME} (fallback: {name} weights not found)"
    return model


def backbone_weights(
    spec: BackboneSpec, path: str | os.PathLike | None = None
) -> ResolvedWeights | None:
    """Where `spec`'s weights come from (`path` if given); None for a backbone used with its
    seeded random weights (tiny). WeightsNotFoundError, listing every place, if none has them.
    `ammpl-sweep` calls it once per backbone before its first run."""
    if spec.weights is None and not path:
        return None
    return resolve_weights(spec.weights or WeightSources(display_name=spec.name), path)


def load_backbone(
    name: str,
    path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    allow_tiny_fallback: bool = False,
) -> nn.Module:
    """The named CLIP as an fp32, frozen, eval-mode open_clip model.

    Weights come from `path` if given, else from the first place that has them (see
    `ammpl.clip.weights`). `allow_tiny_fallback` (the demo only) returns the tiny random
    backbone, with a one-line notice, when the weights are not found anywhere; a file
    that is found but broken is always an error. `device` None leaves the model on the CPU.
    """
    spec = get_backbone_spec(name)
    try:
        resolved = backbone_weights(spec, path)
    except WeightsNotFoundError as error:
        if not allow_tiny_fallback:
            raise
        spec = BACKBONE_REGISTRY[TINY_BACKBONE_NAME]
        model = _tiny_fallback(name, error)
    else:
        model = _random_model(spec) if resolved is None else _load_weights_into(spec, resolved)
    check_activation(model, spec)
    model.ammpl_backbone_name = spec.name
    model.float().requires_grad_(False).eval()
    if device is not None:
        model.to(device)
    return model
