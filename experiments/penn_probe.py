"""A fast probe of Penn Action training from annotated poses, without Lightning.

    python -m experiments.penn_probe ../shared/data/penn_action_train --opt adam --lr 1e-3 --occ 1

The network of the ``penn_poses`` config (the paper's; pose network frozen, pose branch only), its
loss (``action_loss`` on the four pose-branch predictions), the real ``PennActionDataset`` in
poses mode and the validation split carved from the training videos (``datamodules.splits``,
10 %, seed 0), trained by a plain loop for ``--epochs`` and scored after every epoch with the
official multi-clip protocol (T = 16, subsampling 2, every 9 frames, log-scores summed per
video). Each flag is one knob of docs/penn_action.md's table; the trainer's config keys do the
same (``optim.*``, ``data.augment``, ``data.sources.penn.options.occluded``).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch.utils.data import DataLoader

from datamodules.penn import PennActionDataset
from datamodules.splits import carved_part, held_out_keys
from deephar.losses import action_loss
from deephar.metrics import VideoAccuracy
from deephar.models.multitask import build_model
from deephar.tasks import set_bn_momentum
from deephar.tasks.action import action_forward
from experiments.config import load_config, network_config


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", help="Penn Action folder (labels/ inside) or the labels folder")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--opt", default="sgd", choices=("sgd", "adam", "rmsprop"))
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--sched", default="plateau", choices=("plateau", "cosine", "none"))
    p.add_argument("--aug", type=int, default=1, help="image augmentation of the poses (0/1)")
    p.add_argument("--opts", default="{}", help="JSON reader kwargs of the training split")
    p.add_argument("--occ", type=int, default=0, help="count occluded joints as valid (0/1)")
    p.add_argument("--bn", type=float, default=0.0, help="BatchNorm momentum (0: official)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    return p.parse_args(argv)


def video_accuracy(net, val) -> tuple[float, float]:
    """(clip accuracy, multi-clip video accuracy: log-softmax summed over a video's clips,
    ``deephar.metrics.VideoAccuracy("prod")``)."""
    net.eval()
    video, correct = VideoAccuracy("prod"), 0
    with torch.no_grad():
        for batch in DataLoader(val, batch_size=64):
            logits = action_forward(net, batch).final
            correct += int((logits.argmax(-1) == batch["action"]).sum())
            video.update(logits, batch["action"], batch["video_id"])
    net.train()
    return correct / len(val), float(video.compute())


def main(argv: list[str] | None = None) -> float:
    a = parse(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    opts = json.loads(a.opts)
    train_all = PennActionDataset(a.root, "train", mode="poses", augment=bool(a.aug),
                                  occluded=bool(a.occ), **opts)  # fmt: skip
    held = held_out_keys(train_all, 0.1, 0)
    train = carved_part(train_all, held, "train")
    multi = PennActionDataset(a.root, "train", mode="poses", clip_sampling="multi", augment=False,
                              subsample=2, clip_step=9, occluded=bool(a.occ))  # fmt: skip
    val = carved_part(multi, held, "val")
    print(f"train {len(train)} videos, val {len(held)} videos / {len(val)} clips", flush=True)
    net = build_model(network_config(load_config("penn_poses", [])))
    net.freeze_pose(True)
    if a.bn > 0:
        set_bn_momentum(net, a.bn)
    params = [q for q in net.parameters() if q.requires_grad]
    if a.opt == "sgd":
        opt = torch.optim.SGD(params, a.lr, momentum=0.98, nesterov=True)
    else:
        opt = (torch.optim.Adam if a.opt == "adam" else torch.optim.RMSprop)(params, a.lr)
    loader = DataLoader(train, batch_size=a.bs, shuffle=True, drop_last=True)
    steps = a.epochs * len(loader)
    sched = None
    if a.sched == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))
        )
    elif a.sched == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "max", 0.2, 2)
    start, step, best, acc = time.time(), 0, 0.0, 0.0
    for epoch in range(a.epochs):
        total = 0.0
        for batch in loader:
            loss = action_loss(action_forward(net, batch), batch["action"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if a.sched == "cosine":
                sched.step()
            total += loss.item()
        clip, acc = video_accuracy(net, val)
        if a.sched == "plateau":
            sched.step(acc)
        best = max(best, acc)
        print(f"{a.tag} ep {epoch + 1} step {step} loss {total / len(loader):.3f} clip {clip:.4f} "
              f"video {acc:.4f} lr {opt.param_groups[0]['lr']:.2e} t {time.time() - start:.0f}s",
              flush=True)  # fmt: skip
    print(f"RESULT {a.tag} final {acc:.4f} best {best:.4f} time {time.time() - start:.0f}s")
    return acc


if __name__ == "__main__":
    main()
