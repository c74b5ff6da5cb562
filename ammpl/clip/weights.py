"""Finding, reading and checking CLIP weight files.

Resolution order for a backbone, stopping at the first hit (ARCHITECTURE.md, "open_clip
for CLIP"): explicit file (`path` argument / MODEL.BACKBONE.PATH, then the
AMMPL_CLIP_PATH environment variable) → the file shipped in the package (`mini` only) →
OpenAI-format file in the CLIP cache (`~/.cache/clip/<OpenAI file name>`) → open_clip /
Hugging Face cache (local files only) → download through open_clip (skipped offline). When
everything fails, one error lists every place that was tried and the command that fetches
the weights.

Reading accepts what users already have: OpenAI's TorchScript archives, plain state
dicts (also wrapped in {"state_dict": ...} and with DistributedDataParallel's "module."
prefix) and the Hugging Face hub's .bin / .safetensors files. A truncated or corrupt
file is reported with its path, a file for another architecture with the first key
whose shape differs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ammpl.utils import BackboneError

ENV_CLIP_PATH = "AMMPL_CLIP_PATH"
CONNECT_TIMEOUT_S = 3.0
HASH_CHUNK_BYTES = 1 << 20
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# Entries OpenAI's TorchScript archives carry besides the weights.
JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_TRUE_VALUES = {"1", "true", "yes", "on"}


class WeightsNotFoundError(BackboneError):
    """No source had the weights; `places` lists where we looked (short form, for notices)."""

    def __init__(self, message: str, places: list[str]) -> None:
        super().__init__(message)
        self.places = places


@dataclass(frozen=True)
class WeightSources:
    """Where a backbone's weights can come from (data, like open_clip's pretrained table)."""

    display_name: str  # the name users typed, for messages
    openai_file: str | None = None  # file name in ~/.cache/clip (OpenAI's naming)
    hf_hub: str | None = None  # "org/repo/" or "org/repo/file", open_clip's convention
    url: str | None = None  # direct download (OpenAI / open_clip releases)
    fetch_command: str | None = None  # shell command that puts the weights into a cache
    bundled: str | None = None  # a file shipped inside the package (the mini backbone)


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    kind: str  # path | env | clip-cache | hf-cache | download

    def describe(self) -> str:
        """`kind:path`, recorded in logs and results.json."""
        return f"{self.kind}:{self.path}"


# -- cache locations --------------------------------------------------------------------
def clip_cache_dir() -> Path:
    """OpenAI's CLIP download folder (what CoOp users already have)."""
    return Path(os.path.expanduser("~/.cache/clip"))


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time.

    huggingface_hub reads HF_HOME / HF_HUB_CACHE once at import; computing the folder
    here means a later change of those variables is honoured too.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expanduser(os.environ[variable]))
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(os.path.expanduser(hf_home)) / "hub"


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE_VALUES


def network_reachable(host: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True when a TCP connection to host:443 opens within `timeout` seconds.

    Runs in a daemon thread so that a hanging DNS lookup (which ignores socket timeouts)
    cannot stall an offline machine for longer than `timeout`.
    """
    outcome: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


# -- resolution ---------------------------------------------------------------------------
def _file_in(folder: Path, sources: WeightSources) -> Path | None:
    if sources.openai_file and (folder / sources.openai_file).is_file():
        return folder / sources.openai_file
    return None


def _explicit_weights(path: str | os.PathLike, sources: WeightSources) -> Path:
    """The `path` argument must exist: silently using another file would hide a typo."""
    explicit = Path(os.path.expanduser(str(path)))
    if explicit.is_file():
        return explicit
    if explicit.is_dir():
        found = _file_in(explicit, sources)
        if found is not None:
            return found
        expected = sources.openai_file or "a weights file"
        raise BackboneError(
            f"MODEL.BACKBONE.PATH {explicit} is a folder without {expected} for "
            f"{sources.display_name}; point it at the weights file itself"
        )
    raise BackboneError(
        f"MODEL.BACKBONE.PATH {explicit} does not exist; expected the {sources.display_name} "
        f"weights file there (or leave it empty to use the usual caches)"
    )


def _env_weights(sources: WeightSources) -> tuple[Path | None, str]:
    value = os.environ.get(ENV_CLIP_PATH, "")
    if not value:
        return None, f"{ENV_CLIP_PATH} (not set)"
    location = Path(os.path.expanduser(value))
    if location.is_file():
        return location, ""
    if location.is_dir():
        found = _file_in(location, sources)
        return found, f"{ENV_CLIP_PATH}={location} (no {sources.openai_file} in it)"
    raise BackboneError(
        f"{ENV_CLIP_PATH}={location} does not exist; set it to a CLIP weights file or to a "
        f"folder holding OpenAI's files (e.g. {sources.openai_file or 'ViT-B-16.pt'})"
    )


def _hf_repo_and_files(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's "org/repo/" (default file names) or "org/repo/file" convention."""
    if hf_hub.endswith("/"):
        return hf_hub.rstrip("/"), list(HF_WEIGHT_FILES)
    repo_id, filename = os.path.split(hf_hub)
    files = [filename]
    if filename.endswith((".bin", ".pth")):
        files.insert(0, filename[:-4] + ".safetensors")
    return repo_id, files


def _safetensors_available() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _hf_cached_weights(hf_hub: str) -> tuple[Path | None, str]:
    """Look in the hub cache only (`local_files_only=True`): never a network call."""
    from huggingface_hub import hf_hub_download

    cache = hf_hub_cache_dir()
    repo_id, files = _hf_repo_and_files(hf_hub)
    unreadable: list[str] = []
    for filename in files:
        try:
            found = Path(hf_hub_download(repo_id, filename, cache_dir=cache, local_files_only=True))
        except Exception:  # LocalEntryNotFoundError, or a damaged cache folder
            continue
        if found.suffix == ".safetensors" and not _safetensors_available():
            unreadable.append(found.name)
            continue
        return found, ""
    note = "not cached"
    if unreadable:
        note = f"found {unreadable[0]}, but reading it needs `pip install safetensors`"
    return None, f"Hugging Face cache {cache} for {repo_id} ({note})"


def _download(sources: WeightSources) -> tuple[Path | None, str]:
    """Download through open_clip (its progress bar); skipped fast when offline."""
    if not (sources.hf_hub or sources.url):
        return None, "download (no download source)"
    if is_offline():
        return None, "download (skipped: HF_HUB_OFFLINE=1)"
    if sources.hf_hub:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        host = urlparse(endpoint).hostname or "huggingface.co"
        cache_dir = hf_hub_cache_dir()
    else:
        host = urlparse(sources.url).hostname or ""
        cache_dir = clip_cache_dir()
    if not network_reachable(host):
        return (
            None,
            f"download (skipped: offline, {host} unreachable within {CONNECT_TIMEOUT_S:g} s)",
        )
    from open_clip import pretrained as open_clip_pretrained

    print(f"Downloading {sources.display_name} weights through open_clip into {cache_dir}")
    try:
        target = open_clip_pretrained.download_pretrained(
            {"url": sources.url or "", "hf_hub": sources.hf_hub or ""},
            prefer_hf_hub=True,
            cache_dir=str(cache_dir),
        )
    except Exception as error:  # network errors come in many types; report, don't crash
        return None, f"download (failed: {_first_line(error)})"
    if not target or not Path(target).is_file():
        return None, "download (failed: open_clip returned no file)"
    return Path(target), ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def fetch_hint(sources: WeightSources) -> str:
    hints = []
    if sources.fetch_command:
        hints.append(f"run `{sources.fetch_command}` on a machine with internet (copy its cache)")
    if sources.openai_file:
        origin = f" ({sources.url})" if sources.url else ""
        hints.append(f"place {sources.openai_file}{origin} at {clip_cache_dir()}/")
    hints.append("or set MODEL.BACKBONE.PATH / AMMPL_CLIP_PATH to the file")
    return "; ".join(hints)


def resolve_weights(
    sources: WeightSources, path: str | os.PathLike | None = None
) -> ResolvedWeights:
    """The first place holding the weights; WeightsNotFoundError listing them all if none."""
    if path:
        return ResolvedWeights(_explicit_weights(path, sources), "path")
    tried = ["MODEL.BACKBONE.PATH / path argument (not set)"]
    places = ["path argument", ENV_CLIP_PATH]

    found, note = _env_weights(sources)
    if found is not None:
        return ResolvedWeights(found, "env")
    tried.append(note)

    if sources.bundled:
        if Path(sources.bundled).is_file():
            return ResolvedWeights(Path(sources.bundled), "bundled")
        tried.append(f"{sources.bundled} (missing from the installed package)")
        places.append(sources.bundled)

    if sources.openai_file:
        candidate = clip_cache_dir() / sources.openai_file
        if candidate.is_file():
            return ResolvedWeights(candidate, "clip-cache")
        tried.append(f"{candidate} (missing)")
        places.append(str(candidate))

    if sources.hf_hub:
        found, note = _hf_cached_weights(sources.hf_hub)
        if found is not None:
            return ResolvedWeights(found, "hf-cache")
        tried.append(note)
        places.append("Hugging Face cache")

    found, note = _download(sources)
    if found is not None:
        return ResolvedWeights(found, "download")
    tried.append(note)
    places.append(note)

    raise WeightsNotFoundError(
        f"{sources.display_name} weights not found; looked in: {'; '.join(tried)}. "
        f"To fix: {fetch_hint(sources)}",
        places,
    )


# -- reading ----------------------------------------------------------------------------
def _is_torchscript_archive(archive: zipfile.ZipFile) -> bool:
    return any(
        name.split("/", 1)[-1] == "constants.pkl" or "/code/" in name for name in archive.namelist()
    )


def _broken(path: Path, reason: str) -> BackboneError:
    return BackboneError(
        f"weights file {path} is truncated or corrupt ({reason}); delete it and fetch it again"
    )


def _load_torch_file(path: Path) -> object:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"PK\x03\x04":  # torch's zip format (state dicts and TorchScript archives)
        try:
            with zipfile.ZipFile(path) as archive:
                scripted = _is_torchscript_archive(archive)
        except zipfile.BadZipFile:
            size = path.stat().st_size
            raise _broken(path, f"incomplete zip archive of {size:,} bytes") from None
        if scripted:
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not any(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise BackboneError(
            f"weights file {path} holds no state dict (found {type(checkpoint).__name__}); "
            f"expected a CLIP state dict or OpenAI's TorchScript archive"
        )
    state = {key: value for key, value in checkpoint.items() if isinstance(value, torch.Tensor)}
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    for key in JIT_EXTRA_KEYS:
        state.pop(key, None)
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, on the CPU, in the file's dtype."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"weights file {path} does not exist")
    if path.stat().st_size == 0:
        raise _broken(path, "empty file")
    if path.suffix == ".safetensors":
        if not _safetensors_available():
            raise BackboneError(
                f"reading {path} needs the safetensors package: pip install safetensors"
            )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(path), device="cpu"), path)
        except SafetensorError as error:
            raise _broken(path, str(error)) from None
    try:
        checkpoint = _load_torch_file(path)
    except BackboneError:
        raise
    except pickle.UnpicklingError as error:
        raise _unpickling_error(path, error) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise _broken(path, _first_line(error)) from None
    return _unwrap(checkpoint, path)


def _unpickling_error(path: Path, error: pickle.UnpicklingError) -> BackboneError:
    """torch's weights-only loader explains itself in a paragraph; keep its one reason.

    A file that pickles Python objects besides tensors is not corrupt, only not loaded
    (loading it would run code from the file), so it gets its own advice.
    """
    text = str(error)
    marker = "WeightsUnpickler error:"
    tail = text.split(marker, 1)[1] if marker in text else text
    reason = next((line.strip() for line in tail.splitlines() if line.strip()), "unreadable")
    if "Unsupported global" in reason:
        reason = reason.split(" was not", 1)[0]
        return BackboneError(
            f"weights file {path} stores Python objects besides tensors ({reason}), which are "
            f"not loaded for safety; re-save only its state dict with torch.save"
        )
    return _broken(path, f"unpickling failed: {reason[:120]}")


# -- checks -----------------------------------------------------------------------------
def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(size) for size in tensor.shape) + ")"


def check_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], path: Path, backbone: str
) -> None:
    """Every tensor of the architecture present with its shape, and nothing else."""
    expected = model.state_dict()
    mismatched = [
        key for key in expected if key in state and state[key].shape != expected[key].shape
    ]
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    problem = ""
    for key in expected:  # the first problem in the architecture's own order
        if key in mismatched:
            problem = (
                f"{key} has shape {_shape(state[key])} in the file but "
                f"{_shape(expected[key])} in the architecture"
            )
            break
        if key in missing:
            problem = f"{key} is missing from the file"
            break
    if not problem and unexpected:
        problem = f"the file has a tensor the architecture lacks: {unexpected[0]}"
    if problem:
        counts = (
            f"{len(mismatched)} shape mismatches, {len(missing)} missing, {len(unexpected)} extra"
        )
        raise BackboneError(
            f"weights file {path} does not fit backbone {backbone}: {problem} ({counts}); "
            f"is the file for another backbone?"
        )


def weights_hash(path: str | os.PathLike) -> str:
    """A short fingerprint of a weights file: sha256 of its size, first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(HASH_CHUNK_BYTES))
        if size > HASH_CHUNK_BYTES:
            handle.seek(max(size - HASH_CHUNK_BYTES, HASH_CHUNK_BYTES))
            digest.update(handle.read(HASH_CHUNK_BYTES))
    return digest.hexdigest()[:16]


def tensors_hash(state: dict[str, torch.Tensor]) -> str:
    """Fingerprint of in-memory weights (the seeded tiny backbone has no file)."""
    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()[:16]
