from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctharmony.models.perceptual import CONV5_4_INDEX, SegmenterEncoder, VGG19Conv54, load_vgg19_conv54
from ctharmony.models.unet import UNet2D


def test_vgg19_layout_matches_torchvision_numbering() -> None:
    net = VGG19Conv54()
    convs = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16 and convs[-1] == CONV5_4_INDEX  # conv5_4 is the 16th conv, features.34
    assert net.features[CONV5_4_INDEX].out_channels == 512


def test_vgg19_loader_reads_a_torchvision_state_dict(tmp_path: Path) -> None:
    reference = VGG19Conv54()
    state = {f"features.{k}": v for k, v in reference.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full vgg19 state dict has these; ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    net = load_vgg19_conv54(path)
    assert torch.equal(net.features[0].weight, reference.features[0].weight)
    assert not any(p.requires_grad for p in net.parameters())
    out = net(torch.rand(1, 1, 32, 32))
    assert out.shape == (1, 512, 2, 2)
    assert torch.allclose(out, reference(torch.rand(1, 1, 32, 32)) * 0 + out)


def test_vgg19_loader_refuses_missing_and_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_vgg19_conv54(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match="no VGG19 weights"):
        load_vgg19_conv54(None)
    wrong = tmp_path / "wrong.pth"
    torch.save({"something": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth"):
        load_vgg19_conv54(wrong)


def test_segmenter_encoder_is_frozen_copy() -> None:
    unet = UNet2D(channels=4, depth=3)
    extractor = SegmenterEncoder(unet)
    extractor.train()
    assert not extractor.training
    assert not any(p.requires_grad for p in extractor.parameters())
    assert all(p.requires_grad for p in unet.parameters())
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    extractor(x).sum().backward()  # gradients flow to the input, not into the extractor
    assert x.grad is not None
    assert extractor(torch.rand(2, 1, 16, 16)).shape == (2, 16, 4, 4)


def test_segmenter_encoder_takes_any_segmenter_with_features() -> None:
    from ctharmony.models import build

    torch.manual_seed(0)
    model = build("liver-unet").eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # the HUModel's features are the U-Net encoder's: the same loss as before
        assert torch.equal(SegmenterEncoder(model)(x), SegmenterEncoder(model.net)(x))
    with pytest.raises(ValueError, match="neither encode"):
        SegmenterEncoder(torch.nn.Identity())
