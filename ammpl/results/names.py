"""Display names and orders: dataset stems, method labels, variant folder names.

Tables and plots key everything by the dataset-config stem (`caltech101`) and show the
names the papers print (`Caltech101`). Method labels follow the trainer, except where one
trainer serves two methods (IVLP's language-only config is DLP).
"""

from __future__ import annotations

import re

# stem → name printed in tables (the AMMPL paper's spelling where it has one)
DATASET_DISPLAY = {
    "caltech101": "Caltech101",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "fgvc_aircraft": "FGVCAircraft",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "oxford_pets": "OxfordPets",
    "sun397": "SUN397",
    "ucf101": "UCF101",
    "imagenet": "ImageNet",
    "stanford_cars": "StanfordCars",
    "imagenetv2": "ImageNetV2",
    "imagenet_sketch": "ImageNet-Sketch",
    "imagenet_a": "ImageNet-A",
    "imagenet_r": "ImageNet-R",
    "shapes": "Shapes",
    "mini_colors": "MiniColors",
    "mini_colorpatterns": "MiniColorPatterns",
    "mini_scenes": "MiniScenes",
    "mini_objects": "MiniObjects",
    "mini_objects_v2": "MiniObjectsV2",
    "mini_objects_sketch": "MiniObjectsSketch",
    "mini_objects_a": "MiniObjectsA",
    "mini_objects_r": "MiniObjectsR",
    "mini_objectpatterns": "MiniObjectPatterns",
}
DATASET_ORDER = tuple(DATASET_DISPLAY)  # the AMMPL paper's 9 first, then the others
# cfg.DATASET.NAME (the registered reader) → dataset-config stem
DATASET_STEM_BY_NAME = {
    "Caltech101": "caltech101",
    "DescribableTextures": "dtd",
    "EuroSAT": "eurosat",
    "FGVCAircraft": "fgvc_aircraft",
    "Food101": "food101",
    "ImageNet": "imagenet",
    "ImageNetA": "imagenet_a",
    "ImageNetR": "imagenet_r",
    "ImageNetSketch": "imagenet_sketch",
    "ImageNetV2": "imagenetv2",
    "OxfordFlowers": "oxford_flowers",
    "OxfordPets": "oxford_pets",
    "Shapes": "shapes",
    "StanfordCars": "stanford_cars",
    "SUN397": "sun397",
    "UCF101": "ucf101",
    "MiniColors": "mini_colors",
    "MiniColorPatterns": "mini_colorpatterns",
    "MiniScenes": "mini_scenes",
    "MiniObjects": "mini_objects",
    "MiniObjectsV2": "mini_objects_v2",
    "MiniObjectsSketch": "mini_objects_sketch",
    "MiniObjectsA": "mini_objects_a",
    "MiniObjectsR": "mini_objects_r",
    "MiniObjectPatterns": "mini_objectpatterns",
}
METHOD_ORDER = ("ZS-CLIP", "CoOp", "CoCoOp", "IVLP", "DLP", "VPT", "MaPLe", "VP", "DPT", "AMMPL")
METHOD_ORDER += ("KgCoOp", "PromptSRC")
ZEROSHOT_METHOD = "ZS-CLIP"
# Methods of the source documents beyond the AMMPL paper's comparison, after it.
METHOD_ORDER += ("PLOT", "PLOT++", "PLOT++ (stage 1)")
# Issue 21's comparison set, as their papers write them (= the trainer names).
METHOD_ORDER += ("ProGrad", "TCP", "MMA", "CoPrompt")
# PLOT's variant folders: N prompt sets (PLOT), stage and M visual prompt sets (PLOT++).
PLOT_VARIANT = re.compile(r"(?:(vision|joint)_M(\d+)|N(\d+))$")

COOP_VARIANT = re.compile(r"nctx(\d+)_csc(True|False)_ctp(\w+)$")
ABLATION_VARIANT = re.compile(r"mask(True|False)_pad(True|False)_interact(True|False)$")
EPOCH_TAG = re.compile(r"_ep\d+")


def dataset_display(stem: str) -> str:
    return DATASET_DISPLAY.get(stem, stem)


def dataset_stem(name: str) -> str:
    """Stem of a registered dataset name (`DescribableTextures` → `dtd`)."""
    return DATASET_STEM_BY_NAME.get(name, name.lower())


def dataset_sort_key(stem: str) -> tuple[int, str]:
    order = DATASET_ORDER.index(stem) if stem in DATASET_ORDER else len(DATASET_ORDER)
    return order, stem


def method_name(trainer: str, config: str, variant: str = "") -> str:
    """The method a run belongs to (what the papers' tables call it)."""
    if trainer.startswith("ZeroshotCLIP"):
        return ZEROSHOT_METHOD
    if trainer == "PLOTPP":
        return "PLOT++ (stage 1)" if variant.startswith("vision_") else "PLOT++"
    if trainer == "IVLP" and "language_only" in config:
        return "DLP"
    return trainer


def method_sort_key(method: str) -> tuple[int, str]:
    order = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return order, method


def config_family(config: str) -> str:
    """The config without its epoch budget: CoOp's few-shot recipe trains 1 shot with
    `rn50_ep50`, 2–4 shots with `rn50_ep100` and 8–16 with `rn50`, all one curve."""
    return EPOCH_TAG.sub("", config)


def ablation_combo(variant: str) -> str:
    """`maskTrue_padTrue_interactFalse` → `C1+C2` (the AMMPL paper's component names)."""
    match = ABLATION_VARIANT.match(variant)
    if not match:
        return variant
    parts = [name for name, on in zip(("C1", "C2", "C3"), match.groups()) if on == "True"]
    return "+".join(parts) if parts else "text prompts only"


def variant_display(variant: str) -> str:
    """`nctx16_cscTrue_ctpmiddle` → `M=16, mid, CSC`; ablation folders → combos."""
    match = COOP_VARIANT.match(variant)
    if match:
        n_ctx, csc, position = match.groups()
        label = f"M={n_ctx}, {'mid' if position == 'middle' else position}"
        return label + (", CSC" if csc == "True" else "")
    plot = PLOT_VARIANT.match(variant)
    if plot:
        return f"M={plot.group(2)}" if plot.group(2) else f"N={plot.group(3)}"
    return ablation_combo(variant)
