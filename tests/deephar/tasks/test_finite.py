"""deephar.tasks.finite: non-finite loss flags kept on the device, read once; checkpoints with
non-finite tensors refused; two gloo ranks agree on one answer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deephar.tasks.finite import (
    LossWatch,
    NonFiniteError,
    NonFiniteReport,
    check_checkpoint,
    read_due,
)
from tests.deephar.tasks.ranks import run_ranks

NAN = float("nan")
READS = ("item", "tolist", "cpu", "__bool__", "__float__", "__int__")


def _steps(watch: LossWatch, bad_step: int | None, bad_term: str = "pose") -> None:
    for step in range(1, 6):
        pose = torch.tensor(NAN if step == bad_step else 1.0)
        watch.observe({"loss": pose + 1, bad_term: pose, "visibility": torch.tensor(0.5)}, step)


def test_observing_reads_nothing_from_the_device(monkeypatch):
    """The per-step part makes no host read (a GPU sync): every read method raises here."""

    def refuse(*args, **kwargs):
        raise AssertionError("a device read while observing")

    watch = LossWatch()
    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, refuse)
    _steps(watch, bad_step=3)
    monkeypatch.undo()
    assert watch.report() == NonFiniteReport(3, ("loss", "pose"))


def test_the_first_non_finite_step_and_only_the_non_finite_terms_are_reported():
    watch = LossWatch()
    assert watch.report() is None  # nothing observed
    _steps(watch, bad_step=None)
    assert watch.report() is None
    _steps(watch, bad_step=4, bad_term="pose")  # steps 1…5 again: first bad one is 4
    watch.observe({"loss": torch.tensor(torch.inf), "pose": torch.tensor(1.0)}, 9)
    assert watch.report() == NonFiniteReport(4, ("loss", "pose"))


def test_the_stop_line_names_step_terms_and_that_nothing_was_saved():
    watch = LossWatch()
    _steps(watch, bad_step=2)
    trainer = SimpleNamespace(global_step=5, checkpoint_callbacks=[])
    with pytest.raises(NonFiniteError) as err:
        watch.raise_if_flagged(trainer)
    assert str(err.value) == (
        "non-finite loss at step 2 (loss, pose; read at step 5): training stopped; "
        "no checkpoint was written; lower optim.lr or check the data"
    )


@pytest.mark.parametrize(
    ("step", "batch", "due"),
    [(3, 2, True), (4, 3, False), (5, 4, False), (7, 6, True), (2, 1, False)],
)
def test_flags_are_read_at_log_steps_and_at_the_epochs_last_batch(step, batch, due):
    trainer = SimpleNamespace(
        global_step=step, log_every_n_steps=3, max_steps=-1, num_training_batches=7
    )
    assert read_due(trainer, batch) is due


def _checkpoint(weight: float, state: float) -> dict:
    return {
        "global_step": 6,
        "state_dict": {
            "net.w": torch.tensor([1.0, weight]),
            "val_best.min_value": torch.tensor(torch.inf),
            "net.count": torch.tensor(3),
        },
        "optimizer_states": [
            {"state": {0: {"step": torch.tensor(6.0), "square_avg": torch.tensor([state])}}}
        ],
    }


def test_checkpoints_with_non_finite_weights_or_optimiser_state_are_refused():
    """A best-so-far tracker at ±inf (a metric state, not the network) is no reason to refuse."""
    check_checkpoint(_checkpoint(2.0, 0.1), None)
    with pytest.raises(NonFiniteError, match=r"at step 6 \(1 of 3 tensors, e.g. net.w\)"):
        check_checkpoint(_checkpoint(NAN, 0.1), None)
    with pytest.raises(NonFiniteError, match=r"optimizer0.state.0.square_avg\)"):
        check_checkpoint(_checkpoint(1.0, torch.inf), None)


def _agreed_report(rank: int) -> tuple[int, tuple[str, ...]] | None:
    """Rank 1 alone sees a NaN pose term at step 2; each rank's answer after agreeing."""
    watch = LossWatch()
    for step in (1, 2, 3):
        bad = rank == 1 and step >= 2
        watch.observe({"loss": torch.tensor(1.0), "pose": torch.tensor(NAN if bad else 1.0)}, step)
    found = watch.report()
    return None if found is None else (found.first_step, found.terms)


def test_two_ranks_agree_on_the_step_and_the_terms(tmp_path):
    assert run_ranks(_agreed_report, 2, tmp_path) == [(2, ("pose",)), (2, ("pose",))]
