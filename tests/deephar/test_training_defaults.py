"""deephar.models.precision.choose_training: the training defaults of a device, printed once."""

from __future__ import annotations

import pytest
import torch

from deephar.models import precision
from deephar.models.precision import choose_training


@pytest.mark.parametrize(
    ("flags", "precision"),
    [
        ({"avx2", "fma"}, "32-true"),  # AVX2-only: emulated bf16 is an order of magnitude slower
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16-mixed"),  # Zen 4/5: native bf16 (measured)
        ({"avx512f", "amx_bf16"}, "bf16-mixed"),  # Sapphire Rapids
    ],
)
def test_cpu_training_is_channels_last_and_bf16_where_native(monkeypatch, flags, precision):
    monkeypatch.delenv("DEEPHAR_PRECISION", raising=False)
    choice = choose_training("cpu", flags=flags)
    assert choice.channels_last and choice.precision == precision
    assert "make bench train_vs_keras" in choice.reason


def test_override_and_printed_once(monkeypatch, capsys):
    monkeypatch.setenv("DEEPHAR_PRECISION", "fp32")
    monkeypatch.setattr(precision, "_ANNOUNCED", set())
    choice = choose_training("cpu", flags={"avx512_bf16"}, verbose=True)
    choose_training("cpu", flags={"avx512_bf16"}, verbose=True)
    assert choice.precision == "32-true"
    assert capsys.readouterr().err.count("deephar training: channels_last, 32-true") == 1


def test_gpu_without_native_bf16_keeps_fp32_nchw(monkeypatch):
    monkeypatch.delenv("DEEPHAR_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    choice = choose_training(torch.device("cuda"))
    assert (choice.channels_last, choice.precision) == (False, "32-true")
