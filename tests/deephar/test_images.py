"""The network's input encoding (deephar.images): uint8 crops → float32 [−1, 1] after the transfer,
equal to the float32 images the workers shipped before (the lookup table below, verbatim)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deephar.config import NetworkConfig
from deephar.images import batch_to_float, image_to_float
from deephar.models.multitask import build_model
from deephar.tasks import Pose2D3DModule


def former_lut(image: np.ndarray, chpower) -> np.ndarray:
    """The workers' former float32 normalisation: uint8 (…, H, W, 3) → float32 (…, 3, H, W)."""
    levels = np.arange(256, dtype=np.float32)[:, None] / 255.0  # (256, 1)
    if chpower is not None:
        levels = levels ** np.asarray(chpower, dtype=np.float32)
    lut = np.broadcast_to((levels - 0.5) * 2.0, (256, 3)).astype(np.float32)  # (256, 3)
    planes = np.moveaxis(np.asarray(image, np.uint8), -1, 0)  # (3, …, H, W)
    out = np.empty(planes.shape, np.float32)
    for c in range(3):
        np.take(lut[:, c], planes[c], out=out[c])
    return np.moveaxis(out, 0, -3)


def random_crops(lead: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (*lead, 8, 8, 3) covering all 256 levels, and chpower (lead[0], 3) in [0.9, 1.1]."""
    rng = np.random.default_rng(seed)
    hwc = rng.integers(0, 256, (*lead, 8, 8, 3), dtype=np.uint8)
    hwc.reshape(-1)[:256] = np.arange(256)
    return hwc, rng.uniform(0.9, 1.1, (lead[0], 3)).astype(np.float32)


@pytest.mark.parametrize("lead", [(5,), (3, 4)], ids=["images", "clips"])
def test_equals_the_former_float_images_within_1e6(lead):
    hwc, gamma = random_crops(lead)
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(hwc, -1, -3)))
    got = image_to_float(chw, torch.from_numpy(gamma))
    assert got.dtype == torch.float32 and got.shape == (*lead, 3, 8, 8)
    want = np.stack([former_lut(hwc[b], gamma[b]) for b in range(lead[0])])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
    plain = image_to_float(chw)  # no chpower: gamma 1
    np.testing.assert_allclose(plain.numpy(), former_lut(hwc, None), rtol=0, atol=1e-6)


def test_levels_0_and_255_are_the_range_ends_under_any_gamma():
    image = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    out = image_to_float(image.contiguous(), torch.tensor([[0.9, 1.0, 1.1]]))
    assert out[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    assert out[0, :, 0, 2].tolist() == [1.0, 1.0, 1.0]
    for c, g in enumerate((0.9, 1.0, 1.1)):
        assert out[0, c, 0, 1].item() == pytest.approx(((128 / 255) ** g - 0.5) * 2, abs=1e-6)


def test_refuses_float_images_and_mismatched_gamma():
    with pytest.raises(TypeError, match="uint8"):
        image_to_float(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="3, H, W"):
        image_to_float(torch.zeros(2, 4, 4, 3, dtype=torch.uint8))  # channels last
    with pytest.raises(ValueError, match="chpower"):
        image_to_float(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.ones(3, 3))


def test_batch_to_float_converts_groups_and_leaves_the_rest():
    hwc, gamma = random_crops((2,))
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(hwc, -1, -3)))
    pose = {"image": chw, "chpower": torch.from_numpy(gamma), "pose": torch.zeros(2, 16, 3)}
    poses_only = {"pose": torch.zeros(2, 4, 16, 3), "action": torch.zeros(2)}
    out = batch_to_float({"pose": pose, "action": poses_only})
    np.testing.assert_allclose(out["pose"]["image"].numpy(), np.stack(
        [former_lut(hwc[b], gamma[b]) for b in range(2)]), atol=1e-6)  # fmt: skip
    assert out["pose"]["pose"] is pose["pose"] and out["action"] is poses_only
    assert pose["image"].dtype == torch.uint8  # the input batch is not modified
    floats = {"image": torch.zeros(1, 3, 4, 4)}
    assert batch_to_float(floats) is floats and batch_to_float({}) == {}


def test_task_modules_convert_after_the_transfer():
    """Lightning calls ``on_after_batch_transfer`` on the device batch; a still-uint8 image
    would reach the first convolution (which refuses it)."""
    module = Pose2D3DModule(build_model(NetworkConfig(input_size=32, pose_blocks=1)))
    hwc, gamma = random_crops((2,))
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(hwc, -1, -3)))
    batch = module.on_after_batch_transfer({"image": chw, "chpower": torch.from_numpy(gamma)}, 0)
    assert batch["image"].dtype == torch.float32
    np.testing.assert_allclose(batch["image"].numpy(), np.stack(
        [former_lut(hwc[b], gamma[b]) for b in range(2)]), atol=1e-6)  # fmt: skip
