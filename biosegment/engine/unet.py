"""The U-Net that BioSegment segments and trains with.

A 2-D or 3-D U-Net in the shape the old ``neuralnets`` library used, built so that its
``state_dict`` keys and tensor shapes are exactly those of that library's checkpoints: a bare
``.pytorch`` file from the old stack loads straight into :class:`UNet`. Each level holds two
3x3 convolutions (each followed by an optional norm and a ReLU); the encoder halves the size
with 2x2 max pooling, the decoder doubles it with a 2x2 transposed convolution and concatenates
the encoder's features of the same level; a 1x1 convolution gives one raw logit per class.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "NORMS", "architecture_dict", "size_multiple", "flops_per_voxel"]

#: Norm layers a U-Net may use after each 3x3 convolution.
NORMS = ("instance", "batch", "none")

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_UP = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def architecture_dict(
    *,
    dims: int = 2,
    in_channels: int = 1,
    num_classes: int = 2,
    feature_maps: int = 16,
    levels: int = 4,
    norm: str = "instance",
) -> dict:
    """Validate U-Net hyper-parameters and return them as a plain dict.

    :param dims: 2 for slice-wise networks, 3 for volumetric ones.
    :param in_channels: channels of the input image (1 for grey-scale EM).
    :param num_classes: output channels, one logit per class id (background included).
    :param feature_maps: channels of the first level; each deeper level doubles them.
    :param levels: number of 2x down-sampling steps.
    :param norm: ``instance``, ``batch`` or ``none``.
    :returns: the dict stored as :attr:`UNet.config` and in ``model.json``.
    :raises ValueError: when a value is out of range.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, not {dims!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    for name, value in (
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("feature_maps", feature_maps),
        ("levels", levels),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return {
        "dims": dims,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "feature_maps": feature_maps,
        "levels": levels,
        "norm": norm,
    }


def size_multiple(levels: int) -> int:
    """Every spatial size fed to a U-Net with ``levels`` poolings must be a multiple of this."""
    return 2**levels


def flops_per_voxel(config: dict) -> float:
    """Useful floating-point operations per output voxel of one forward pass.

    Counts the multiply-adds of every convolution (2 FLOPs each) from its shape, scaled by
    the share of voxels its level has; norms, ReLUs, pooling and biases are left out. This is
    the figure throughput is measured against (about 92 kFLOP for a 2-D fm16 4-level net).

    :param config: a U-Net architecture dict (:attr:`UNet.config`).
    :returns: FLOPs per voxel of output.
    """
    dims, fm, levels = config["dims"], config["feature_maps"], config["levels"]
    taps = 3**dims
    total = 0.0
    channels_in = config["in_channels"]
    for level in range(levels + 1):  # the last "level" is the centre block
        share = 1.0 / 2 ** (dims * level)
        channels = fm * 2**level
        total += share * 2 * taps * (channels_in * channels + channels * channels)
        channels_in = channels
    for level in range(levels):  # decoder: up-sampling into this level, then its two convs
        share = 1.0 / 2 ** (dims * level)
        channels = fm * 2**level
        total += share * 2 * (2 * channels) * channels  # each output voxel gets one tap
        total += share * 2 * taps * (2 * channels * channels + channels * channels)
    total += 2 * fm * config["num_classes"]
    return total


class _ConvNormRelu(nn.Module):
    """3x3 convolution, optional norm, ReLU. The ``unit`` names give the old checkpoint keys."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.unit = nn.Sequential()
        self.unit.add_module("0", _CONV[dims](in_channels, out_channels, kernel_size=3, padding=1))
        if norm == "batch":
            self.unit.add_module("norm", _BATCH_NORM[dims](out_channels))
        elif norm == "instance":
            # No affine parameters and no running statistics: the old checkpoints hold no keys
            # for instance norm, and every window is normalised by its own statistics.
            self.unit.add_module("norm", _INSTANCE_NORM[dims](out_channels))
        self.unit.add_module("activation", nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(x)


class _ConvBlock(nn.Module):
    """Two convolution units: the body of one U-Net level."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = _ConvNormRelu(dims, in_channels, out_channels, norm)
        self.conv2 = _ConvNormRelu(dims, out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class _UpSample(nn.Module):
    """2x up-sampling by a learned transposed convolution."""

    def __init__(self, dims: int, in_channels: int, out_channels: int):
        super().__init__()
        self.up = _UP[dims](in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class _Encoder(nn.Module):
    def __init__(self, dims: int, in_channels: int, feature_maps: int, levels: int, norm: str):
        super().__init__()
        self.levels = levels
        self.features = nn.Module()
        channels = in_channels
        for level in range(1, levels + 1):
            out_channels = feature_maps * 2 ** (level - 1)
            self.features.add_module(
                f"convblock{level}", _ConvBlock(dims, channels, out_channels, norm)
            )
            self.features.add_module(f"pool{level}", _POOL[dims](kernel_size=2))
            channels = out_channels
        self.center_conv = _ConvBlock(dims, channels, feature_maps * 2**levels, norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for level in range(1, self.levels + 1):
            x = getattr(self.features, f"convblock{level}")(x)
            skips.append(x)
            x = getattr(self.features, f"pool{level}")(x)
        return self.center_conv(x), skips


class _Decoder(nn.Module):
    def __init__(self, dims: int, num_classes: int, feature_maps: int, levels: int, norm: str):
        super().__init__()
        self.levels = levels
        self.features = nn.Module()
        for step in range(1, levels + 1):
            in_channels = feature_maps * 2 ** (levels - step + 1)
            out_channels = in_channels // 2
            self.features.add_module(f"upconv{step}", _UpSample(dims, in_channels, out_channels))
            self.features.add_module(
                f"convblock{step}", _ConvBlock(dims, in_channels, out_channels, norm)
            )
        self.output = _CONV[dims](feature_maps, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for step in range(1, self.levels + 1):
            up = getattr(self.features, f"upconv{step}")(x)
            # Encoder features first, then the up-sampled ones: the channel order the old
            # library's weights were trained with.
            x = torch.cat((skips[self.levels - step], up), dim=1)
            x = getattr(self.features, f"convblock{step}")(x)
        return self.output(x)


class UNet(nn.Module):
    """A 2-D or 3-D U-Net whose weights are interchangeable with ``neuralnets`` checkpoints.

    All arguments are keyword-only; see :func:`architecture_dict` for their meaning.
    ``forward(x)`` takes ``(N, in_channels, *spatial)`` with every spatial size a multiple of
    ``2 ** levels`` and returns raw logits ``(N, num_classes, *spatial)``.
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 2,
        feature_maps: int = 16,
        levels: int = 4,
        norm: str = "instance",
    ):
        super().__init__()
        self.config = architecture_dict(
            dims=dims,
            in_channels=in_channels,
            num_classes=num_classes,
            feature_maps=feature_maps,
            levels=levels,
            norm=norm,
        )
        self.encoder = _Encoder(dims, in_channels, feature_maps, levels, norm)
        self.decoder = _Decoder(dims, num_classes, feature_maps, levels, norm)

    @property
    def dims(self) -> int:
        return self.config["dims"]

    @property
    def levels(self) -> int:
        return self.config["levels"]

    @property
    def num_classes(self) -> int:
        return self.config["num_classes"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute class logits for a batch of images.

        :param x: float input scaled to [0, 1], ``(N, C, Y, X)`` for a 2-D network or
            ``(N, C, Z, Y, X)`` for a 3-D one; spatial sizes must be multiples of
            ``2 ** levels``.
        :returns: one logit per class and pixel, ``(N, num_classes, ...)`` with the input's
            spatial shape (the class is the argmax over dimension 1).
        :raises ValueError: for input of the wrong rank or size.
        """
        dims, multiple = self.config["dims"], size_multiple(self.config["levels"])
        if x.dim() != dims + 2:
            raise ValueError(
                f"a {dims}-D U-Net takes (N, C, {'Z, ' if dims == 3 else ''}Y, X) "
                f"input, got shape {tuple(x.shape)}"
            )
        if any(size % multiple for size in x.shape[2:]):
            raise ValueError(
                f"spatial sizes {tuple(x.shape[2:])} must be multiples of "
                f"{multiple} (2 ** levels); pad the input first"
            )
        bottom, skips = self.encoder(x)
        return self.decoder(bottom, skips)
