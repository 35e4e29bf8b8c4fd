"""deephar.tasks.base: where the task modules compile their network (``compile=True``)."""

from __future__ import annotations

import torch
from torch._dynamo.testing import CompileCounter

from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.tasks import ActionModule

NET = NetworkConfig(input_size=32, pose_blocks=1, num_actions=3, num_frames=4)


def test_compiled_in_configure_model_once_and_a_smaller_last_batch_reuses_the_graph(monkeypatch):
    """Not at construction: in ``configure_model`` (Lightning calls it before DDP wraps the
    module), once per part whatever the number of stages; a last batch of 3 after batches of 4
    (clips, hence B·T frames, and images) runs the graphs compiled for the first."""
    torch._dynamo.reset()
    counter, compile = CompileCounter(), torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: compile(self, backend=counter, **kw))  # fmt: skip
    net = build_model(NET)
    module = ActionModule(net, freeze_pose=False, compile=True)
    assert net.pose._compiled_call_impl is None and net.action._compiled_call_impl is None
    module.configure_model()
    compiled = net.pose._compiled_call_impl
    assert compiled is not None and net.action._compiled_call_impl is not None
    ActionModule(net, freeze_pose=False, compile=True).configure_model()  # fine-tuning stage
    module.configure_model()  # test stage
    assert net.pose._compiled_call_impl is compiled
    with torch.no_grad():
        net.forward_clip(torch.randn(4, 4, 3, 32, 32))
        net.forward_pose(torch.randn(4, 3, 32, 32))
        frames = counter.frame_count
        net.forward_clip(torch.randn(3, 4, 3, 32, 32))
        net.forward_pose(torch.randn(3, 3, 32, 32))
    assert frames > 0 and counter.frame_count == frames  # no recompilation
    torch._dynamo.reset()
