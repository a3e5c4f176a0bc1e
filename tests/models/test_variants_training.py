"""Every variant learns, and its checkpoint round-trips strictly to identical logits."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint
from mvit_video.weight_layouts import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ["PEG", "ELSA", "CEIT", "PVT"]
NUM_CLASSES = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a shared machine every OpenMP barrier can stall on a busy core
    (a step then takes seconds instead of a tenth of one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(variant: str, *opts: str):
    return load_config(str(ROOT / f"configs/synthetic/MVIT_TINY_{variant}.yaml"), list(opts))


def _clips(generator: torch.Generator):
    """Six clips of 8 x 64 x 64, two per class; the class is a colour cast on a noisy clip."""
    labels = torch.arange(NUM_CLASSES).repeat(2)
    clips = torch.randn(len(labels), 3, 8, 64, 64, generator=generator)
    clips[torch.arange(len(labels)), labels] += 1.5
    return clips, labels


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_and_round_trips_a_checkpoint(variant, tmp_path):
    opts = ["MODEL.NUM_CLASSES", str(NUM_CLASSES), "DATA.TRAIN_CROP_SIZE", "64", "MVIT.DROPPATH_RATE", "0.0"]
    cfg = _tiny(variant, *opts)
    model = build_model(cfg)
    clips, labels = _clips(torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

    path = tmp_path / f"{variant}.pyth"
    save_checkpoint(path, model.state_dict(), epoch=1)
    torch.manual_seed(123)  # a differently initialised copy
    restored = build_model(cfg)
    report = load_checkpoint(path, restored)  # strict: every tensor, batch-norm statistics included
    assert report.source_format == "mvit_video" and report.num_tensors == len(model.state_dict())
    with torch.no_grad():
        assert torch.equal(restored.eval()(clips[:2]), model.eval()(clips[:2]))
