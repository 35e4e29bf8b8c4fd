"""Every command the README and the docs it moved to quote runs (tiny sizes, the synthetic world).

Commands are read from README.md and ``DOCS`` (the docs that hold what README used to), in order:
fenced ``bash`` blocks and inline code that starts with ``python -m``, ``make`` or ``pytest``;
``make`` targets are expanded by ``make -n``. Each one runs in-process through its module's
``main(argv)`` inside one workspace (the README's relative paths: ``checkpoints/``, ``mpii.pt``
…), with the dataset folders mapped onto the synthetic world and size overrides appended. A command the test does not know fails it, so README and test move
together. The official-weight commands use ``../shared/parity`` (K = 2 files) and skip without it.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# README and the docs its commands moved to (docs/penn_action.md, gpu.md, datasets.md hold
# histories, placeholders and cluster scripts: their commands are not run here).
MOVED = ("usage.md", "reliability.md", "performance.md", "synthetic.md")
DOCS = [README, *(ROOT / "docs" / name for name in MOVED)]
DATA = {"/data/mpii": "mpii", "/data/h36m": "h36m", "/data/PennAction": "penn", "/data/ntu": "ntu"}
# Not run here, with the reason.
NOT_RUN = {
    "make install": "creates the environment the tests run in",
    "make lock": "upgrades the environment and rewrites the lock (tests/test_install.py checks it)",
    "make test": "the test suite itself",
    "make lint": "CI runs it beside the tests",
    "make help": "tests/experiments/test_readme_commands.py::test_make_help_lists_every_target",
    "make demo": "tests/experiments/test_demo.py runs the same pipeline at --size tiny",
    "python -m experiments.demo": "tests/experiments/test_demo.py runs it at --size tiny",
    "python -m experiments.crossval": "tests/experiments/test_crossval.py runs it at tiny size",
    "make bench": "benchmarks: minutes of timing",
    "make bench-keras-env": "installs TensorFlow into a second environment",
    "make gpu-check": "needs a GPU; tests/benchmarks/test_gpu_check.py runs its --dry rehearsal",
    "python -m benchmarks.": "benchmarks: minutes of timing",
    "python -m cProfile": "a profile of a benchmark: minutes of timing",
    "pytest tests/deephar/test_parity": "the parity tests are part of the suite",
    "pytest tests/reliability": "the fault-injection tests are part of the suite",
}
TINY_TRAIN = [
    "model.input_size=64", "model.pose_blocks=1", "model.width=0.25", "model.num_frames=4",
    "data.batch_size=2", "data.eval_batch_size=2", "data.steps_per_epoch=1", "data.num_workers=0",
    "data.limit_val=2", "trainer.max_epochs=1", "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1",
    "trainer.strategy=auto", "finetune.epochs=1", "logger.kind=csv",
]  # fmt: skip
# The tiny world's Human3.6M subjects: S1, S5 (training) and S9 (evaluation).
H36M_SUBJECTS = ["data.sources.h36m.train_options.subjects=[1,5]",
                 "data.sources.h36m.val_options.subjects=[9]",
                 "data.sources.h36m.test_options.subjects=[9]"]  # fmt: skip
# The tiny world's NTU training split holds one subject: no validation split can be carved.
NTU_NO_VAL = ["data.val=[]"]
PARITY = {"mpii": "mpii_2d_k2.h5", "h36m": "h36m_3d_k2.h5", "penn": "penn_merge_k2_t8.h5"}
# The official release files the docs name → the parity file of the same model.
OFFICIAL = {"PE_MPII": "mpii", "3DPE_H36M": "h36m", "AR_merge_ep074": "penn"}


def readme_commands(text: str) -> list[str]:
    """Shell commands of the README in order (a trailing ``# comment`` removed)."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        for offset, line in enumerate(block.group(1).splitlines()):
            command = line.split(" #")[0].strip()
            if command:
                found.append((block.start() + offset, command))
    for span in re.finditer(r"`((?:python -m|make |pytest )[^`]+)`", text):
        found.append((span.start(), " ".join(span.group(1).split())))
    commands = []
    for _, line in sorted(found):
        commands += [c.strip() for c in line.split("&&")]
    return commands


COMMANDS = list(dict.fromkeys(c for doc in DOCS for c in readme_commands(doc.read_text())))


def test_readme_quotes_no_machine_path():
    assert not re.search(r"/tmp/|/home/|/work/|/Users/", README.read_text())


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    targets = re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.M)
    assert targets and all(t in out for t in targets)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The folder the commands run in, the synthetic world and the parity files (if any)."""
    from datamodules.synthetic import generate_world

    root = tmp_path_factory.mktemp("readme")
    world = generate_world(root / "world", "tiny", seed=0)
    shared = Path(os.environ.get("DEEPHAR_SHARED", ROOT.parent / "shared"))
    parity = shared / "parity"
    return {"root": root, "world": world, "parity": parity if parity.is_dir() else None,
            "shared": shared.resolve() if shared.is_dir() else None}  # fmt: skip


def expand(command: str) -> list[str]:
    """``make <target> VAR=…`` → the command line it runs; others split as a shell would."""
    if command.startswith("make "):
        out = subprocess.run(["make", "-n", "-s", *shlex.split(command)[1:]], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        (line,) = [li for li in out.splitlines() if " -m " in li]
        command = line
    argv = shlex.split(command)
    return argv[argv.index("-m") + 1 :] if "-m" in argv else argv


def localise(argv: list[str], ws: dict) -> list[str]:
    """Dataset folders → the synthetic world; the official file names → the parity files."""
    out = []
    for arg in argv:
        for path, key in DATA.items():
            arg = arg.replace(path, str(ws["world"][key]))
        if "../shared/" in arg:  # the reference material beside the project
            if ws["shared"] is None:
                pytest.skip("needs ../shared")
            arg = arg.replace("../shared", str(ws["shared"]))
        official = next((m for name, m in OFFICIAL.items() if name in arg), None)
        if arg.endswith(".h5") and official:
            arg = str(need_parity(ws) / PARITY[official])
        out.append(arg)
    return out


def need_parity(ws: dict) -> Path:
    if ws["parity"] is None:
        pytest.skip("official-format weights need ../shared/parity")
    return ws["parity"]


def converted(ws: dict, model: str) -> str:
    """``<model>.pt`` in the workspace, converted from the parity file like the README's line."""
    path = ws["root"] / f"{model}.pt"
    if not path.is_file():
        from deephar.convert import main as convert

        h5 = need_parity(ws) / PARITY[model]
        assert convert([str(h5), str(path), "--model", model, "--blocks", "2"]) == 0
    return path.name


def run_module(module: str, argv: list[str]) -> int:
    loaded = importlib.import_module(module)
    if not hasattr(loaded, "main"):  # a package run with -m: its __main__
        loaded = importlib.import_module(f"{module}.__main__")
    return loaded.main(argv) or 0


def adapt(module: str, argv: list[str], ws: dict) -> list[str]:
    """The size overrides and file preparations of one command."""
    if module == "experiments.train":
        if any(a.startswith("init.ckpt=runs/demo/") for a in argv):
            pytest.skip("continues `make demo`'s estimated-pose checkpoint (test_demo.py: tiny)")
        world = {"h36m": H36M_SUBJECTS, "ntu": NTU_NO_VAL, "ntu_kinect": NTU_NO_VAL}
        return argv + TINY_TRAIN + world.get(argv[0], [])
    if module == "deephar.convert":
        return argv + ["--blocks", "2"]
    if module == "deephar.export":  # the converted file of the README's convert line
        converted(ws, argv[0].removesuffix(".pt"))
        return argv
    if module == "experiments.evaluate":
        name, ckpt = argv[0], next(a for a in argv if a.startswith("ckpt=")).removeprefix("ckpt=")
        if ckpt.endswith("/best.ckpt"):  # the run of a README train line: its own protocol
            if not (ws["root"] / ckpt).is_file():
                pytest.skip(f"needs {ckpt} of the README's train line (run the module)")
            return argv + ["data.num_workers=0"]
        converted(ws, name)
        assert ckpt == f"{name}.pt", ckpt
        extra = ["limit=2", "model.pose_blocks=2", "data.num_workers=0", "data.eval_batch_size=2"]
        if name == "h36m":
            extra += [f"data.mpii_root={ws['world']['mpii']}", *H36M_SUBJECTS]
        return argv + extra
    if module == "datamodules.synthetic":
        return argv + ["--size", "tiny"]  # into the workspace's data/synthetic
    if module == "experiments.ablation":
        if any(a.startswith("<demo") for a in argv):  # "<demo run>/…", split by the shell
            pytest.skip("continues `make demo`'s pose checkpoint (test_demo.py: tiny)")
        pose = ws["root"] / "checkpoints" / "ntu" / "best.ckpt"
        if not pose.is_file():
            pytest.skip(
                "needs the checkpoint of the README's `make train-ntu` line (run the module)"
            )
        argv = [str(pose) if a == "ntu_pose.ckpt" else a for a in argv]
        return argv + ["--out", "ablation"] + TINY_TRAIN + NTU_NO_VAL
    if module == "experiments.predict":
        model = next(a for a in argv if a.startswith("ckpt=")).removeprefix("ckpt=")[:-3]
        converted(ws, model)
        video = next(ws["world"]["ntu"].rglob("*_rgb.avi"))
        return [str(video) if a == "video.mp4" else a for a in argv] + ["decode_size=96"]
    return argv


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, workspace, monkeypatch, capsys):
    if reason := next((r for p, r in NOT_RUN.items() if command.startswith(p)), None):
        pytest.skip(reason)
    argv = localise(expand(command), workspace)
    module, argv = argv[0], argv[1:]
    argv = adapt(module, argv, workspace)
    monkeypatch.chdir(workspace["root"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if module == "deephar.models.summary":
        importlib.import_module(module).main()
        text = next(d.read_text() for d in DOCS if "| model | trainable" in d.read_text())
        table = text.split("| model | trainable")[1].split("\n\n")[0]
        printed = capsys.readouterr().out
        assert all(n in printed for n in re.findall(r"\d{1,3}(?:,\d{3})+", table))
        return
    code = run_module(module, argv)
    if module == "datamodules.check":  # the tiny world is not the official split: sizes differ
        problems = [li for li in capsys.readouterr().err.splitlines() if li.startswith("PROBLEM")]
        assert all("the official split has" in p for p in problems), problems
        assert (code == 0) == (not problems)
        return
    assert code == 0, f"{command} → {module} {argv}"
    if module == "experiments.predict":
        from datamodules.penn import ACTIONS

        printed = capsys.readouterr().out
        named = re.search(r"action: (\S+)", printed)
        assert named and named.group(1) in ACTIONS, printed


@pytest.mark.slow
def test_evaluate_reads_a_lightning_checkpoint_a_converted_file_and_keras_h5(
    workspace, monkeypatch
):
    """The three kinds of file the README's evaluation paragraph names, through one loader."""
    from experiments import evaluate

    monkeypatch.chdir(workspace["root"])
    mpii = str(workspace["world"]["mpii"])
    common = [f"data.root={mpii}", "limit=2", "crops=single", "data.num_workers=0"]
    run = workspace["root"] / "checkpoints" / "mpii"
    if not (run / "best.ckpt").is_file():  # the README's `make train-mpii`, when run alone
        from experiments import train

        assert train.main(["mpii", f"data.root={mpii}", *TINY_TRAIN]) == 0
    tiny = [a for a in TINY_TRAIN if a.startswith("model.")]
    assert evaluate.main(["mpii", f"ckpt={run / 'best.ckpt'}", *common, *tiny]) == 0
    h5 = need_parity(workspace) / PARITY["mpii"]
    assert evaluate.main(["mpii", f"ckpt={h5}", "model.pose_blocks=2", *common]) == 0
    pt = converted(workspace, "mpii")
    assert evaluate.main(["mpii", f"ckpt={pt}", "model.pose_blocks=2", *common]) == 0
    assert evaluate.main(["mpii", f"ckpt={pt}", *common]) == 2  # K = 8 configured: refused


@pytest.mark.slow
def test_predict_on_an_image_a_video_and_a_frames_folder(workspace, capsys):
    """Action printed by name, JSON names it, the overlay carries the label."""
    import json

    import av
    import numpy as np

    from datamodules.penn import ACTIONS
    from experiments import predict

    ckpt = workspace["root"] / converted(workspace, "penn")
    out = workspace["root"] / "predictions"
    frames = next(p for p in (workspace["world"]["penn"] / "frames").iterdir() if p.is_dir())
    image = next(frames.glob("*.jpg"))
    video = next(workspace["world"]["ntu"].rglob("*_rgb.avi"))
    for source in (image, video, frames):
        assert predict.main([str(source), f"ckpt={ckpt}", "decode_size=96", "--out", str(out)]) == 0
        result = json.loads((out / f"{source.name}.json").read_text())
        if source == image:
            assert result["action"] is None and "posed only" in result["no_action"]
            assert Path(result["rendered"]).suffix == ".png"
            continue
        assert result["action"]["name"] in ACTIONS
        assert f"action: {result['action']['name']}" in capsys.readouterr().out
        with av.open(result["rendered"]) as container:
            first = next(container.decode(video=0)).to_ndarray(format="rgb24")
        band = first[:8, :40].astype(int)  # the label's dark band, green text inside
        assert band.mean() < 80 and np.any(band[..., 1] > 120)


def test_commands_are_found():
    assert any(c.startswith("make train-penn") for c in COMMANDS)
    assert any(c.startswith("python -m experiments.predict") for c in COMMANDS)
    assert shutil.which("make"), "make runs the Makefile targets"


# ---- the README's Python snippets (issue 27): every ```python block runs ----
def readme_python_blocks(text: str) -> list[str]:
    """The code of the README's fenced ``python`` blocks, in order."""
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def test_python_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```bash\nmake\n```\n```python\ny = 2\n```\n"
    assert readme_python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.slow
@pytest.mark.parametrize("block", readme_python_blocks(README.read_text()))
def test_readme_python_block_runs(block, workspace, monkeypatch, capsys):
    """The README's file names mapped as for its commands: ``penn.pt`` converted from the parity
    file, ``video.mp4`` a synthetic-world video."""
    converted(workspace, "penn")
    video = next(workspace["world"]["ntu"].rglob("*_rgb.avi"))
    monkeypatch.chdir(workspace["root"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    exec(compile(block.replace("video.mp4", str(video)), "README.md", "exec"), {})
    assert capsys.readouterr().out.strip(), "a README snippet shows what it computed"
