"""Trainers on a fake device: placement and dtype checks, FLOP and memory counts, no GPU.

torch's `FakeTensorMode` gives tensors a device, dtype and shape but no data: a model
"on" a fake `cuda` device builds and runs its forward on a CPU-only machine at full
backbone size without memory, and torch raises on a CPU tensor meeting a CUDA one
(`FakeTensorDeviceMismatchError`) where a real GPU would. What torch lacks is added here,
for the duration of `fake_mode()` only:

- the values of small bookkeeping tensors (token ids, EOT positions, labels, attention
  masks), computed on the side on the CPU, so `int(eot.max())` and `.tolist()` work as on
  a real device (`KnownValues`); a float read of an unknown value (`loss.item()`, a
  convergence test) answers 1.0, so a loop with a tolerance runs to its iteration bound,
  and a boolean mask of unknown value selects every element;
- `Module.to` / `.half()` / `.cuda()` on fake parameters (torch swaps tensors there,
  which fake tensors refuse): done with `param.data = …`, as torch does for plain tensors;
  `copy.deepcopy` of fake tensors (MaPLe copies its prompt projections) by cloning;
- the dtype checks of matmuls and convolutions (fake kernels skip them);
- autocast on the fake `cuda` device (torch switches CUDA autocast off without a GPU),
  and `torch.cuda.mem_get_info` answering an empty 80 GB device (AMMPL's automatic
  CLASS_CHUNK reads it).

Backward needs a real CUDA context, so on the fake `cuda` device only forwards run;
FLOP and memory counts of a whole step (`bench/cost.py`) run on the fake `cpu` device,
where backward and optimiser steps work (counts do not depend on the device).
`check_trainer(case, precs)` is the placement check of one trainer and config;
`trainer_cases()` lists every config under configs/trainers/ and every registered
trainer (tests/test_fake_cuda.py runs them all).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from unittest import mock

import torch
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
    UnsupportedFakeTensorException,
    UnsupportedOperatorException,
)
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from ammpl.engine.precision import PRECISIONS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_ROOT = os.path.join(REPO_ROOT, "configs", "trainers")
FAKE_CUDA = torch.device("cuda")
FAKE_CUDA_MEMORY = 80 * 10**9  # bytes free on the fake device (an 80 GB GPU)
FLOAT_READ_VALUE = 1.0  # what `.item()` of a float fake tensor of unknown value answers
KNOWN_MAX_NUMEL = 1 << 16  # values are kept for tensors up to this size
# Trainers with no config folder of their own run on this config (zero-shot CLIP).
DEFAULT_CONFIG = "CoOp/vit_b16.yaml"
# Options that fit a config's block numbers to towers cut to their first blocks
# (`blocks`): TCP's class tokens enter text block LAYER (8 in its config); MMA's adapters
# start at block ADAPTER_START (5): from block 1 they run on every kept block.
SHALLOW_OPTS = {
    "TCP": ("TRAINER.TCP.LAYER", "1"),
    "MMA": ("TRAINER.MMADAPTER.ADAPTER_START", "1"),
}
# Notices that only say the device is fake (a data pointer read for a cache key, no CUDA
# for the GradScaler), silenced inside fake_mode().
FAKE_WARNINGS = (".*data pointer of FakeTensor", ".*GradScaler is enabled, but CUDA")
AUTOCAST_DTYPES = {"amp": torch.float16, "bf16": torch.bfloat16}


aten = torch.ops.aten
# Operators whose CUDA (and CPU) kernels refuse floating inputs of different dtypes; torch's
# fake kernels do not check it, so KnownValues does.
SAME_DTYPE_OPS = {
    aten.mm.default,
    aten.bmm.default,
    aten.addmm.default,
    aten.baddbmm.default,
    aten.addbmm.default,
    aten.mv.default,
    aten.addmv.default,
    aten.dot.default,
    aten.convolution.default,
}


def check_same_dtype(func, args) -> None:
    """The error a real kernel raises when a matmul or convolution mixes dtypes."""
    dtypes = [a.dtype for a in tree_flatten(args)[0] if isinstance(a, torch.Tensor)]
    floating = {d for d in dtypes if d.is_floating_point}
    if len(floating) > 1:
        names = " and ".join(sorted(str(d).removeprefix("torch.") for d in floating))
        raise RuntimeError(f"{func.__name__}: expected the same dtype for every input, got {names}")


class KnownValues(TorchDispatchMode):
    """Keeps the real value of every small fake tensor computed from known values
    (constructors, real tensors, other known tensors: token ids, EOT positions, labels,
    attention masks), and answers `.item()`, `.tolist()` and `torch.equal` with it. Runs
    inside a FakeTensorMode; the values are computed on the CPU. Unknown values: a float
    read answers FLOAT_READ_VALUE, a boolean `unknown_bool` (True), `torch.equal` True, a
    boolean mask selects every element (`nonzero`: the largest shape, an upper bound).
    It also raises on the dtype mixes of SAME_DTYPE_OPS, which fake kernels let through."""

    def __init__(self, max_numel: int = KNOWN_MAX_NUMEL) -> None:
        super().__init__()
        self.max_numel = max_numel
        self.values: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.unknown_bool = True  # what a boolean read of an unknown value answers
        self.unknown_float = FLOAT_READ_VALUE  # and a float read

    def remember(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        with _disable_current_modes():
            self.values[fake] = real.detach().to("cpu")

    def _real(self, arg):
        if isinstance(arg, FakeTensor):
            value = self.values.get(arg)
            if value is None:
                raise LookupError
            return value
        if isinstance(arg, torch.device):
            return torch.device("cpu")
        return arg

    def _unknown_mask(self, index) -> bool:
        return (
            isinstance(index, FakeTensor)
            and index.dtype in (torch.bool, torch.uint8)
            and self.values.get(index) is None
        )

    def _mask_as_indices(self, indices) -> list:
        """Boolean masks of unknown value as integer indices selecting every element."""
        out = []
        for index in indices:
            if self._unknown_mask(index):
                count = index.numel()
                out += [torch.empty(count, dtype=torch.long, device=index.device)] * index.dim()
            else:
                out.append(index)
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in SAME_DTYPE_OPS:
            check_same_dtype(func, args)
        if func is torch.ops.aten._local_scalar_dense.default:
            value = self.values.get(args[0])
            if value is not None:
                with _disable_current_modes():
                    return value.item()
            if args[0].dtype.is_floating_point or args[0].dtype.is_complex:
                return self.unknown_float
            if args[0].dtype == torch.bool:
                return self.unknown_bool
        if func is torch.ops.aten.nonzero.default and self.values.get(args[0]) is None:
            # a boolean mask of unknown value (DPT's selected blocks): every element selected
            mask = args[0]
            return torch.empty((mask.numel(), mask.dim()), dtype=torch.long, device=mask.device)
        if func is torch.ops.aten.index.Tensor and any(self._unknown_mask(i) for i in args[1]):
            args = (args[0], self._mask_as_indices(args[1]), *args[2:])
        if func is torch.ops.aten.equal.default:
            known = [self.values.get(a) for a in args[:2]]
            if any(value is None for value in known):
                return True
            with _disable_current_modes():
                return torch.equal(*known)
        out = func(*args, **kwargs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, FakeTensor)]
        if not outputs or any(t.numel() > self.max_numel for t in outputs):
            return out
        try:
            real_args = tree_map(self._real, args)
            real_kwargs = tree_map(self._real, kwargs)
        except LookupError:
            return out
        try:
            with _disable_current_modes():
                real_out = func(*real_args, **real_kwargs)
        except Exception:  # noqa: BLE001  (a value that cannot be known stays unknown)
            return out
        for fake, real in zip(tree_flatten(out)[0], tree_flatten(real_out)[0]):
            if isinstance(fake, FakeTensor) and isinstance(real, torch.Tensor):
                self.remember(fake, real)
        return out


def _swap_tensors(original):
    """torch.utils.swap_tensors that moves fake parameters with `.data =` instead."""

    def swap(t1: torch.Tensor, t2: torch.Tensor) -> None:
        if isinstance(t1, FakeTensor) or isinstance(t2, FakeTensor):
            with torch.no_grad():
                t1.data = t2.detach()
            t1.fake_device = t2.fake_device  # FakeTensor keeps its device in Python
            return
        original(t1, t2)

    return swap


def _deepcopy_fake(self: FakeTensor, memo: dict) -> torch.Tensor:
    """copy.deepcopy of a fake tensor (torch's copies the storage, which fake tensors
    refuse): a clone with the same requires_grad, a Parameter stays one."""
    if id(self) in memo:
        return memo[id(self)]
    with torch.no_grad():
        copied = self.clone()
    if getattr(self, "_is_param", False):
        copied = nn.Parameter(copied, requires_grad=self.requires_grad)
    elif self.requires_grad:
        copied.requires_grad_(True)
    memo[id(self)] = copied
    return copied


@contextlib.contextmanager
def fake_mode() -> Iterator[FakeTensorMode]:
    """Fake tensors with known integer values and movable modules (see the module doc)."""
    mode = FakeTensorMode(allow_non_fake_inputs=False)
    known = KnownValues()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for message in FAKE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        stack.enter_context(
            mock.patch.object(torch.utils, "swap_tensors", _swap_tensors(torch.utils.swap_tensors))
        )
        stack.enter_context(
            mock.patch.object(FakeTensor, "__deepcopy__", _deepcopy_fake, create=True)
        )
        free = (FAKE_CUDA_MEMORY, FAKE_CUDA_MEMORY)
        stack.enter_context(mock.patch.object(torch.cuda, "mem_get_info", lambda device=None: free))
        stack.enter_context(mode)
        stack.enter_context(known)
        mode.known_values = known
        yield mode


@contextlib.contextmanager
def autocast_on(device: torch.device, precision: str) -> Iterator[None]:
    """The autocast of `precision` (ammpl.engine.precision) on `device`, also on a fake
    `cuda` device: the autocast state is set directly, as `torch.autocast` would on a GPU."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        yield
        return
    kind = device.type
    previous = (torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
    torch.set_autocast_enabled(kind, True)
    torch.set_autocast_dtype(kind, dtype)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled(kind, previous[0])
        torch.set_autocast_dtype(kind, previous[1])


# -- the trainers and configs -------------------------------------------------------------
@dataclass(frozen=True)
class TrainerCase:
    """One trainer at one config file (relative to configs/trainers/), plus options."""

    trainer: str
    config: str
    opts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.trainer}:{self.config}" + (" " + " ".join(self.opts) if self.opts else "")


def registered_trainers() -> list[str]:
    import ammpl.trainers  # noqa: F401  (registers every method)
    from ammpl.engine import TRAINER_REGISTRY

    return list(TRAINER_REGISTRY.registered_names())


def config_folders() -> list[str]:
    return sorted(
        name for name in os.listdir(CONFIG_ROOT) if os.path.isdir(os.path.join(CONFIG_ROOT, name))
    )


def trainer_cases() -> list[TrainerCase]:
    """Every configs/trainers/<Trainer>/*.yaml with its trainer, and every registered trainer
    without a folder on DEFAULT_CONFIG. New trainers and configs are picked up as they land."""
    trainers = registered_trainers()
    cases = []
    for folder in config_folders():
        files = sorted(
            f for f in os.listdir(os.path.join(CONFIG_ROOT, folder)) if f.endswith(".yaml")
        )
        cases += [TrainerCase(folder, f"{folder}/{name}") for name in files]
    folders = set(config_folders())
    cases += [TrainerCase(name, DEFAULT_CONFIG) for name in trainers if name not in folders]
    return cases


def load_case_cfg(case: TrainerCase, opts: tuple[str, ...] = ()):
    """Defaults + every method node ← the config file ← the case's options ← `opts`."""
    import ammpl.trainers  # noqa: F401
    from ammpl.engine import get_cfg_default
    from ammpl.engine.config import merge_from_file, merge_from_list

    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(CONFIG_ROOT, case.config))
    if case.opts or opts:
        merge_from_list(cfg, [*case.opts, *opts])
    return cfg


def model_key(cfg, trainer: str, blocks: int | None = None) -> tuple:
    """What the built model's code path depends on: configs that differ only in schedules,
    data, loaders or PREC (each check sets it) are checked once. With towers cut to
    `blocks` blocks, sizes above `blocks` (context lengths, prompt depths, adapter
    ranges) run the same code as `blocks + 1`, so they count as one."""
    node = trainer_cfg_node(trainer)
    settings = cfg.TRAINER if node is None else cfg.TRAINER.get(node)
    method = {key: value for key, value in settings.items() if key != "PREC"}
    backbone: tuple = (cfg.MODEL.BACKBONE.NAME, tuple(cfg.INPUT.SIZE))
    if blocks is not None:
        method = {key: _size_bucket(value, blocks) for key, value in method.items()}
        backbone = (tower_kind(cfg.MODEL.BACKBONE.NAME),)
    return (
        trainer,
        *backbone,
        cfg.DATASET.NAME,
        str(method) + ("" if node is None else str(cfg.TRAINER.COOP)),
    )


def tower_kind(backbone: str) -> str:
    """ "resnet" or "vit": the image tower's code (every ViT, `mini` included, runs the
    same blocks; widths, patch sizes and resolutions do not change the code path)."""
    from ammpl.clip.backbones import get_backbone_spec

    return "resnet" if get_backbone_spec(backbone).arch.upper().startswith("RN") else "vit"


def _size_bucket(value, blocks: int):
    """Integers above `blocks` as one; floats (weights, scales, rates) as their sign."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value > blocks:
        return f">{blocks}"
    if isinstance(value, float):
        return f"float{(value > 0) - (value < 0):+d}"
    return value


def trainer_cfg_node(trainer: str) -> str | None:
    from ammpl.engine import TRAINER_REGISTRY

    return getattr(TRAINER_REGISTRY.get(trainer), "CFG_NODE", None) or None


@functools.lru_cache(maxsize=8)
def _meta_backbone(name: str, blocks: int | None) -> nn.Module:
    """The architecture on the meta device (shapes only, built once per name)."""
    from ammpl.clip.backbones import build_architecture, check_activation, get_backbone_spec

    spec = get_backbone_spec(name)
    with _disable_current_modes(), torch.device("meta"):
        model = build_architecture(spec)
    check_activation(model, spec)
    if blocks is not None:
        for tower in (getattr(model.visual, "transformer", None), model.transformer):
            if tower is not None and len(tower.resblocks) > blocks:
                tower.resblocks = tower.resblocks[:blocks]
                tower.layers = blocks
        for stage in ("layer1", "layer2", "layer3", "layer4"):  # a ResNet image tower
            layers = getattr(model.visual, stage, None)
            if isinstance(layers, nn.Sequential) and len(layers) > blocks:
                setattr(model.visual, stage, layers[:blocks])
    return model


def random_backbone(
    name: str,
    mode: FakeTensorMode,
    device: torch.device | None = None,
    blocks: int | None = None,
) -> nn.Module:
    """The backbone's architecture at full size as fake tensors on `device` (default the
    CPU, where `load_backbone` leaves it): fp32, frozen, eval mode, nothing downloaded.
    `blocks` keeps only the first blocks of each transformer tower and of each ResNet
    stage (widths, resolution and token counts unchanged): every block runs the same
    code, so a placement or dtype problem shows in the first few as in all of them, at a
    fraction of the time."""
    meta = _meta_backbone(name, blocks)
    device = torch.device("cpu") if device is None else device
    memo: dict[int, torch.Tensor] = {}
    for tensor in [*meta.parameters(), *meta.buffers()]:
        fake = mode.fake_tensor_converter.from_meta_and_device(mode, tensor, device)
        if isinstance(tensor, nn.Parameter):
            fake = nn.Parameter(fake, requires_grad=False)
        memo[id(tensor)] = fake
    model = copy.deepcopy(meta, memo)
    model.ammpl_backbone_name = name
    model.ammpl_source = f"random:{name} (fake tensors)"
    model.ammpl_weights_hash = "fake"
    return model.eval()


def build_trainer(
    case: TrainerCase,
    prec: str,
    device: torch.device,
    mode: FakeTensorMode | None = None,
    backbone: nn.Module | None = None,
    n_classes: int = 3,
    opts: tuple[str, ...] = (),
    blocks: int | None = None,
):
    """The case's trainer with its model built by its own `build_model` on `device`, as
    training builds it (optimisers, schedulers, precision), without data: the backbone is
    the random full-size architecture and the class names are placeholders. Run it under
    `fake_mode()` (`mode`; the backbone is then fake too), or pass a real `backbone`."""
    from ammpl.engine import TRAINER_REGISTRY
    from ammpl.engine.trainer import TrainerBase

    if blocks is not None:
        opts = (*SHALLOW_OPTS.get(case.trainer, ()), *opts)
    cfg = load_case_cfg(case, opts)
    node = trainer_cfg_node(case.trainer)
    if node is not None and "PREC" in cfg.TRAINER[node]:
        cfg.TRAINER[node].PREC = prec
    trainer_cls = TRAINER_REGISTRY.get(case.trainer)
    trainer = trainer_cls.__new__(trainer_cls)
    TrainerBase.__init__(trainer)
    trainer.check_cfg(cfg)
    trainer.cfg = cfg
    trainer.device = device
    trainer.start_epoch = trainer.epoch = 0
    trainer.max_epoch = cfg.OPTIM.MAX_EPOCH
    trainer.batch_idx, trainer.num_batches = 0, 1
    trainer.run_record = None
    classnames = [f"class {i}" for i in range(n_classes)]
    trainer.dm = SimpleNamespace(dataset=SimpleNamespace(classnames=classnames))
    trainer.lab2cname = dict(enumerate(classnames))
    if backbone is None:
        backbone = random_backbone(cfg.MODEL.BACKBONE.NAME, mode, blocks=blocks)
    with (
        mock.patch("ammpl.trainers.base.load_clip_for", lambda cfg, device: backbone),
        contextlib.redirect_stdout(open(os.devnull, "w")),  # noqa: SIM115  (build chatter)
    ):
        trainer.build_model()
        if hasattr(trainer, "load_class_descriptions"):
            placeholder_descriptions(trainer, classnames)
    trainer.autocast = lambda: autocast_on(device, trainer.precision)
    return trainer


def placeholder_descriptions(trainer, classnames: list[str]) -> None:
    """Class descriptions (CoPrompt's, which users supply) written to a temporary file
    and loaded by the trainer's own `load_class_descriptions`, as before training."""
    node = trainer.cfg.TRAINER[trainer_cfg_node(type(trainer).__name__)]
    texts = {name: [f"a photo of a {name}.", f"a picture of the {name}."] for name in classnames}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "descriptions.json")
        with open(path, "w") as file:
            json.dump(texts, file)
        previous, node.DESCRIPTIONS = node.DESCRIPTIONS, path
        try:
            trainer.load_class_descriptions()
        finally:
            node.DESCRIPTIONS = previous


def fake_batch(trainer, batch_size: int, device: torch.device, known: KnownValues):
    """Images of the config's input size and labels (known values) on `device`."""
    height, width = trainer.cfg.INPUT.SIZE
    images = torch.randn(batch_size, 3, height, width, device=device)
    labels_real = torch.arange(batch_size) % len(trainer.dm.dataset.classnames)
    labels = torch.empty(batch_size, dtype=torch.long, device=device)
    known.remember(labels, labels_real)
    return images, labels


def own_step_forward(trainer) -> bool:
    """Whether the trainer's own `forward_backward` runs `model.forward_train` instead of
    `compute_loss` (ProGrad's two gradients), so the check runs that forward too."""
    from ammpl.trainers.base import CLIPPromptTrainer

    overrides = type(trainer).forward_backward is not CLIPPromptTrainer.forward_backward
    return overrides and hasattr(trainer.model, "forward_train")


def training_inputs(trainer, images: torch.Tensor, labels: torch.Tensor) -> tuple:
    """`compute_loss`'s inputs from a batch, by the trainer's own `parse_batch_train`
    (CoPrompt pairs two views of each image)."""
    parsed = trainer.parse_batch_train({"img": images, "label": labels})
    return parsed[0], parsed[1]


# -- the placement and dtype check ---------------------------------------------------------
@dataclass
class CheckResult:
    """Outcome of one trainer, config and PREC; `problem` None means it passed."""

    case: TrainerCase
    prec: str
    precision: str = ""
    problem: str | None = None
    # True when the problem is a gap in torch's fake tensors, not in the trainer
    unsupported: bool = False

    def describe(self) -> str:
        return f"{self.case.label} PREC {self.prec}: {self.problem or 'ok'}"


def offending_line(error: BaseException) -> str:
    """file:line (code) of the innermost frame outside torch and this module."""
    here = os.path.abspath(__file__)
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not os.path.abspath(frame.filename).startswith(torch_dir)
        and os.path.abspath(frame.filename) != here
        and "contextlib" not in frame.filename
        and "unittest" not in frame.filename
    ]
    if not frames:
        return "(inside torch)"
    frame = frames[-1]
    path = os.path.relpath(frame.filename, REPO_ROOT)
    return f"{path}:{frame.lineno} ({(frame.line or '').strip()})"


def _expect(tensor: torch.Tensor, what: str, device: torch.device) -> None:
    if tensor.device.type != device.type:
        raise AssertionError(f"{what} is on {tensor.device}, expected {device}")
    if tensor.dtype != torch.float32:
        raise AssertionError(f"{what} has dtype {tensor.dtype}, expected torch.float32")


def set_precision(trainer, prec: str) -> str:
    """Switch a built trainer to PREC `prec` (the config value and the resolved mode)."""
    from ammpl.engine.precision import resolve_precision

    node = trainer_cfg_node(type(trainer).__name__)
    if node is not None and "PREC" in trainer.cfg.TRAINER[node]:
        trainer.cfg.TRAINER[node].PREC = prec
    trainer.precision = resolve_precision(trainer.requested_precision(), trainer.device)
    return trainer.precision


def weight_forms(case: TrainerCase, precs: tuple[str, ...]) -> dict[bool, list[str]]:
    """The precs grouped by whether the trainer runs them on the reference half model (the
    only build difference between modes): {half: [prec, ...]}."""
    from ammpl.engine import TRAINER_REGISTRY

    trainer_cls = TRAINER_REGISTRY.get(case.trainer)
    shell = trainer_cls.__new__(trainer_cls)
    shell.cfg, shell.device = load_case_cfg(case), FAKE_CUDA
    groups: dict[bool, list[str]] = {}
    for prec in precs:
        groups.setdefault(set_precision(shell, prec) == "fp16", []).append(prec)
    return groups


TORCH_GAPS = (
    DataDependentOutputException,
    DynamicOutputShapeException,
    UnsupportedFakeTensorException,
    UnsupportedOperatorException,
)


def _record(result: CheckResult, error: BaseException, prefix: str = "") -> None:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    result.problem = f"{prefix}{type(error).__name__}: {message} at {offending_line(error)}"
    result.unsupported = isinstance(error, TORCH_GAPS)


def _run_forwards(trainer, images, labels, device: torch.device) -> None:
    if getattr(type(trainer), "LEARNS", True):
        trainer.set_model_mode("train")
        train_images, train_labels = training_inputs(trainer, images, labels)
        with trainer.autocast():
            loss, output, _ = trainer.compute_loss(train_images, train_labels)
        _expect(loss, "the training loss", device)
        if output.device.type != device.type:
            raise AssertionError(f"the training logits are on {output.device}")
        if own_step_forward(trainer):  # ProGrad's step: logits and zero-shot logits
            with trainer.autocast():
                outputs = trainer.model.forward_train(train_images)
            for tensor in tree_flatten(outputs)[0]:
                if isinstance(tensor, torch.Tensor) and tensor.device.type != device.type:
                    raise AssertionError(f"forward_train gives a tensor on {tensor.device}")
    trainer.model.eval()
    for model in trainer._models.values():
        model.eval()
    logits = trainer.model_inference(images)
    _expect(logits, "the evaluation logits", device)
    expected = (images.shape[0], len(trainer.dm.dataset.classnames))
    if tuple(logits.shape) != expected:
        raise AssertionError(f"the evaluation logits have shape {tuple(logits.shape)}")


def check_trainer(
    case: TrainerCase,
    precs: tuple[str, ...] = PRECISIONS,
    batch_size: int = 2,
    blocks: int | None = None,
) -> list[CheckResult]:
    """For each PREC: build the case's model on the fake CUDA device, run its training
    forward (the loss `forward_backward` differentiates) and its evaluation forward
    (`model_inference`) on fake CUDA inputs. Any device or dtype mismatch is the result's
    problem, with the line that raised it. One build serves every mode of a weight form;
    `blocks` cuts the towers (see `random_backbone`)."""
    results = {prec: CheckResult(case, prec) for prec in precs}
    device = FAKE_CUDA
    for group in weight_forms(case, precs).values():
        with fake_mode() as mode:
            # placement only: a loop with a tolerance (PLOT's Sinkhorn) stops after one round
            mode.known_values.unknown_float = 0.0
            try:
                trainer = build_trainer(case, group[0], device, mode, blocks=blocks)
                images, labels = fake_batch(trainer, batch_size, device, mode.known_values)
            except Exception as error:  # noqa: BLE001  (reported with its line)
                for prec in group:
                    _record(results[prec], error, "building: ")
                continue
            for prec in group:
                result = results[prec]
                try:
                    result.precision = set_precision(trainer, prec)
                    _run_forwards(trainer, images, labels, device)
                except Exception as error:  # noqa: BLE001  (reported with its line)
                    _record(result, error)
    return [results[prec] for prec in precs]
