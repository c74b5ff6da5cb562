"""The mini benchmark: downstream datasets drawn from the mini world, in CoOp's layout.

Each dataset is a different label space over the world's words, drawn in a style that
pretraining never showed (the analogue of EuroSAT or DTD for CLIP), so zero-shot `mini`
is well above chance but far from perfect:

- MiniColors (12 classes): name the colour ("red shape"); a strong orange light over a
  plain grey canvas, nothing else: the purest "consistent shift" of the three.
- MiniColorPatterns (32 classes): name colour and pattern ("red striped shape"); blue
  light over a cluttered canvas.
- MiniScenes (36 classes): name colour and background ("blue shape on sand"); green
  light, blurred and noisy photos.

The light is the same for every image of a dataset: a consistent domain shift that
misleads zero-shot and that a few labelled shots can correct.

The object datasets (MiniObjects and its domain-generalisation targets MiniObjectsV2,
-Sketch, -A and -R; MiniObjectPatterns) label the object instead, drawn as photos by
`ammpl.mini.objects` with an object mask per image under `masks/`.

Layout per dataset (what CoOp's readers expect): `<root>/<folder>/images/<class folder>/
<n>.png`, `split_zhou_<Name>.json` ([path, label, class name] lists) and `classnames.txt`.
All pixels and splits come from one seeded Generator per dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ammpl.mini.objects import PhotoStyle, render_photo
from ammpl.mini.world import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, Style, render, sample_scene
from ammpl.utils.errors import DataError
from ammpl.utils.generated import ensure_generated
from ammpl.utils.io import atomic_write_text, write_json

SPLIT_SIZES: tuple[tuple[str, int], ...] = (("train", 24), ("val", 6), ("test", 24))
# Bumped whenever the pixels or splits of a dataset change (styles, world, sizes): a cached
# folder from another version is rebuilt, so published numbers always meet the same images.
# The colour datasets are at 2; a spec's own `version` says which version built it.
GENERATOR_VERSION = 2
VERSION_FILE = "mini_version.txt"
MASK_DIR = "masks"  # object datasets: masks/<class>/<n>.png, white where the object is


@dataclass(frozen=True)
class MiniClass:
    """One class: its folder, its name in words and the scene factors it pins."""

    folder: str
    name: str
    factors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MiniDatasetSpec:
    name: str  # reader name (DATASET.NAME)
    folder: str  # folder under the data root
    classes: tuple[MiniClass, ...]
    style: Style
    seed: int
    # Object datasets: drawn as photos (ammpl.mini.objects), with object masks beside the images.
    photo: PhotoStyle | None = None
    version: int = GENERATOR_VERSION

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.name}.json"


def _class(name: str, **factors: str) -> MiniClass:
    return MiniClass(name.replace(" ", "_"), name, factors)


MINI_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown")
SCENE_COLOURS = ("red", "blue", "yellow", "purple", "pink", "white")

# ---------------------------------------------------------------- object datasets
# The label is the object; colour, pattern, background, clutter, count, position and size
# vary and do not matter. All are drawn under one light pretraining never showed.
OBJECT_SHAPES: tuple[str, ...] = SHAPES
OBJECT_LOOK = Style(cast=0.25, tint=(255, 200, 120), noise=6.0)
OBJECT_PHOTO = PhotoStyle()
_SHAPE_CLASSES = tuple(_class(shape, shape=shape) for shape in OBJECT_SHAPES)
# Version 3: 0-3 clutter items behind the object (was 0-6), the default PhotoStyle; with
# 0-6 the mini weights named 22 % of MiniObjects-style photos, below the 3 × chance aim (25 %),
# with 0-3 about 29 % (docs/MINI.md, round 3). Datasets with their own clutter keep version 2.
OBJECT_VERSION = 3


def _objects(
    name: str, folder: str, seed: int, photo: PhotoStyle, version: int = OBJECT_VERSION
) -> MiniDatasetSpec:
    return MiniDatasetSpec(name, folder, _SHAPE_CLASSES, OBJECT_LOOK, seed, photo, version)


OBJECT_DATASETS: tuple[MiniDatasetSpec, ...] = (
    # The source of the domain-generalisation family (the ImageNet analogue) ...
    _objects("MiniObjects", "mini_objects", 404, OBJECT_PHOTO),
    # ... and its four targets, with its class names: a fresh draw of the same style,
    _objects("MiniObjectsV2", "mini_objects_v2", 405, OBJECT_PHOTO),
    # outline drawings on paper,
    _objects("MiniObjectsSketch", "mini_objects_sketch", 406,
             PhotoStyle(sketch=True, clutter=(0, 3)), version=GENERATOR_VERSION),
    # hard photos: occluded, off-centre, smaller objects in heavy clutter,
    _objects("MiniObjectsA", "mini_objects_a", 407,
             PhotoStyle(clutter=(12, 24), occluders=(1, 2), radius=(9.0, 16.0), jitter=9.0),
             version=GENERATOR_VERSION),
    # other renditions: any colour, fills and canvases pretraining never showed.
    _objects("MiniObjectsR", "mini_objects_r", 408,
             PhotoStyle(palette="any", textures="new", backgrounds=("clutter",))),
    # Fine-grained: the object and its pattern ("striped star"), 48 classes.
    MiniDatasetSpec(
        "MiniObjectPatterns",
        "mini_objectpatterns",
        tuple(
            _class(f"{pattern} {shape}", shape=shape, pattern=pattern)
            for shape in OBJECT_SHAPES
            for pattern in PATTERNS
        ),
        OBJECT_LOOK,
        409,
        OBJECT_PHOTO,
        OBJECT_VERSION,
    ),
)  # fmt: skip
DG_SOURCE = "MiniObjects"
DG_TARGETS: tuple[str, ...] = ("MiniObjectsV2", "MiniObjectsSketch", "MiniObjectsA", "MiniObjectsR")

MINI_DATASETS: dict[str, MiniDatasetSpec] = {
    spec.name: spec
    for spec in (
        MiniDatasetSpec(
            name="MiniColors",
            folder="mini_colors",
            classes=tuple(_class(f"{colour} shape", colour=colour) for colour in COLOURS),
            style=Style(cast=0.4, tint=(255, 160, 40), backgrounds="clutter"),
            seed=101,
        ),
        MiniDatasetSpec(
            name="MiniColorPatterns",
            folder="mini_colorpatterns",
            classes=tuple(
                _class(f"{colour} {pattern} shape", colour=colour, pattern=pattern)
                for colour in MINI_COLOURS
                for pattern in PATTERNS
            ),
            style=Style(
                cast=0.25, tint=(60, 110, 255), noise=10.0, clutter=8, backgrounds="clutter"
            ),
            seed=202,
        ),
        MiniDatasetSpec(
            name="MiniScenes",
            folder="mini_scenes",
            classes=tuple(
                _class(f"{colour} shape on {background}", colour=colour, background=background)
                for background in BACKGROUNDS
                for colour in SCENE_COLOURS
            ),
            style=Style(cast=0.35, tint=(90, 255, 120), blur=1.0, noise=16.0, clutter=6),
            seed=303,
        ),
        *OBJECT_DATASETS,
    )
}


def generate_dataset(
    spec: MiniDatasetSpec,
    dataset_dir: str,
    *,
    pinned: dict[str, str] | None = None,
    post: Callable[[Image.Image], Image.Image] | None = None,
) -> None:
    """Write the images, split file and class names of `spec` into `dataset_dir`.

    `pinned` fixes scene factors for every image (e.g. count "1") and `post` edits every
    finished image: the style variants of bench/mini_object_variants.py.
    """
    rng = np.random.default_rng(spec.seed)
    split: dict[str, list] = {part: [] for part, _ in SPLIT_SIZES}
    for label, cls in enumerate(spec.classes):
        class_dir = os.path.join(dataset_dir, "images", cls.folder)
        os.makedirs(class_dir, exist_ok=True)
        mask_dir = os.path.join(dataset_dir, MASK_DIR, cls.folder)
        if spec.photo is not None:
            os.makedirs(mask_dir, exist_ok=True)
        index = 0
        for part, count in SPLIT_SIZES:
            for _ in range(count):
                factors = {**cls.factors, **(pinned or {})}
                if spec.photo is None:
                    scene = sample_scene(rng, **{"count": "1", **factors})
                    image = render(scene, rng, spec.style)
                else:
                    image, mask = render_photo(
                        sample_scene(rng, **factors), rng, spec.photo, spec.style
                    )
                    Image.fromarray(mask).save(os.path.join(mask_dir, f"{index:04d}.png"))
                if post is not None:
                    image = post(image)
                image.save(os.path.join(class_dir, f"{index:04d}.png"))
                split[part].append([f"{cls.folder}/{index:04d}.png", label, cls.name])
                index += 1
    write_json(split, os.path.join(dataset_dir, spec.split_file))
    atomic_write_text(
        os.path.join(dataset_dir, "classnames.txt"),
        "".join(f"{cls.folder} {cls.name}\n" for cls in spec.classes),
    )
    atomic_write_text(os.path.join(dataset_dir, VERSION_FILE), f"{spec.version}\n")


def built_version(dataset_dir: str) -> int:
    """The generator version a dataset folder was built by (1: before versions were kept)."""
    try:
        with open(os.path.join(dataset_dir, VERSION_FILE)) as handle:
            return int(handle.read().strip() or 0)
    except FileNotFoundError:
        return 1
    except ValueError:
        return 0


def _set_aside_if_stale(root: str, spec: MiniDatasetSpec) -> bool:
    """Move a folder built by another generator version out of the way; whether it was."""
    dataset_dir = os.path.join(root, spec.folder)
    if not os.path.isfile(os.path.join(dataset_dir, spec.split_file)):
        return False
    if built_version(dataset_dir) == spec.version:
        return False
    stale = tempfile.mkdtemp(prefix=f".{spec.folder}-stale-", dir=root)
    try:
        os.rename(dataset_dir, os.path.join(stale, spec.folder))
    except OSError:  # a concurrent run moved it first
        pass
    shutil.rmtree(stale, ignore_errors=True)
    return True


def ensure_dataset(root: str, spec: MiniDatasetSpec) -> tuple[str, str]:
    """`<root>/<folder>`, generated first if absent or stale (atomically); and what happened:
    "built", "rebuilt (older generator)" or "kept".

    A complete folder built by another version of its spec is replaced: it is generated data
    (never user data), and keeping it would pair this release's numbers with other images.
    """
    stale = _set_aside_if_stale(root, spec)
    folder, built = ensure_generated(
        root,
        spec.folder,
        spec.split_file,
        lambda tmp_dir: generate_dataset(spec, tmp_dir),
        "the mini benchmark",
        regenerate_hint=f"remove the folder to regenerate it with `ammpl-data mini --root {root}`",
        root_hint="pass a writable --root",
    )
    if not built:
        return folder, "kept"
    return folder, "rebuilt (older generator)" if stale else "built"


def build_benchmark(root: str, names: list[str] | None = None, log=print) -> list[str]:
    """Every mini dataset (or those named) under `root`; existing ones are kept."""
    chosen = names or list(MINI_DATASETS)
    unknown = [name for name in chosen if name not in MINI_DATASETS]
    if unknown:
        raise DataError(
            f"unknown mini dataset {unknown[0]!r}; choose from {', '.join(MINI_DATASETS)}"
        )
    folders = []
    for name in chosen:
        spec = MINI_DATASETS[name]
        folder, action = ensure_dataset(root, spec)
        log(f"{action} {name}: {folder} ({len(spec.classes)} classes)")
        folders.append(folder)
    return folders
