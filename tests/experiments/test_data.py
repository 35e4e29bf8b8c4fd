"""The loader settings of experiments.data: workers from the cores per device ("auto", said once),
pin_memory on CUDA only, persistent workers; "auto" accepted by the config, other words refused."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from experiments import data
from experiments.config import ConfigError, load_config


@pytest.fixture
def cores(monkeypatch):
    """Pretend this process may use ``n`` cores (and no SLURM binding)."""
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)

    def set_cores(n: int) -> None:
        monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)

    return set_cores


@pytest.mark.parametrize(
    ("n", "devices", "workers"),
    [(128, 8, 15), (16, 1, 15), (16, 8, 1), (2, 1, 1), (1, 1, 1), (96, 4, 23)],
)
def test_auto_is_the_cores_per_device_less_one(cores, n, devices, workers):
    cores(n)
    assert data.worker_count("auto", devices) == workers


def test_slurm_cores_per_task_win_over_the_node_share(cores, monkeypatch):
    cores(128)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "12")
    assert data.worker_count("auto", 8) == 11


def test_a_number_is_capped_by_the_cores(cores):
    cores(16)
    assert data.worker_count(64) == 16 and data.worker_count(4) == 4 and data.worker_count(0) == 0


@pytest.mark.parametrize(
    ("accelerator", "devices", "count"),
    [("cpu", 2, 2), ("gpu", [0, 3], 2), ("gpu", "0,1,2", 3), ("cpu", "auto", 1), ("gpu", "4", 4)],
)
def test_local_devices(accelerator, devices, count):
    assert data.local_devices(accelerator, devices) == count


def settings_cfg(workers, accelerator="auto", devices="auto"):
    return OmegaConf.create({"data": {"num_workers": workers},
                             "trainer": {"accelerator": accelerator, "devices": devices}})  # fmt: skip


def test_pin_memory_on_cuda_only_and_auto_said_once(cores, monkeypatch):
    cores(64)
    said = []
    monkeypatch.setattr(data, "rank_zero_info", said.append)
    monkeypatch.setattr(data, "_SAID", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    got = data.loader_settings(settings_cfg("auto"))
    assert got == {"num_workers": 15, "pin_memory": True, "persistent_workers": True}
    data.loader_settings(settings_cfg("auto"))  # the next stage of the run: not said again
    assert len(said) == 1 and "15 loader workers per device" in said[0] and "4 device" in said[0]
    cpu = data.loader_settings(settings_cfg(3, accelerator="cpu"))
    assert cpu["pin_memory"] is False and cpu["num_workers"] == 3 and len(said) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert data.loader_settings(settings_cfg(2))["pin_memory"] is False


def test_config_takes_auto_and_refuses_other_words():
    assert load_config("mpii")["data"]["num_workers"] == "auto"  # the default
    assert load_config("mpii", ["data.num_workers=6"]).data.num_workers == 6
    with pytest.raises(ConfigError, match=r'data.num_workers .* or "auto"'):
        load_config("mpii", ["data.num_workers=many"])
