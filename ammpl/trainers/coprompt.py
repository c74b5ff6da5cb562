"""CoPrompt: consistency-guided prompt learning (Roy & Etemad, ICLR 2024).

MaPLe's coupled multi-modal prompts (`MaPLeCLIP`) plus two feature adapters (Linear e → e/4,
ReLU, Linear e/4 → e, ReLU, no biases) mixed into the final features,
f ← 0.1·A_img(f) + 0.9·f for images and t ← 0.2·A_txt(t) + 0.8·t for text, trained with

    L = CE(logits, y) + W · (d(t̂, ĝ_j) + d(f̂, ĝ_img))

t̂, f̂: the learned (adapted, L2-normalised) class and image features; ĝ_j: frozen CLIP's
features of description j of every class (one j drawn per step with Python's `random`, as
the reference), the LLM-written class descriptions the user supplies; ĝ_img: frozen CLIP's
feature of a second augmented view of the image (`DATALOADER.K_TRANSFORMS 2`); d: 1 − mean
cosine (DISTILL "cosine", eps 1e-7) or the mean squared error ("mse"). The frozen encoders
are the run's own CLIP towers without prompts or adapters (the reference loads a second copy
of the same weights). Descriptions are read when training starts (evaluation needs none):
TRAINER.CoPrompt.DESCRIPTIONS names a JSON file or a folder of `<dataset>_prompt.json`
files, each {"class name": ["description", ...]} (the reference's `gpt_file/` format).
"""

from __future__ import annotations

import json
import os
import random

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tokenizer import tokenize
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import normalise
from ammpl.trainers.ivlp import ReferenceCheckpointMixin
from ammpl.trainers.maple import MaPLeCLIP
from ammpl.utils import ConfigError, DataError

COSINE_EPS = 1e-7
IMAGE_ADAPTER_MIX = 0.1
TEXT_ADAPTER_MIX = 0.2
ADAPTER_REDUCTION = 4
DISTILL_CHOICES = ("cosine", "mse")
# cfg.DATASET.NAME → the reference's description file stem (`gpt_file/<stem>_prompt.json`);
# other datasets: the name lower-cased.
DESCRIPTION_STEMS = {
    "Caltech101": "caltech",
    "DescribableTextures": "dtd",
    "EuroSAT": "eurosat",
    "FGVCAircraft": "fgvc",
    "Food101": "food101",
    "ImageNet": "imagenet",
    "ImageNetA": "imagenet_a",
    "ImageNetR": "imagenet_r",
    "ImageNetSketch": "imagenet_sketch",
    "ImageNetV2": "imagenetv2",
    "OxfordFlowers": "oxford_flowers",
    "OxfordPets": "oxford_pets",
    "StanfordCars": "stanford_cars",
    "SUN397": "sun397",
    "UCF101": "ucf101",
}
DESCRIPTION_FORMAT = '{"class name": ["description", ...], ...}'


def extend_cfg(cfg: CN) -> None:
    """The reference's TRAINER.CoPrompt node; its TRAINER.W and TRAINER.DISTILL live here."""
    cfg.TRAINER.CoPrompt = CN()
    cfg.TRAINER.CoPrompt.N_CTX = 2
    cfg.TRAINER.CoPrompt.CTX_INIT = "a photo of a"
    cfg.TRAINER.CoPrompt.PREC = "fp16"
    cfg.TRAINER.CoPrompt.PROMPT_DEPTH = 9
    cfg.TRAINER.CoPrompt.W = 8.0
    cfg.TRAINER.CoPrompt.DISTILL = "cosine"
    cfg.TRAINER.CoPrompt.DESCRIPTIONS = "gpt_file"


register_cfg_extension(extend_cfg)


def description_file(setting: str, dataset_name: str) -> str:
    """The description file for a dataset: `setting` itself when it ends in .json, else
    `<setting>/<stem>_prompt.json` (a folder, as the reference's gpt_file/)."""
    if setting.endswith(".json"):
        return setting
    stem = DESCRIPTION_STEMS.get(dataset_name, dataset_name.lower())
    return os.path.join(setting, f"{stem}_prompt.json")


def load_descriptions(setting: str, dataset_name: str, classnames: list[str]) -> list[list[str]]:
    """Descriptions of each class (underscores in names read as spaces), as many per class;
    one-line DataError naming the file and the format when anything is off."""
    path = description_file(setting, dataset_name)
    where = f"TRAINER.CoPrompt.DESCRIPTIONS = {setting!r}"
    if not os.path.isfile(path):
        raise DataError(
            f"CoPrompt needs LLM-written class descriptions for {dataset_name}: no file {path} "
            f"({where}: a JSON file, or a folder of <dataset>_prompt.json files as the "
            f"reference's gpt_file/, each {DESCRIPTION_FORMAT})"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except (OSError, ValueError) as error:
        raise DataError(
            f"cannot read class descriptions {path}: {error}; expected {DESCRIPTION_FORMAT}"
        ) from None
    if not isinstance(table, dict):
        raise DataError(f"class descriptions {path} must be a JSON object {DESCRIPTION_FORMAT}")
    names = [name.replace("_", " ") for name in classnames]
    missing = [name for name in names if name not in table]
    if missing:
        raise DataError(
            f"class descriptions {path} lack {len(missing)} of the {len(names)} classes "
            f"(e.g. {missing[:3]}); keys must be the class names with spaces for underscores"
        )
    lists = [table[name] for name in names]
    bad = [n for n, d in zip(names, lists) if not isinstance(d, list) or not d]
    if bad or any(not isinstance(text, str) for d in lists for text in d):
        raise DataError(
            f"class descriptions {path}: every class needs a non-empty list of strings "
            f"(first bad: {(bad or names)[0]!r})"
        )
    counts = {len(d) for d in lists}
    if len(counts) != 1:
        raise DataError(
            f"class descriptions {path}: every class needs the same number of descriptions "
            f"(found {sorted(counts)}); one description index is drawn for all classes per step"
        )
    return lists


@torch.no_grad()
def encode_descriptions(
    text_encoder: TextEncoder, descriptions: list[list[str]], chunk_size: int = 1024
) -> torch.Tensor:
    """Frozen CLIP's L2-normalised features (D, K, e) of description d of class k."""
    n_desc = len(descriptions[0])
    texts = [descriptions[k][d] for d in range(n_desc) for k in range(len(descriptions))]
    device = text_encoder.positional_embedding.device
    token_ids = tokenize(texts).to(device)
    features = torch.cat(
        [
            text_encoder.encode_token_ids(token_ids[start : start + chunk_size])
            for start in range(0, token_ids.shape[0], chunk_size)
        ]
    )
    return normalise(features).reshape(n_desc, len(descriptions), -1)


class FeatureAdapter(nn.Module):
    """Linear e → e/r, ReLU, Linear e/r → e, ReLU, no biases (reference key names `fc.*`)."""

    def __init__(self, width: int, reduction: int = ADAPTER_REDUCTION) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(width, width // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(width // reduction, width, bias=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def consistency(student: torch.Tensor, teacher: torch.Tensor, distill: str) -> torch.Tensor:
    """d(student, teacher) on L2-normalised rows, in fp32."""
    student, teacher = student.float(), teacher.float()
    if distill == "cosine":
        return 1.0 - F.cosine_similarity(student, teacher, dim=1, eps=COSINE_EPS).mean()
    return F.mse_loss(student, teacher)


class CoPromptCLIP(MaPLeCLIP):
    """MaPLe's model with the two feature adapters and the consistency terms."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        if node.DISTILL not in DISTILL_CHOICES:
            raise ConfigError(
                f"TRAINER.CoPrompt.DISTILL must be one of {', '.join(DISTILL_CHOICES)}, "
                f"got {node.DISTILL!r}"
            )
        super().__init__(node, classnames, clip_model)
        projection = self.text_encoder.text_projection
        linear = isinstance(projection, nn.Linear)
        width = projection.out_features if linear else projection.shape[1]
        dtype = self.text_encoder.dtype
        device = clip_model.ln_final.weight.device
        self.adapter_image = FeatureAdapter(width).to(device=device, dtype=dtype)
        self.adapter_text = FeatureAdapter(width).to(device=device, dtype=dtype)
        self.weight = float(node.W)
        self.distill = node.DISTILL
        # (D, K, e), set by the trainer before training (`set_descriptions`).
        self.register_buffer("description_features", None, persistent=False)

    def set_descriptions(self, descriptions: list[list[str]]) -> None:
        self.description_features = encode_descriptions(self.text_encoder, descriptions)

    def adapted_text(self) -> torch.Tensor:
        text = self.text_features()
        return TEXT_ADAPTER_MIX * self.adapter_text(text) + (1 - TEXT_ADAPTER_MIX) * text

    def adapted_image(self, image: torch.Tensor) -> torch.Tensor:
        feature = self.image_features(image)
        return IMAGE_ADAPTER_MIX * self.adapter_image(feature) + (1 - IMAGE_ADAPTER_MIX) * feature

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        text, feature = normalise(self.adapted_text()), normalise(self.adapted_image(image))
        return self.logit_scale.exp() * feature @ text.t()

    def train_loss(
        self, image: torch.Tensor, view: torch.Tensor, label: torch.Tensor, index: int
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(CE + W·(text + image consistency), logits, terms) for description `index` and
        `view`, the second augmented view of `image`."""
        if self.description_features is None:
            raise RuntimeError("set_descriptions() must be called before training CoPrompt")
        text, feature = normalise(self.adapted_text()), normalise(self.adapted_image(image))
        logits = self.logit_scale.exp() * feature @ text.t()
        with torch.no_grad():
            teacher_text = normalise(self.description_features[index])
            teacher_image = normalise(self.image_encoder(view))
        text_term = consistency(text, teacher_text, self.distill)
        image_term = consistency(feature, teacher_image, self.distill)
        ce = F.cross_entropy(logits.float(), label)
        loss = ce + self.weight * (text_term + image_term)
        return loss, logits, {"ce": ce, "cons_text": text_term, "cons_image": image_term}


@TRAINER_REGISTRY.register()
class CoPrompt(ReferenceCheckpointMixin, CLIPPromptTrainer):
    """Consistency-guided prompt learning; the whole model is registered (reference layout:
    `MultiModalPromptLearner/`, keys `prompt_learner.*`, `adapter_image.*`, `adapter_text.*`)."""

    CFG_NODE = "CoPrompt"
    IMAGE_TOWER = "vit"
    MODEL_NAME = "MultiModalPromptLearner"
    REGISTER_WHOLE_MODEL = True
    REFERENCE_KEY_MAP = ()

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return CoPromptCLIP(self.cfg.TRAINER.CoPrompt, classnames, clip_model)

    def before_train(self) -> None:
        self.load_class_descriptions()
        super().before_train()

    def load_class_descriptions(self) -> None:
        """The user's class descriptions (TRAINER.CoPrompt.DESCRIPTIONS), encoded once."""
        descriptions = load_descriptions(
            self.cfg.TRAINER.CoPrompt.DESCRIPTIONS,
            self.cfg.DATASET.NAME,
            self.dm.dataset.classnames,
        )
        print(f"Class descriptions: {len(descriptions[0])} per class")
        self.model.set_descriptions(descriptions)

    def parse_batch_train(self, batch: dict):
        """Two augmented views (DATALOADER.K_TRANSFORMS 2): the first is classified, the
        second feeds the frozen image encoder; with one view, both are that view."""
        views = batch["img"]
        if not isinstance(views, (list, tuple)):
            views = [views, views]
        label = batch["label"].to(self.device)
        return (views[0].to(self.device), views[1].to(self.device)), label

    def compute_loss(self, image, label: torch.Tensor):
        image, view = image
        index = random.randint(0, self.model.description_features.shape[0] - 1)
        loss, logits, terms = self.model.train_loss(image, view, label, index)
        return loss, logits, {name: value.item() for name, value in terms.items()}
