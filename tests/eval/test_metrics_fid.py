"""FID through torchmetrics with injected extractors; weights from local files only."""

import numpy as np
import pytest
import torch
from torch import nn

from eval.metrics.fid import Fid, JudgeFeatures, StandardInception, UnlearnCanvasInception
from pipelines.errors import EraseError


class TinyCNN(nn.Module):
    """A random 64-feature extractor on uint8 images."""

    num_features = 64

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 64, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    @torch.no_grad()
    def forward(self, images):
        return self.net(images.float() / 255)


def images(n, seed, shift=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 256, (n, 16, 16, 3)) + shift, 0, 255).astype(np.uint8)


def fid(real, fake):
    metric = Fid(TinyCNN())
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    a, b = images(50, 0), images(50, 1, shift=60)
    assert abs(fid(a, a)) < 1e-3
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-4)
    assert fid(a, b) > 10 * abs(fid(a, a)) + 1e-3


def test_reference_statistics_survive_a_reset():
    a, b = images(50, 0), images(50, 1, shift=60)
    metric = Fid(TinyCNN())
    metric.update(a, real=True)
    metric.update(b, real=False)
    first = metric.compute()
    metric.metric.reset()
    metric.update(b, real=False)
    assert metric.compute() == pytest.approx(first)


def test_judge_features_are_the_heads_input():
    from eval.canvas import mini_canvas
    from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, JudgeNet

    world = mini_canvas()
    config = JudgeConfig(channels=(8, 16))
    judge = CanvasJudge(JudgeNet(config, len(world.objects), len(world.styles)), config, world.objects, world.styles)
    extractor = JudgeFeatures(judge)
    x = torch.from_numpy(images(5, 2)).permute(0, 3, 1, 2)  # 16x16: resized to the judge's 32
    features = extractor(x)
    width = judge.network.object_head.in_features  # whatever pooling the judge uses
    assert features.shape == (5, width) and extractor.num_features == width
    resized = torch.nn.functional.interpolate(x.float() / 255, size=(32, 32), mode="bilinear", antialias=True)
    logits, _ = judge.network(resized)
    assert torch.allclose(judge.network.object_head(features), logits, atol=1e-5)


def test_unlearncanvas_inception_from_a_local_file(tmp_path):
    from torchvision.models import inception_v3

    path = str(tmp_path / "inception.pth")
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    network = UnlearnCanvasInception(path)
    features = network(torch.from_numpy(images(2, 0)).permute(0, 3, 1, 2))
    assert features.shape == (2, 2048)
    assert network.describe()["weights_sha256"] and "not standard" in network.describe()["extractor"]


@pytest.mark.parametrize("extractor", [UnlearnCanvasInception, StandardInception])
def test_missing_inception_file_names_the_flag(extractor, tmp_path):
    with pytest.raises(EraseError, match="--fid-inception"):
        extractor(str(tmp_path / "missing.pth"))


def test_wrong_state_dict_is_a_clear_error(tmp_path):
    path = str(tmp_path / "other.pth")
    torch.save({"model_state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(EraseError, match="not a torchvision InceptionV3"):
        UnlearnCanvasInception(path)


def test_standard_inception_records_whether_its_weights_are_standard(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity", reason="standard FID needs torch-fidelity (pip install torch-fidelity)")
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    # Random weights in torch-fidelity's layout: build the network once without loading anything.
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    random_net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    path = str(tmp_path / "random_inception.safetensors")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in random_net.state_dict().items()}, path)
    network = StandardInception(path)
    assert network(torch.from_numpy(images(2, 0)).permute(0, 3, 1, 2)).shape == (2, 2048)
    assert network.describe()["standard_weights"] is False
