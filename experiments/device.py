"""Where evaluation and prediction run: the library's ``deephar.device`` (``eval.device`` of
evaluate, ``device=`` of predict), named here for the experiment scripts."""

from deephar.device import DEVICES, model_device, resolve_device, to_device

__all__ = ["DEVICES", "model_device", "resolve_device", "to_device"]
