"""PySlowFast's MViTv2 checkpoints load strictly and give the same scores.

Both fixtures were made by running PySlowFast's own code (facebookresearch/SlowFast at 287ec00,
``slowfast.models.video_model_builder.MViT``), not a hand-written inverse of this project's loader:
- ``fixtures/pyslowfast_mvitv2_keys.json``: the name and shape of every tensor of its MViTv2-S 16x4 and B 32x3 builds
  (the layout of its released ``.pyth`` files, fused qkv);
- ``fixtures/pyslowfast_mvitv2_tiny.pt``: a small MViTv2 built from its MVITv2_S_16x4.yaml with the overrides stored
  in the file, random weights, two random clips, and its eval-mode output (softmax scores: its head applies softmax
  in eval mode).
"""

import json
from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_layouts import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")
# the facts about the released checkpoints: (parameters, tensors)
FACTS = {"MVITv2_S_16x4": (34_537_744, 397), "MVITv2_B_32x3": (51_230_128, 589)}


def _manifest(name: str) -> dict:
    return json.loads((FIXTURES / "pyslowfast_mvitv2_keys.json").read_text())["configs"][name]


@pytest.mark.parametrize("name", sorted(FACTS))
def test_pyslowfast_layout_loads_strictly_with_every_tensor_in_place(tmp_path, name):
    shapes = _manifest(name)
    params, tensors = FACTS[name]
    assert len(shapes) == tensors and sum(torch.Size(s).numel() for s in shapes.values()) == params
    assert shapes["blocks.0.attn.rel_pos_h"] == [111, 96]
    assert shapes["blocks.0.attn.rel_pos_t"] == [15 if "16x4" in name else 31, 96]
    # the only per-block projections are the skip paths of the widening blocks
    projections = sorted(k for k in shapes if k.startswith("blocks.") and k.split(".")[2] == "proj")
    widening = {"MVITv2_S_16x4": (1, 3, 14), "MVITv2_B_32x3": (2, 5, 21)}[name]
    assert projections == sorted(f"blocks.{i}.proj.{p}" for i in widening for p in ("weight", "bias"))

    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=generator) for k, s in shapes.items()}
    path = tmp_path / f"{name}.pyth"
    torch.save({"model_state": state, "epoch": 200}, path)
    model = build_model(load_config(str(ROOT / f"configs/K400/{name}.yaml")))
    report = load_checkpoint(str(path), model)  # strict: raises naming any missing, unexpected or misshaped tensor
    assert report.source_format == "pyslowfast"
    ours = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == params and len(ours) == tensors
    # every source tensor arrived whole somewhere (random values: no two tensors are alike)
    fingerprint = lambda t: (tuple(t.shape), round(float(t.double().sum()), 6), round(float(t.flatten()[0]), 6))
    assert sorted(map(fingerprint, state.values())) == sorted(map(fingerprint, ours.values()))


def test_pyslowfast_mvitv2_scores_match_its_own_code():
    fixture = torch.load(FIXTURES / "pyslowfast_mvitv2_tiny.pt", weights_only=True)
    opts = [str(v) for v in fixture["opts"]]
    model = build_model(load_config(str(ROOT / "configs/K400/MVITv2_S_16x4.yaml"), opts)).double().eval()
    report = load_checkpoint(fixture["model_state"], model)
    assert report.source_format == "pyslowfast"
    expected = fixture["logits"]
    assert expected.std() > 0.05  # scores spread across classes, not a near-uniform output two models could share
    with torch.no_grad():
        got = model(fixture["input"].double()).softmax(dim=1)
    assert (got - expected).abs().max().item() < 1e-6
