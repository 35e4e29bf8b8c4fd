"""Reading W&B offline runs back (the ``run-<id>.wandb`` transaction log), for tests.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks
of chunks (CRC32 4 bytes, length 2 bytes LE, type 1 byte: 1 full, 2 first, 3 middle, 4 last) whose
payloads are ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK, HEADER, CHUNK_HEADER = 32768, 7, 7


def records(path: Path) -> list[Any]:
    """Every ``Record`` of one ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    out, pos, pending = [], HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        payload = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def complete_records(log_file: Path, timeout: float = 60.0) -> list[Any]:
    """The records of ``log_file`` once its ``exit`` record is there: W&B's service process may
    still be writing the file when ``wandb.finish()`` has returned."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(log_file)
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, f"{log_file}: no exit record after {timeout} s"
        time.sleep(0.2)


def read_run(folder: Path) -> dict[str, Any]:
    """{"name", "group", "config", "summary", "history_keys"} of one offline-run folder."""
    deadline = time.monotonic() + 60.0
    while not (found := list(folder.glob("run-*.wandb"))):
        assert time.monotonic() < deadline, f"{folder}: no run-*.wandb file"
        time.sleep(0.2)
    (log_file,) = found
    run: dict[str, Any] = {"config": {}, "summary": {}, "history_keys": set()}

    def items(updates) -> dict[str, Any]:
        return {(u.key or "/".join(u.nested_key)): json.loads(u.value_json) for u in updates}

    for record in complete_records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["name"], run["group"] = record.run.display_name, record.run.run_group
            run["config"] |= items(record.run.config.update)
        elif kind == "config":
            run["config"] |= items(record.config.update)
        elif kind == "summary":
            run["summary"] |= items(record.summary.update)
        elif kind == "history":
            run["history_keys"] |= {i.key or "/".join(i.nested_key) for i in record.history.item}
    return run


def offline_runs(root: Path) -> list[dict[str, Any]]:
    """Every offline run found under ``root``."""
    return [read_run(f) for f in sorted(root.rglob("offline-run-*")) if f.is_dir()]
