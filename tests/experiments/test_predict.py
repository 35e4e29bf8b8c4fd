"""experiments.predict on the real NTU sample video and on an image, with a tiny random network."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from deephar.apis import Predictor
from deephar.config import NTU_MERGE, PENN_MERGE
from deephar.models.multitask import build_model
from experiments import predict

VIDEO = "ntu/S001C001P001R001A001_rgb.avi"


def tiny_checkpoint(path, base, **changes):
    """A ``deephar.convert``-style file of a randomly initialised small network."""
    torch.manual_seed(0)
    cfg = base.with_(input_size=64, pose_blocks=1, num_frames=8, **changes)
    torch.save(
        {"model": "tiny", "config": dataclasses.asdict(cfg),
         "state_dict": build_model(cfg).state_dict()},
        path,
    )  # fmt: skip
    return path


def test_predict_on_the_ntu_sample_video(samples_dir, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt", NTU_MERGE, num_actions=7)
    code = predict.main([str(samples_dir / VIDEO), f"ckpt={ckpt}", "decode_size=160",
                         "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "out" / "S001C001P001R001A001_rgb.avi.json").read_text())
    assert result["num_frames"] == 103 and len(result["frames"]) == 103
    frame = result["frames"][50]
    assert np.asarray(frame["pose_px"]).shape == (20, 2) and len(frame["z"]) == 20
    assert result["layout"] == "pa20j" and len(result["action"]["scores"]) == 7
    assert result["clips"][0]["frames"] == [0, 7] and result["clips"][-1]["frames"][1] == 102
    rendered = tmp_path / "out" / "S001C001P001R001A001_rgb.avi.overlay.mp4"
    assert rendered.stat().st_size > 0
    import av

    with av.open(str(rendered)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 103


def test_lightning_checkpoint_uses_its_run_config(tmp_path):
    """A task-module checkpoint (keys ``net.*``) is read with the run's saved config.yaml."""
    from omegaconf import OmegaConf

    from experiments.config import load_config, network_config

    cfg = load_config("penn", ["model.input_size=64", "model.pose_blocks=1", "model.num_frames=8"])
    net = build_model(network_config(cfg))
    run = tmp_path / "run"
    (run / "finetune").mkdir(parents=True)
    OmegaConf.save(cfg, run / "config.yaml")
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {}}, run / "finetune" / "best.ckpt")
    loaded = predict.load_network(run / "finetune" / "best.ckpt", fast=False)  # plain weights
    assert loaded.config == network_config(cfg) and loaded.layout == "pa16j"
    assert loaded.action_names[0] == "baseball_pitch"
    key = next(iter(net.state_dict()))
    torch.testing.assert_close(loaded.model.state_dict()[key], net.state_dict()[key])
    with pytest.raises(ValueError, match="config"):
        torch.save({"state_dict": state}, tmp_path / "lonely.ckpt")
        predict.load_network(tmp_path / "lonely.ckpt")


def test_predict_on_an_image_and_bad_input(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt", PENN_MERGE, num_actions=0)
    image = np.full((90, 120, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    result = predict.run(tmp_path / "img.png", ckpt, tmp_path / "out")
    assert result["num_frames"] == 1 and "action" not in result
    assert (tmp_path / "out" / "img.png.overlay.png").exists()
    with pytest.raises(FileNotFoundError):
        predict.run(tmp_path / "missing.mp4", ckpt, tmp_path / "out")
    assert predict.main([str(tmp_path / "img.png"), "ckpt=" + str(tmp_path / "nope.pt")]) == 1
    with pytest.raises(SystemExit):
        predict.main([str(tmp_path / "img.png"), "bogus=1"])


@pytest.mark.parametrize(
    "options", [["fast=false", "decode_size=96"], ["eval.fast=false", "predict.decode_size=96"]]
)
def test_options_are_config_keys_as_for_evaluate(tmp_path, monkeypatch, options):
    """Short forms and full keys are the config's ``eval.*`` / ``predict.*``, typed by OmegaConf."""
    seen = {}

    def spy(source, ckpt, out_dir, keras_model, decode_size, threshold, fast, device):
        seen.update(ckpt=ckpt, decode_size=decode_size, threshold=threshold, fast=fast)
        assert device == "auto"
        return {"num_frames": 1, "rendered": "x.png"}

    monkeypatch.setattr(predict, "run", spy)
    assert predict.main([str(tmp_path / "img.png"), "ckpt=a.pt", *options]) == 0
    assert seen == {"ckpt": "a.pt", "decode_size": 96, "threshold": 0.5, "fast": False}
    for wrong in (["ckpt=a.pt", "model.width=2"], ["ckpt=a.pt", "decode_size=big"], []):
        with pytest.raises(SystemExit):  # not a predict key / not an int / no checkpoint
            predict.main([str(tmp_path / "img.png"), *wrong])


class CudaLike(torch.Tensor):
    """Stands for a CUDA tensor on a CPU-only machine: NumPy refuses it as it refuses CUDA's,
    ``.cpu()`` gives a host tensor. Results of operations on it stay ``CudaLike``."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy: use Tensor.cpu()")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()


class OnDevice(torch.nn.Module):
    """``model`` whose outputs are ``CudaLike`` (as a network on a GPU returns them)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def _device(self, out):
        fields = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        for name, value in fields.items():
            if isinstance(value, list):
                fields[name] = [v.as_subclass(CudaLike) if v is not None else v for v in value]
            elif isinstance(value, torch.Tensor):
                fields[name] = value.as_subclass(CudaLike)
            elif dataclasses.is_dataclass(value):
                fields[name] = self._device(value)
        return type(out)(**fields)

    def forward_pose(self, images):
        return self._device(self.model.forward_pose(images))

    def forward_clip(self, clips):
        return self._device(self.model.forward_clip(clips))


@pytest.mark.parametrize("num_actions", [0, 15])
def test_outputs_come_to_the_host_before_numpy(tmp_path, num_actions):
    """On a GPU the network's outputs are CUDA tensors: ``Predictor`` reads them through
    ``.cpu()`` (``.numpy()`` of a CUDA tensor raises), for poses and action scores."""
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt", PENN_MERGE, num_actions=num_actions)
    predictor = Predictor.from_weights(ckpt, device="cpu")
    predictor.network.model = OnDevice(predictor.network.model)
    frames = np.full((10, 90, 120, 3), 128, np.uint8)
    pred = predictor(frames)
    assert pred.pose_px.shape == (10, 16, 2) and np.isfinite(pred.pose_px).all()
    assert (pred.action is not None) is (num_actions > 0)
