"""Adaptively interactive learning (paper §2.4, Eq. 7–9): the light-weight networks f_I, f_T.

Each network is Linear → ReLU → Linear. The class-specific model has one network per
class; they are stored as stacked weights and run as one batched contraction (einsum →
bmm), never as a Python loop over classes.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GroupedMLP(nn.Module):
    """`groups` independent Linear → ReLU → Linear networks with stacked weights.

    forward(x (..., G|1, in), groups=slice) → (..., G', out): slot g of x goes through
    network g; a group axis of size 1 is shared by every selected network. With a single
    network (groups == 1) every slot goes through it.
    """

    def __init__(
        self, groups: int, in_dim: int, hidden: int, out_dim: int, zero_output: bool = False
    ) -> None:
        super().__init__()
        self.groups, self.in_dim, self.hidden, self.out_dim = groups, in_dim, hidden, out_dim
        self.zero_output = zero_output
        self.weight1 = nn.Parameter(torch.empty(groups, in_dim, hidden))
        self.bias1 = nn.Parameter(torch.empty(groups, hidden))
        self.weight2 = nn.Parameter(torch.empty(groups, hidden, out_dim))
        self.bias2 = nn.Parameter(torch.empty(groups, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, per network: U(±1/√fan_in) for all tensors.

        With `zero_output` the output layer is then set to zero (TRAINER.AMMPL.INTERACT_INIT
        "zero"): the network outputs exactly 0 until it has trained, and the global RNG is
        consumed as with the default, so everything drawn afterwards is the same.
        """
        for weight, bias, fan_in in (
            (self.weight1, self.bias1, self.in_dim),
            (self.weight2, self.bias2, self.hidden),
        ):
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)
        if self.zero_output:
            nn.init.zeros_(self.weight2)
            nn.init.zeros_(self.bias2)

    def forward(self, x: torch.Tensor, groups: slice | None = None) -> torch.Tensor:
        x = x.to(self.weight1.dtype)
        if self.groups == 1:
            hidden = torch.relu(x @ self.weight1[0] + self.bias1[0])
            return hidden @ self.weight2[0] + self.bias2[0]
        select = groups if groups is not None else slice(None)
        w1, b1 = self.weight1[select], self.bias1[select]
        w2, b2 = self.weight2[select], self.bias2[select]
        x = x.expand(*x.shape[:-2], w1.shape[0], self.in_dim)
        hidden = torch.relu(torch.einsum("...gi,gih->...gh", x, w1) + b1)
        return torch.einsum("...gh,gho->...go", hidden, w2) + b2

    def extra_repr(self) -> str:
        zero = ", zero output init" if self.zero_output else ""
        return f"groups={self.groups}, {self.in_dim} → {self.hidden} → {self.out_dim}{zero}"


def hidden_width(joint_dim: int, ratio: int) -> int:
    """d // HIDDEN_RATIO (32 for ViT-B/16 at 16), at least 1."""
    return max(1, joint_dim // ratio)
