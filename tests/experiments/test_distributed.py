"""experiments.distributed: a rank's process group is destroyed before its interpreter exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# a one-rank gloo group; the first atexit handler registered runs last (LIFO) and reports
# whether the group was still alive when the interpreter began to exit
RANK = textwrap.dedent("""
    import atexit, sys
    import torch.distributed as dist
    from experiments.distributed import ReleaseProcessGroup
    dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
    atexit.register(lambda: print("alive at exit:", dist.is_initialized()))
    if sys.argv[2] == "release":
        ReleaseProcessGroup().setup(None, None, "fit")
        ReleaseProcessGroup().setup(None, None, "test")  # registered once per process
""")


@pytest.mark.parametrize("mode, alive", [("release", False), ("keep", True)])
def test_the_process_group_is_destroyed_at_exit(tmp_path, mode, alive):
    done = subprocess.run([sys.executable, "-c", RANK, str(tmp_path / "store"), mode], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("alive at exit:") == 1
    assert f"alive at exit: {alive}" in done.stdout
