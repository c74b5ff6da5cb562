"""Interaction networks: batched per-class weights equal one nn.Linear pair per class."""

from pathlib import Path

import pytest
import torch
from torch import nn

from ammpl.trainers.ammpl.interaction import GroupedMLP, hidden_width
from tests._ammpl_helpers import build_model, images


def reference_mlp(net: GroupedMLP, group: int) -> nn.Sequential:
    first, second = nn.Linear(net.in_dim, net.hidden), nn.Linear(net.hidden, net.out_dim)
    first.weight.data = net.weight1[group].t().clone()
    first.bias.data = net.bias1[group].clone()
    second.weight.data = net.weight2[group].t().clone()
    second.bias.data = net.bias2[group].clone()
    return nn.Sequential(first, nn.ReLU(), second)


def test_grouped_networks_equal_one_mlp_per_class():
    torch.manual_seed(0)
    net = GroupedMLP(groups=5, in_dim=6, hidden=3, out_dim=4)
    x = torch.randn(2, 5, 6)
    out = net(x)
    assert out.shape == (2, 5, 4)
    for group in range(5):
        torch.testing.assert_close(out[:, group], reference_mlp(net, group)(x[:, group]))


def test_shared_input_goes_through_every_selected_network():
    torch.manual_seed(0)
    net = GroupedMLP(groups=5, in_dim=6, hidden=3, out_dim=4)
    x = torch.randn(2, 1, 6)
    out = net(x, slice(1, 4))
    assert out.shape == (2, 3, 4)
    for slot, group in enumerate(range(1, 4)):
        torch.testing.assert_close(out[:, slot], reference_mlp(net, group)(x[:, 0]))


def test_single_network_is_shared_by_every_slot():
    torch.manual_seed(0)
    net = GroupedMLP(groups=1, in_dim=6, hidden=3, out_dim=4)
    x = torch.randn(2, 7, 6)
    torch.testing.assert_close(net(x, slice(2, 5)), reference_mlp(net, 0)(x))


def test_initialisation_matches_nn_linear_bounds_and_gradients_flow():
    net = GroupedMLP(groups=3, in_dim=512, hidden=32, out_dim=768)
    assert net.weight1.abs().max() <= 1 / 512**0.5 and net.weight2.abs().max() <= 1 / 32**0.5
    net(torch.randn(4, 3, 512)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert hidden_width(512, 16) == 32 and hidden_width(48, 16) == 3 and hidden_width(8, 16) == 1


@pytest.mark.parametrize("order", ["image_first", "text_first"])
def test_interaction_networks_receive_unit_norm_features(order):
    """f_I and f_T get x/‖x‖ and z/‖z‖ (as CoCoOp's meta-net), whatever the raw norms."""
    model = build_model(class_specific=True, interaction_order=order)
    pl = model.prompt_learner
    seen = {"f_I": [], "f_T": []}
    hooks = [
        getattr(pl, name).register_forward_pre_hook(
            lambda _m, args, name=name: seen[name].append(args[0].detach())
        )
        for name in seen
    ]
    model(images(2))
    for hook in hooks:
        hook.remove()
    for name, inputs in seen.items():
        assert inputs, name
        for features in inputs:
            norms = features.norm(dim=-1)
            torch.testing.assert_close(norms, torch.ones_like(norms), msg=name)


def test_docs_state_the_normalised_interaction_inputs():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    ammpl_section = readme.split("\n## AMMPL\n", 1)[1].split("\n## ", 1)[0]
    methods = (root / "docs" / "METHODS.md").read_text()
    config = (root / "ammpl" / "trainers" / "ammpl" / "config.py").read_text()
    for text in (ammpl_section, methods, config):
        assert "L2-normalised" in text and "CoCoOp" in text
