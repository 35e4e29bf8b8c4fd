"""Shared reader machinery: robust loading, clip sampling, image reading.

Alphabet: T frames per clip, N clips.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import simplejpeg
import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

ClipMode = Literal["random", "middle", "multi"]


class SampleReadError(OSError):
    """A sample's file exists but cannot be read (truncated, corrupt, undecodable)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read {path}: {reason}")
        self.path = str(path)
        self.reason = reason


#: Exceptions that mark a sample (not the code) as bad: the wrapper replaces such samples.
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    cv2.error,
)


def load_each(
    paths: Sequence[str | Path], load: Callable[[Path], Any], what: str
) -> tuple[list[Any], dict[str, str]]:
    """``load`` every file of ``paths``; a file that fails is excluded (with its sample), never the
    run: returns (loaded, {file: reason}) and lists the excluded files at start-up, each once per
    process (the train, validation and test readers of one source load the same files). Every
    file failing is an error (the data is broken, not one file)."""
    loaded, excluded = [], {}
    for path in map(Path, paths):
        try:
            loaded.append(load(path))
        except (*LOAD_ERRORS, KeyError, IndexError, TypeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            excluded[str(path)] = reason.split(f"{path}: ", 1)[-1]  # the file is the key
    if excluded:
        if not loaded:
            first = next(iter(excluded.items()))
            raise ValueError(
                f"{what}: all {len(excluded)} files unreadable, e.g. {first[0]}: {first[1]}"
            )
        if new := {k: v for k, v in excluded.items() if (k, v) not in _LISTED}:
            _LISTED.update(new.items())
            listed = "; ".join(f"{k}: {v}" for k, v in new.items())
            log.warning(
                "%s: %d of %d files excluded (their samples are left out): %s",
                what,
                len(new),
                len(paths),
                listed,
            )
    return loaded, excluded


_LISTED: set[tuple[str, str]] = set()  # (file, reason) already listed by ``load_each``


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a clear error naming it and what was expected there."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: directory not found: {path}")
    return path


def truncation(data: bytes) -> str:
    """Why an encoded JPEG / PNG is cut short ("" when complete or another format). A JPEG must
    end its last scan with the end-of-image marker FFD9 (entropy-coded data never holds FFD9, so
    none after the last start-of-scan FFDA means the file was cut); a PNG ends with its IEND
    chunk. OpenCV decodes both kinds of cut file without an error, greying the missing part."""
    if data[:2] == b"\xff\xd8":
        if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
            return "truncated JPEG: no end-of-image marker after the last scan"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        return "truncated PNG: no IEND chunk at the end"
    return ""


def decode_jpeg_scaled(data: bytes, reduce: int = 1) -> np.ndarray | None:
    """uint8 RGB of a JPEG by libjpeg-turbo's SIMD decoder (``simplejpeg``), at 1/``reduce``
    (1, 2, 4, 8: DCT scaling, ceil(H / reduce) × ceil(W / reduce)); None when it cannot (not a
    JPEG, CMYK, corrupt). The same pixels as OpenCV's decode (libjpeg-turbo's slow-integer IDCT
    and fancy upsampling both), faster at full size than OpenCV's build (docs/performance.md, the loader)."""
    if data[:2] != b"\xff\xd8":
        return None
    try:
        if reduce == 1:
            return simplejpeg.decode_jpeg(data, "rgb")
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
        return simplejpeg.decode_jpeg(
            data, "rgb", min_height=-(-height // reduce), min_width=-(-width // reduce)
        )
    except ValueError:
        return None


def decode_image(data: bytes, name: str | Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an encoded image (JPEG, PNG…); SampleReadError naming ``name``
    when empty, truncated (OpenCV decodes a cut JPEG without an error) or undecodable."""
    if not data:
        raise SampleReadError(name, "empty file")
    if reason := truncation(data):
        raise SampleReadError(name, reason)
    if (rgb := decode_jpeg_scaled(data)) is not None:
        return rgb
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleReadError(name, "OpenCV could not decode the image (corrupt?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB image; FileNotFoundError / SampleReadError naming ``path`` (empty,
    truncated or undecodable files)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"image not found: {path}") from None
    return decode_image(data, path)


def sample_rng() -> np.random.Generator:
    """A NumPy generator seeded from torch's RNG: distinct per DataLoader worker and epoch, and
    reproducible under ``lightning.seed_everything(..., workers=True)``."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


def to_tensors(sample: dict[str, Any]) -> dict[str, Any]:
    """NumPy arrays and numbers of a sample dict → torch tensors (strings kept as they are)."""
    out = {}
    for key, value in sample.items():
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, (bool, int, float, np.number, np.bool_)):
            out[key] = torch.tensor(value)
        else:
            out[key] = value
    return out


def no_3d(num_joints: int, lead: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """The 3D/camera entries of a 2D-only sample: pose_mm ([T,] J, 3), depth ([T,] 2), camera (4,)
    all zeros."""
    return {
        "pose_mm": np.zeros(lead + (num_joints, 3), np.float32),
        "depth": np.zeros(lead + (2,), np.float32),
        "camera": np.zeros(4, np.float32),
    }


class RobustDataset(Dataset):
    """Wraps a map-style dataset: a sample that fails to load is logged, counted and replaced.

    A failing index is replaced by a sample drawn at random, seeded by (``seed``, index,
    attempt): the same replacement in every run and worker, almost always from another file
    (the frames of one bad video are a small share of the data, where index + 1, + 2 … were the
    same video), and never one already seen to fail in this process. Each bad file is logged
    once per process, with the reason; ``num_failures`` counts every failed load across
    DataLoader worker processes (shared counters). The data is broken, not one file, and a
    RuntimeError stops the run, when more than ``max_failed_share`` of the loads failed (all
    workers, after ``min_loads`` loads), or when ``max_attempts`` loads in a row failed for one
    sample. Attributes not found here are looked up on the wrapped dataset.
    """

    def __init__(
        self,
        dataset: Dataset,
        max_failed_share: float = 0.25,
        min_loads: int = 256,
        max_attempts: int = 16,
        seed: int = 0,
        errors: tuple[type[BaseException], ...] = LOAD_ERRORS,
    ):
        self.dataset = dataset
        self.max_failed_share, self.min_loads = max_failed_share, min_loads
        self.max_attempts, self.seed = max_attempts, seed
        self.errors = errors
        self._failures = multiprocessing.Value("i", 0)
        self._loads = multiprocessing.Value("i", 0)
        self._bad: set[int] = set()  # indices seen to fail (this process)
        self._bad_files: set[str] = set()  # files logged (this process)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_failures(self) -> int:
        """Failed loads so far (all workers): each one was replaced."""
        return int(self._failures.value)

    @property
    def num_loads(self) -> int:
        """Loads so far, failed or not (all workers)."""
        return int(self._loads.value)

    def candidates(self, index: int) -> Iterator[int]:
        """``index``, then its replacements: seeded random indices, known bad ones skipped."""
        yield index
        n = len(self.dataset)
        for attempt in range(1, 64 * self.max_attempts):
            i = int(np.random.default_rng((self.seed, index, attempt)).integers(n))
            if i != index and i not in self._bad:
                yield i

    def __getitem__(self, index: int) -> Any:
        last_error: BaseException | None = None
        for attempt, i in enumerate(self.candidates(index)):
            if attempt == self.max_attempts:
                break
            try:
                sample = self.dataset[i]
            except self.errors as err:
                last_error = err
                self._failed(i, err)
                continue
            with self._loads.get_lock():
                self._loads.value += 1
            return sample
        raise RuntimeError(
            f"{type(self.dataset).__name__}: sample {index} and {self.max_attempts - 1} random "
            f"replacements failed: the data is broken, not one file; the last error is chained "
            f"below"
        ) from last_error

    def _failed(self, index: int, err: BaseException) -> None:
        """Count a failed load, log its file the first time, stop when the data is broken."""
        with self._failures.get_lock(), self._loads.get_lock():
            self._failures.value += 1
            self._loads.value += 1
            failures, loads = self._failures.value, self._loads.value
        self._bad.add(index)
        name = str(getattr(err, "path", None) or getattr(err, "filename", None) or index)
        if name not in self._bad_files:
            self._bad_files.add(name)
            log.warning(
                "%s: sample %d failed, replaced by a random other one (this file's "
                "other failures are counted, not logged): %s",
                type(self.dataset).__name__,
                index,
                err,
            )
        if loads >= self.min_loads and failures > self.max_failed_share * loads:
            raise RuntimeError(
                f"{type(self.dataset).__name__}: {failures} of {loads} loads failed (more than "
                f"{self.max_failed_share:.0%}; {len(self._bad_files)} files in this process): "
                f"the data is broken, not one file; the last error is chained below"
            ) from err

    def __getattr__(self, name: str) -> Any:
        # "dataset" not yet set (unpickling): no infinite recursion; dunders such as
        # ``__getitems__`` must not reach the wrapped dataset, or a Subset above would bypass us
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def clip_indices(
    num_frames: int,
    T: int,
    mode: ClipMode,
    subsample: int = 1,
    rng: np.random.Generator | None = None,
    step: int | None = None,
) -> np.ndarray:
    """(N, T) frame indices of the clips of a video of ``num_frames`` frames.

    random: one clip at a random start (training); middle: the centred clip (single-clip
    evaluation); multi: clips every ``step`` frames (default T // 2) covering the video, the last
    one ending at the last frame. A video shorter than the clip span (T−1)·subsample + 1 is
    stretched: one clip of T indices spread over the whole video (indices repeat).
    """
    if num_frames < 1:
        raise ValueError(f"clip_indices: a video needs at least one frame, got {num_frames}")
    span = (T - 1) * subsample + 1
    offsets = np.arange(T) * subsample
    if num_frames < span:
        return np.round(np.linspace(0, num_frames - 1, T)).astype(np.int64)[None]
    last = num_frames - span
    if mode == "random":
        rng = rng if rng is not None else np.random.default_rng()
        starts = np.array([rng.integers(0, last + 1)])
    elif mode == "middle":
        starts = np.array([last // 2])
    elif mode == "multi":
        starts = np.arange(0, last + 1, step or max(1, T // 2))
        starts = np.unique(np.append(starts, last))
    else:
        raise ValueError(f"clip_indices: unknown mode {mode!r} (random | middle | multi)")
    return (starts[:, None] + offsets[None]).astype(np.int64)
