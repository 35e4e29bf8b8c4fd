"""Inference as a library: ``Predictor.from_weights(path)(video)`` → typed ``Prediction``.

    from deephar.apis import Predictor

    result = Predictor.from_weights("runs/demo/model.pt")("video.mp4")
    print(result.action.name, result.frame(0).pose_px)

Parts: ``loading`` (checkpoint discovery), ``sources`` (video / folder / image / array, streamed),
``person_box`` (the test-time crop), ``predictor`` (the clip protocol in a bounded window),
``results`` (dataclasses), ``json_writer`` and ``render`` (outputs).
"""

from deephar.apis.json_writer import OutputTaken, output_paths, to_json, write_json
from deephar.apis.loading import LoadedNetwork, load_network
from deephar.apis.predictor import Predictor
from deephar.apis.render import render
from deephar.apis.results import Action, FramePose, Prediction
from deephar.apis.sources import InputError, InputTooSmall, open_source

__all__ = [
    "Action",
    "FramePose",
    "InputError",
    "InputTooSmall",
    "LoadedNetwork",
    "OutputTaken",
    "Prediction",
    "Predictor",
    "load_network",
    "open_source",
    "output_paths",
    "render",
    "to_json",
    "write_json",
]
