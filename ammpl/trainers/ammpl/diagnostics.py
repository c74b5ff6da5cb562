"""Where an AMMPL model's learning goes: gradient per tensor and the sizes of h and E.

Issue 18's readings study asks, per reading, how much of the gradient reaches the text
context and how large the image → text shift h and the class fill E are beside the context
tokens and the padding N (AMMPL.md "Readings still open"). `bench/ammpl_readings.py` runs
this on a configured (optionally trained) run.
"""

from __future__ import annotations

import torch.nn.functional as F

TENSORS = ("ctx", "P", "pad", "f_I", "f_T")


def _tensor_group(name: str) -> str | None:
    head = name.split(".")[0]
    return head if head in TENSORS else None


def _recorder(values: list[float]):
    """A forward hook that records the mean L2 norm of a network's output vectors."""

    def hook(module, inputs, output) -> None:  # noqa: ARG001
        values.append(output.detach().norm(dim=-1).mean().item())

    return hook


def measure_learning(trainer, batches: int) -> dict:
    """Gradient norms and h / E norms, averaged over `batches` training batches in training
    mode (random masks); the optimiser never steps and the gradients are cleared after."""
    model = trainer.model
    learner = model.prompt_learner
    seen: dict[str, list[float]] = {"h": [], "E": []}
    hooks = []
    if learner.f_I is not None:
        hooks.append(learner.f_I.register_forward_hook(_recorder(seen["h"])))
    if learner.f_T is not None:
        hooks.append(learner.f_T.register_forward_hook(_recorder(seen["E"])))
    grads = {name: 0.0 for name in TENSORS}
    model.train()
    count = 0
    try:
        for batch in trainer.train_loader_x:
            if count == batches:
                break
            image, label = trainer.parse_batch_train(batch)
            learner.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(image).float(), label)
            loss.backward()
            squares = {name: 0.0 for name in TENSORS}  # over a group's tensors
            for name, param in learner.named_parameters():
                group = _tensor_group(name)
                if group and param.grad is not None:
                    squares[group] += param.grad.norm().item() ** 2
            for group, square in squares.items():
                grads[group] += square**0.5
            count += 1
    finally:
        for hook in hooks:
            hook.remove()
        learner.zero_grad(set_to_none=True)
    names = [n for n, _ in learner.named_parameters()]
    present = {g for g in TENSORS if any(_tensor_group(n) == g for n in names)}
    norms = {g: grads[g] / max(count, 1) for g in TENSORS if g in present}
    total = sum(norms.values())
    out = {
        "batches": count,
        "grad": norms,
        "ctx_grad_share": norms["ctx"] / total if total else None,
        "ctx_token_norm": learner.ctx.detach().norm(dim=-1).mean().item(),
        "h_norm": sum(seen["h"]) / len(seen["h"]) if seen["h"] else None,
        "pad_norm": None
        if learner.pad is None
        else learner.pad.detach().flatten(-3).norm(dim=-1).mean().item(),
        "E_norm": sum(seen["E"]) / len(seen["E"]) if seen["E"] else None,
    }
    return out
