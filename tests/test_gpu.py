"""GPU checks (`pytest -m gpu`): the guide's exact settings through micro-batches, automatic
precision, and channels-last. Skipped, saying so, where there is no CUDA device."""

import pytest
import torch

from echodepth.models import build_model_for_training
from echodepth.runs.train import resolve_precision, train
from echodepth.settings.config import TrainConfig
from echodepth.synth import SynthConfig, generate_dataset

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)"),
]


def test_guides_exact_settings_train_at_batch_256(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, SynthConfig(n_rooms=40, samples_per_room=10, image_size=(128, 128)), progress=False)
    cfg = TrainConfig(
        dataset="synthetic", data_dir=str(data), epochs=1, results_dir=str(tmp_path), cache_dir=str(tmp_path / "c")
    )
    assert (cfg.batch_size, cfg.image_size, cfg.base_channels, cfg.learning_rate) == (256, 256, 64, 0.002)
    result = train(cfg, progress=False)
    assert result["test"]["rmse"] > 0 and torch.isfinite(torch.tensor(result["test"]["rmse"]))


def test_auto_precision_picks_bf16():
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert resolve_precision(TrainConfig()) == expected


def test_channels_last_gives_the_same_outputs():
    g = torch.Generator().manual_seed(0)
    model = build_model_for_training(TrainConfig(base_channels=16, image_size=128), 2).cuda().eval()
    x = torch.randn(4, 2, 128, 128, generator=g).cuda()
    with torch.no_grad():
        reference = model(x)
        model.to(memory_format=torch.channels_last)
        fast = model(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(reference, fast):
        assert torch.allclose(a, b, atol=1e-3)
