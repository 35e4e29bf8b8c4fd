"""deephar.apis: the Python API of inference (Predictor on arrays, images, videos, folders), the
moved test-time person box, the streaming window, inputs refused and output names."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from datamodules.transforms import normalized_crop, to_crop
from deephar.apis import InputTooSmall, OutputTaken, Prediction, Predictor, output_paths
from deephar.apis import person_box as B
from deephar.apis.predictor import FrameWindow
from deephar.apis.sources import MIN_SIDE
from deephar.config import PENN_MERGE
from deephar.models.multitask import build_model
from experiments import predict


@pytest.fixture(scope="module")
def action_ckpt(tmp_path_factory):
    """A ``deephar.convert``-style file of a tiny random Penn action network (T = 4)."""
    torch.manual_seed(0)
    cfg = PENN_MERGE.with_(input_size=64, pose_blocks=1, num_frames=4, num_actions=3)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    payload = {"model": "penn", "config": dataclasses.asdict(cfg)}
    torch.save(payload | {"state_dict": build_model(cfg).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def predictor(action_ckpt) -> Predictor:
    return Predictor.from_weights(action_ckpt, fast=False, device="cpu", decode_size=96)


def test_person_box_from_full_frame_predictions():
    """A predictor that answers the true joints (in the full-frame crop) yields the box of
    ``clip_box`` on those joints."""
    h, w, size = 60, 100, 32
    joints_px = np.array([[30.0, 20.0], [50.0, 40.0]])
    matrix = B.full_frame_matrix((h, w), size)
    crop = torch.from_numpy(normalized_crop(matrix, size)).double()
    norm = to_crop(torch.from_numpy(joints_px), crop).float()

    def predict(images):
        n = len(images)
        return norm.expand(n, -1, -1), torch.tensor([[0.9, 0.2]]).expand(n, -1)

    frames = np.zeros((5, h, w, 3), np.uint8)
    box = B.person_box(predict, frames, size)
    np.testing.assert_allclose(box.centre, joints_px[0], atol=1e-4)  # one visible joint
    assert box.side == 32.0  # the minimum window
    pose_px, _ = B.predict_full_frames(predict, frames[:1], size)
    np.testing.assert_allclose(pose_px[0], joints_px, atol=1e-4)


def test_a_video_array_gives_typed_poses_and_an_action(predictor):
    frames = np.random.default_rng(0).integers(0, 255, (11, 72, 96, 3), dtype=np.uint8)
    result = predictor(frames)
    assert isinstance(result, Prediction) and result.num_frames == 11
    assert result.pose_px.shape == (11, 16, 2) and result.visibility.shape == (11, 16)
    assert result.frame(10).pose_px.shape == (16, 2) and result.size == (96, 72)
    assert result.action.name == predictor.network.action_names[result.action.index]
    assert result.action.scores.shape == (3,) and result.clip_scores.shape[1] == 3
    assert result.clips[-1, -1] == 10 and not result.action.note


def test_an_image_array_is_posed_only(predictor):
    result = predictor(np.full((80, 96, 3), 128, np.uint8))
    assert result.still and result.action is None and result.num_frames == 1


def test_the_window_holds_a_clip_and_two_chunks_whatever_the_length(predictor, monkeypatch):
    """Streaming: a 40-frame video decoded 4 frames at a time never has more than T + 2 chunks
    of frames at once (the old predict concatenated all of them)."""
    monkeypatch.setattr("deephar.apis.sources.CHUNK", 4)
    result = predictor(np.zeros((40, 40, 40, 3), np.uint8))
    assert result.num_frames == 40
    assert predictor.last_window_peak <= predictor.network.config.num_frames + 2 * 4


def test_frame_window_takes_and_drops():
    frames = np.arange(100, dtype=np.uint8)[:, None, None, None].repeat(3, -1)
    window = FrameWindow(iter([frames[i : i + 10] for i in range(0, 100, 10)]))
    assert window.take(np.array([3, 12]))[:, 0, 0, 0].tolist() == [3, 12]
    window.drop_before(12)
    assert window.take(np.array([12, 29]))[:, 0, 0, 0].tolist() == [12, 29]
    assert window.peak == 20  # frames 0–19 before the drop


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 20, 200, 3)])
def test_inputs_too_small_to_hold_a_person_are_refused(predictor, shape):
    with pytest.raises(InputTooSmall, match=rf"array: .* too small .*≥ {MIN_SIDE} px"):
        predictor(np.zeros(shape, np.uint8))
    assert issubclass(InputTooSmall, ValueError)


def test_a_1x1_image_is_refused_by_the_cli_in_one_line(action_ckpt, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    code = predict.main([str(tmp_path / "dot.png"), f"ckpt={action_ckpt}", "--out",
                         str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{tmp_path / 'dot.png'}: 1×1 px is too small to hold a person" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_two_inputs_never_share_one_output(action_ckpt, tmp_path):
    image = np.full((80, 96, 3), 128, np.uint8)
    for name in ("one.png", "one.jpg"):
        cv2.imwrite(str(tmp_path / name), image)
        code = predict.main([str(tmp_path / name), f"ckpt={action_ckpt}", "fast=false",
                             "--out", str(tmp_path / "out")])  # fmt: skip
        assert code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["one.jpg.json", "one.jpg.overlay.png", "one.png.json",
                       "one.png.overlay.png"]  # fmt: skip
    sources = {json.loads((tmp_path / "out" / n).read_text())["source"] for n in written[::2]}
    assert sources == {str(tmp_path / "one.png"), str(tmp_path / "one.jpg")}
    (tmp_path / "other").mkdir()
    cv2.imwrite(str(tmp_path / "other" / "one.png"), image)
    with pytest.raises(OutputTaken, match="already holds the prediction of"):
        output_paths(tmp_path / "other" / "one.png", tmp_path / "out")
    assert output_paths(tmp_path / "one.png", tmp_path / "out").json.name == "one.png.json"
