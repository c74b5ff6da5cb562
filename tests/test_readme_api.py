"""README's "Python API" block runs as written on a CPU machine (issue 9, item 19).

The block is taken from README.md itself and executed unchanged. Here no CLIP weights
exist, so its `allow_tiny_fallback=True` gives the tiny random backbone, as on any machine
without ViT-B/16 weights; with the weights present the same code uses them.
"""

from __future__ import annotations

import re

import torch


def python_api_block(readme: str) -> str:
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section should hold one python block"
    return blocks[0]


def test_the_python_api_block_runs_as_written(repo_root, tmp_path, monkeypatch, capsys):
    code = python_api_block((repo_root / "README.md").read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_python_api"}
    exec(compile(code, "README.md#python-api", "exec"), namespace)
    logits = namespace["logits"]
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert namespace["device"] in ("cpu", "cuda")
    assert namespace["image_features"].shape[0] == 2
    out = capsys.readouterr().out
    assert "tiny" in out  # the fallback notice and model.ammpl_source say which weights ran
