"""The pose network: stem + K prediction blocks with intermediate supervision (SPEC.md).

Block k: reception block → SepConv_k → RegMap_k (heat-map logits h) → decoding (soft-argmax,
visibility); all but the last re-inject h through fReMap_k:
next input = reception output + SepConv output + fReMap(h).

Shapes: B batch, T frames, J joints, D 2|3, C channels (576), H×W maps (input / 8), N_h maps.
"""

from __future__ import annotations

from torch import Tensor, nn

from deephar.config import NetworkConfig
from deephar.layers import ActConv, act_conv_bn, act_sepconv_bn, max_pool, upsample
from deephar.models.stem import STEM_CHANNELS, SeparableResidual, Stem
from deephar.outputs import PoseOutput
from deephar.soft_argmax import decode_2d, decode_3d


class ReceptionBlock(nn.Module):
    """Hourglass of SR modules at 3 resolutions (B, C, H, W) → (B, C, H, W).

    a = SR(x); low1 = SR(reduce(MaxPool(x))) at H/2 with C/2 channels; b = SR(low1);
    c = Up(SR³(MaxPool(low1))); output = a + Up(SR(b + c) → C). Names follow the official layers.
    """

    def __init__(self, channels: int = STEM_CHANNELS, kernel_size: int = 5) -> None:
        super().__init__()
        half = channels // 2
        self.sepconv_l1 = SeparableResidual(channels, channels, kernel_size)
        self.low_reduce = act_conv_bn(channels, half, 1)
        self.sepconv_l2_1 = SeparableResidual(half, half, kernel_size)
        self.sepconv_l2_2 = SeparableResidual(half, half, kernel_size)
        self.sepconv_l3_1 = SeparableResidual(half, half, kernel_size)
        self.sepconv_l3_2 = SeparableResidual(half, half, kernel_size)
        self.sepconv_l3_3 = SeparableResidual(half, half, kernel_size)
        self.sepconv_l2_3 = SeparableResidual(half, channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        a = self.sepconv_l1(x)
        low1 = self.sepconv_l2_1(self.low_reduce(max_pool(x)))  # (B, C/2, H/2, W/2)
        b = self.sepconv_l2_2(low1)
        c = self.sepconv_l3_3(self.sepconv_l3_2(self.sepconv_l3_1(max_pool(low1))))  # H/4
        b = self.sepconv_l2_3(b + upsample(c))  # (B, C, H/2, W/2)
        return a + upsample(b)


class PredictionBlock(nn.Module):
    """Reception block + SepConv_k + RegMap_k (+ fReMap_k unless ``last``)."""

    def __init__(
        self,
        num_heatmaps: int,
        kernel_size: int = 5,
        last: bool = False,
        channels: int = STEM_CHANNELS,
    ) -> None:
        super().__init__()
        self.reception = ReceptionBlock(channels, kernel_size)
        self.sepconv = act_sepconv_bn(channels, channels, kernel_size)
        self.regmap = ActConv(channels, num_heatmaps, 1)
        self.fremap = None if last else act_conv_bn(num_heatmaps, channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(B, C, H, W) → reception output (B, C, H, W), logits h (B, N_h, H, W), next block
        input (B, C, H, W) or None for the last block."""
        r = self.reception(x)
        s = self.sepconv(r)
        h = self.regmap(s)
        nxt = None if self.fremap is None else r + s + self.fremap(h)
        return r, h, nxt


class PoseNet(nn.Module):
    """Stem (shared, passed by reference) + K prediction blocks.

    ``forward``: (B, 3, H, W) in [−1, 1] → ``PoseOutput`` with per-block pose (B, J, D),
    visibility (B, J), joint logits (B, J, H/8, W/8), all logits (B, N_h, H/8, W/8) and the
    appearance features (B, C, H/8, W/8) (C = 576 at width 1) = stem + first reception block.
    """

    def __init__(self, cfg: NetworkConfig, stem: Stem | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = stem if stem is not None else Stem(cfg.width)
        k, channels = cfg.pose_blocks, cfg.channels(STEM_CHANNELS)
        self.blocks = nn.ModuleList(
            PredictionBlock(cfg.num_heatmaps, cfg.kernel_size, last=i == k - 1, channels=channels)
            for i in range(k)
        )
        # inference copies only (deephar.models.inference): another engine running ``trunk``
        # (deephar.models.openvino_trunk), and whether the blocks before the last are decoded
        self.runtime: nn.Module | None = None
        self.decode_all = True

    def decode(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits (B, N_h, H, W) → pose (B, J, D), visibility (B, J), joint logits (B, J, H, W)."""
        if self.cfg.dim == 2:
            return decode_2d(h, self.cfg.num_joints)
        return decode_3d(h, self.cfg.num_joints)

    def trunk(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, 3, H, W) → appearance features (B, C, H/8, W/8) (stem + first reception block) and
        the logits (B, N_h, H/8, W/8) of every prediction block (of the last only when
        ``decode_all`` is off and an engine runs it): the convolutional part."""
        if self.runtime is not None:
            return self.runtime(x)
        x = self.stem(x)
        features, logits = None, []
        for block in self.blocks:
            r, h, x = block(x)
            features = r if features is None else features
            logits.append(h)
        return features, logits

    def forward(self, x: Tensor) -> PoseOutput:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"PoseNet expects (B, 3, H, W) images, got {tuple(x.shape)}")
        features, logits = self.trunk(x)
        logits = logits if self.decode_all else logits[-1:]
        out = PoseOutput(pose=[], visibility=[], heatmaps=[], logits=logits, features=features)
        for h in logits:
            pose, vis, hm = self.decode(h)
            out.pose.append(pose)
            out.visibility.append(vis)
            out.heatmaps.append(hm)
        return out


def map_pose_output(out: PoseOutput, fn) -> PoseOutput:
    """Apply ``fn`` to every tensor of ``out`` (e.g. to unfold or detach)."""
    return PoseOutput(
        pose=[fn(v) for v in out.pose],
        visibility=[fn(v) for v in out.visibility],
        heatmaps=[fn(v) for v in out.heatmaps],
        features=None if out.features is None else fn(out.features),
        logits=None if out.logits is None else [fn(v) for v in out.logits],
    )
