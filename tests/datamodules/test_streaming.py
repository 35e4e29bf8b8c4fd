"""LitData chunks of a prepared folder: the same samples as the folder, and a 2-process gloo run of
MixedRatioDataModule over two streaming sources with exact shares and disjoint rank shards."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch

pytest.importorskip("litdata")

from datamodules.h36m import Human36MDataset  # noqa: E402
from datamodules.mixed import MixedRatioDataModule  # noqa: E402
from datamodules.prepare import h36m as prep_h36m  # noqa: E402
from datamodules.prepare.chunks import write_chunks  # noqa: E402
from datamodules.prepare.runner import prepare  # noqa: E402
from datamodules.storage.h36m_prepared import PreparedH36M  # noqa: E402
from datamodules.streaming import StreamingSource  # noqa: E402
from datamodules.synthetic.write_h36m import write_h36m  # noqa: E402

SHARES, BATCH = {"train": 3, "test": 1}, 4  # S1 frames (every 5th) and S9 frames (every 64th)


@pytest.fixture(scope="module")
def chunks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream")
    write_h36m(root / "h36m", (1, 9), 1, 40, seed=0)  # 4 cameras × 40 frames per subject
    jobs = prep_h36m.jobs(root / "h36m", (1, 9))
    prepare("h36m", prep_h36m.run, jobs, root / "prepared", prep_h36m.options(), workers=1)
    write_chunks(root / "prepared", root / "chunks", "h36m", workers=1, chunk_bytes="256KB")
    return {"prepared": root / "prepared", "chunks": root / "chunks", "cache": root / "cache"}


def test_chunks_give_the_prepared_samples(chunks):
    src = StreamingSource(chunks["chunks"] / "train", "h36m", cache_dir=chunks["cache"])
    ref = Human36MDataset(None, prepared=chunks["prepared"], split="train", subjects=(1,))
    assert len(src) == len(ref) == 4 * 8
    assert len(list((chunks["chunks"] / "train").glob("chunk-*.bin"))) > 1  # several chunks
    for i in (0, len(src) // 2, len(src) - 1):
        torch.manual_seed(i)
        a = ref[i]
        torch.manual_seed(i)
        b = src[i]
        for key in a:
            assert a[key] == b[key] if isinstance(a[key], str) else torch.equal(a[key], b[key])


def _rank(rank: int, port: int, chunks: dict, out: Path) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        train = {k: StreamingSource(chunks["chunks"] / k, "h36m", cache_dir=chunks["cache"] / str(rank),
                                    input_size=32) for k in SHARES}  # fmt: skip
        dm = MixedRatioDataModule(
            train, SHARES, BATCH, seed=3
        )  # rank, world from torch.distributed
        batches = [b["sample_id"] for b in dm.train_dataloader()]
        (out / f"{rank}.json").write_text(json.dumps({"batches": batches, "sizes":
                                                      {k: len(v) for k, v in train.items()}}))  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_read_disjoint_shards_with_exact_shares(chunks, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank, args=(r, port, chunks, tmp_path)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    runs = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    sizes = runs[0]["sizes"]
    assert sizes == {"train": 32, "test": 4}
    seen = []
    for run in runs:
        assert run["batches"]  # an epoch of the official length
        for ids in run["batches"]:  # counts laid out in source order: 3 S1 frames, then 1 S9
            assert [i.split("/")[1] for i in ids] == ["S1"] * 3 + ["S9"]
        seen.append({k: {i for ids in run["batches"] for i in (ids[:3] if k == "train" else ids[3:])}
                     for k in SHARES})  # fmt: skip
    for k in SHARES:
        assert not seen[0][k] & seen[1][k]  # disjoint shards
        assert len(seen[0][k] | seen[1][k]) == sizes[k]  # together: every item of the source


def test_config_switches_select_prepared_and_streaming_sources(chunks, tmp_path):
    from experiments.config import ConfigError, load_config
    from experiments.config_checks import validate
    from experiments.data import build_dataset

    # streaming holds the whole training split: no validation carved from it (data.val_fraction)
    base = ["data.sources={h36m: {dataset: h36m, stage: pose}}", "data.train=[h36m]",
            "data.val=[]", "data.val_fraction=0", "data.test=[h36m]",
            f"data.sources.h36m.prepared={chunks['prepared']}", "model.input_size=32",
            "data.sources.h36m.test_options.subjects=[9]"]  # fmt: skip
    cfg = load_config("h36m", base)
    validate(cfg)  # no data.root: the prepared folder replaces the download
    test = build_dataset(cfg, "h36m", "test")
    assert (
        isinstance(test.dataset.source, PreparedH36M) and len(test) == 4
    )  # S9 every 64th frame, 4 cameras
    stream = f"data.sources.h36m.streaming={chunks['chunks'] / 'train'}"
    train = build_dataset(load_config("h36m", [*base, stream]), "h36m", "train")
    assert isinstance(train.dataset, StreamingSource) and len(train) == 32
    assert train[0]["image"].shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="prepared"):
        validate(load_config("h36m", [*base, f"data.sources.h36m.prepared={tmp_path / 'none'}"]))
