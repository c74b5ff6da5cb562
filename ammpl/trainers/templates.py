"""Hand-written prompt templates (facts from the CLIP and CoOp papers' released prompts).

CUSTOM_TEMPLATES is the one template per dataset that zero-shot CLIP uses; the two
ImageNet lists are the ensemble templates (ZeroshotCLIP2 uses the 7-template selection).
PromptSRC's teacher ensemble and KgCoOp's hand-crafted prompts are derived from them.
`encode_templates` is the one place class names are filled into templates and encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CUSTOM_TEMPLATES: dict[str, str] = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
    "Shapes": "a photo of a {}.",
    "MiniColors": "a photo of a {}.",
    "MiniColorPatterns": "a photo of a {}.",
    "MiniScenes": "a photo of a {}.",
    "MiniObjects": "a photo of a {}.",
    "MiniObjectsV2": "a photo of a {}.",
    "MiniObjectsSketch": "a photo of a {}.",
    "MiniObjectsA": "a photo of a {}.",
    "MiniObjectsR": "a photo of a {}.",
    "MiniObjectPatterns": "a photo of a {}.",
}

DEFAULT_TEMPLATE = "a photo of a {}."

IMAGENET_TEMPLATES_SELECT: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)


def dataset_template(dataset_name: str) -> str:
    """The zero-shot template of a dataset (the generic one for datasets not listed)."""
    return CUSTOM_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


# PromptSRC's teacher ensemble: "a photo of a {}." first, then the other templates among
# the first 60 of IMAGENET_TEMPLATES, in their order (60 in all; its `imagenet_templates.py`).
PROMPTSRC_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",) + tuple(
    t for t in IMAGENET_TEMPLATES[:60] if t != "a photo of a {}."
)

# KgCoOp's hand-crafted prompt: CUSTOM_TEMPLATES except for textures.
KGCOOP_TEMPLATE_OVERRIDES: dict[str, str] = {
    "DescribableTextures": "a photo of a {}, a type of texture.",
}


def kgcoop_template(dataset_name: str) -> str:
    """KgCoOp's hand-crafted template of a dataset."""
    return KGCOOP_TEMPLATE_OVERRIDES.get(dataset_name, dataset_template(dataset_name))


@torch.no_grad()
def encode_templates(
    text_encoder: torch.nn.Module,
    classnames: Sequence[str],
    templates: Sequence[str],
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Un-normalised text features (T, K, e) of every template filled with every class name
    (underscores read as spaces), `chunk_size` sentences per pass through `text_encoder`."""
    from ammpl.clip.tokenizer import tokenize

    device = text_encoder.positional_embedding.device
    names = [name.replace("_", " ") for name in classnames]
    token_ids = tokenize([t.format(n) for t in templates for n in names]).to(device)
    features = torch.cat(
        [
            text_encoder.encode_token_ids(token_ids[start : start + chunk_size])
            for start in range(0, token_ids.shape[0], chunk_size)
        ]
    )
    return features.reshape(len(templates), len(names), -1)


# ProGrad's zero-shot teacher prompt (and context initialisation): CUSTOM_TEMPLATES with
# the type phrase moved to the front for five datasets (its `trainers/prograd.py`).
PROGRAD_TEMPLATE_OVERRIDES: dict[str, str] = {
    "OxfordPets": "a type of pet, a photo of a {}.",
    "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.",
    "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
}


def prograd_template(dataset_name: str) -> str:
    """ProGrad's hand-crafted template of a dataset."""
    return PROGRAD_TEMPLATE_OVERRIDES.get(dataset_name, dataset_template(dataset_name))


# TCP's hand-crafted prompt, the source of its class-aware tokens and of its consistency
# term: KgCoOp's, except for aircraft and food (its `CUSTOM_TEMPLATES_ori`).
TCP_HAND_TEMPLATE_OVERRIDES: dict[str, str] = {
    "FGVCAircraft": "a photo of an aircraft {}.",
    "Food101": "a photo of a {}, a type of food.",
}


def tcp_hand_template(dataset_name: str) -> str:
    """TCP's hand-crafted template of a dataset."""
    return TCP_HAND_TEMPLATE_OVERRIDES.get(dataset_name, kgcoop_template(dataset_name))


# What follows TCP's learnable context in its prompt of each dataset (its `CUSTOM_TEMPLATES`
# without the four leading context words; StanfordCars has no final period there).
TCP_SCAFFOLDS: dict[str, str] = {
    "OxfordPets": "{}, a type of pet.",
    "OxfordFlowers": "{}, a type of flower.",
    "FGVCAircraft": "{}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "StanfordCars": "{}, a type of car",
    "Food101": "{}, a type of food.",
    "UCF101": "person doing {}.",
}


def tcp_scaffold(dataset_name: str) -> str:
    """The text after TCP's context slots, "{}" for the class name ("{}." if not listed)."""
    return TCP_SCAFFOLDS.get(dataset_name, "{}.")
