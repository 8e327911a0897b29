"""A plain PyTorch Classifier-inRAC: the reference a user would otherwise write.

The benchmark compares scintilab's Keras inRAC against this network, so it is the same
architecture layer for layer (stem 7x7/2 + BN + ReLU + 3x3/2 max pool, RA-Conv blocks
[2, 3, 5, 2] at 64/128/256/512 channels with CBAM inside the residual branch, global
average pooling, dense, softmax) written the way a PyTorch user would: ``nn.Conv2d``,
``nn.BatchNorm2d``, ``channels_last`` memory format, and ``torch.autocast`` with bfloat16
for mixed precision. It is deliberately *not* tuned beyond what PyTorch's documentation
recommends for CPU (channels-last, autocast, ``torch.no_grad``/``inference_mode``), so
it stands for "what you would get without scintilab".

:func:`load_keras_weights` copies a Keras inRAC's weights into it; with
``keras_padding=True`` (the asymmetric "same" padding of Keras for stride 2) the two
networks then compute the same function, which the tests check. The benchmark uses the
usual symmetric PyTorch padding, which costs the same.

PyTorch is an optional dependency (the ``bench`` extra): import this module only when
``torch`` is installed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STAGES = (2, 3, 5, 2)
FILTERS = (64, 128, 256, 512)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow/Keras "same" for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with Keras "same" padding (asymmetric when the stride is 2) if asked.

    Args:
        keras_padding: pad like Keras (extra row/column at the bottom/right) instead of
            PyTorch's symmetric ``kernel // 2``; only needed to reproduce Keras outputs.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, *, bias: bool = False, keras_padding: bool = False
    ) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0 if keras_padding else kernel // 2, bias=bias)
        self.keras_padding = keras_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Module API
        if self.keras_padding:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = _same_pads(x.shape[-2], k, s)
            left, right = _same_pads(x.shape[-1], k, s)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class CBAM(nn.Module):
    """Woo et al.'s CBAM as in :class:`scintilab.models.cbam.CBAM` (shared MLP with biases,
    bias-free k x k spatial conv over [mean; max] of the channels)."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Module API
        avg = x.mean(dim=(2, 3))
        mx = x.amax(dim=(2, 3))
        att = torch.sigmoid(self.fc2(F.relu(self.fc1(avg))) + self.fc2(F.relu(self.fc1(mx))))
        x = x * att[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class RABlock(nn.Module):
    """inRA-Conv block: out = ReLU(CBAM(BN(conv(ReLU(BN(conv(x)))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int, *, keras_padding: bool = False) -> None:
        super().__init__()
        self.conv1 = SameConv2d(cin, cout, 3, stride, keras_padding=keras_padding)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.conv2 = SameConv2d(cout, cout, 3, 1, keras_padding=keras_padding)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.cbam = CBAM(cout)
        self.proj: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(
                SameConv2d(cin, cout, 1, stride, keras_padding=keras_padding),
                nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Module API
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.cbam(self.bn2(self.conv2(y)))
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(y + shortcut)


class InRAC(nn.Module):
    """Classifier-inRAC in PyTorch (NCHW API; use ``channels_last`` memory format for speed).

    Args:
        num_classes: output classes.
        blocks: blocks per stage ([2, 3, 5, 2] for inRAC).
        width: base width (64 in the paper).
        keras_padding: reproduce Keras "same" padding exactly (see :class:`SameConv2d`).
    """

    def __init__(
        self, num_classes: int = 3, blocks: Sequence[int] = STAGES, width: int = 64, *, keras_padding: bool = False
    ) -> None:
        super().__init__()
        widths = [max(1, round(f * width / 64)) for f in FILTERS]
        stem = max(1, round(64 * width / 64))
        self.keras_padding = keras_padding
        self.stem_conv = SameConv2d(1, stem, 7, 2, keras_padding=keras_padding)
        self.stem_bn = nn.BatchNorm2d(stem, eps=1e-3, momentum=0.01)
        layers: list[nn.Module] = []
        cin = stem
        for stage, (count, cout) in enumerate(zip(blocks, widths), start=1):
            for b in range(count):
                layers.append(RABlock(cin, cout, 2 if (stage > 1 and b == 0) else 1, keras_padding=keras_padding))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for images ``x`` (B, 1, H, W)."""
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        if self.keras_padding:
            top, bottom = _same_pads(x.shape[-2], 3, 2)
            left, right = _same_pads(x.shape[-1], 3, 2)
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            x = F.max_pool2d(x, 3, 2)
        else:
            x = F.max_pool2d(x, 3, 2, padding=1)
        x = self.blocks(x)
        # float() keeps the pooled features and logits float32 under autocast, like the
        # float32 softmax of the Keras model.
        return self.fc(x.mean(dim=(2, 3)).float())


def load_keras_weights(net: InRAC, keras_model: Any) -> InRAC:
    """Copy the weights (and BN statistics) of a Keras inRAC into ``net`` in place.

    Args:
        net: a :class:`InRAC` of the same blocks/width/classes.
        keras_model: ``scintilab.models.build_model("inrac", ...)`` (or a reloaded one).

    Returns:
        ``net``.
    """

    def arr(w: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(w.numpy() if hasattr(w, "numpy") else w, dtype=np.float32))

    def conv(dst: nn.Conv2d, name: str) -> None:
        kernel = keras_model.get_layer(name).kernel  # (kh, kw, cin, cout) -> (cout, cin, kh, kw)
        dst.weight.data.copy_(arr(kernel).permute(3, 2, 0, 1))

    def bn(dst: nn.BatchNorm2d, name: str) -> None:
        layer = keras_model.get_layer(name)
        dst.weight.data.copy_(arr(layer.gamma))
        dst.bias.data.copy_(arr(layer.beta))
        dst.running_mean.data.copy_(arr(layer.moving_mean))
        dst.running_var.data.copy_(arr(layer.moving_variance))

    conv(net.stem_conv, "stem_conv")
    bn(net.stem_bn, "stem_bn")
    names = [
        layer.name[: -len("_conv1")]
        for layer in keras_model.layers
        if layer.name.endswith("_conv1") and layer.name.startswith("s")
    ]
    if len(names) != len(net.blocks):
        raise ValueError(f"Keras model has {len(names)} blocks, the PyTorch net {len(net.blocks)}")
    for block, prefix in zip(net.blocks, names):
        conv(block.conv1, f"{prefix}_conv1")
        bn(block.bn1, f"{prefix}_bn1")
        conv(block.conv2, f"{prefix}_conv2")
        bn(block.bn2, f"{prefix}_bn2")
        cb = keras_model.get_layer(f"{prefix}_cbam")
        block.cbam.fc1.weight.data.copy_(arr(cb.mlp_w1).T)
        block.cbam.fc1.bias.data.copy_(arr(cb.mlp_b1))
        block.cbam.fc2.weight.data.copy_(arr(cb.mlp_w2).T)
        block.cbam.fc2.bias.data.copy_(arr(cb.mlp_b2))
        # Keras kernel (k, k, 2 [avg, max], 1) -> (1, 2, k, k)
        block.cbam.spatial.weight.data.copy_(arr(cb.spatial_kernel).permute(3, 2, 0, 1))
        if block.proj is not None:
            conv(block.proj[0], f"{prefix}_proj_conv")
            bn(block.proj[1], f"{prefix}_proj_bn")
    dense = keras_model.get_layer("logits")
    net.fc.weight.data.copy_(arr(dense.kernel).T)
    net.fc.bias.data.copy_(arr(dense.bias))
    return net


def time_torch(
    size: tuple[int, int],
    *,
    batch: int = 8,
    steps: int = 3,
    precision: str = "float32",
    mode: str = "train",
    channels_last: bool = True,
    num_classes: int = 3,
    threads: int | None = None,
    seed: int = 0,
    net: InRAC | None = None,
) -> float:
    """Images/s of the PyTorch inRAC for training steps (SGD-free Adam update) or inference.

    Args:
        size: (rows, cols) of the input images.
        batch: images per step.
        steps: timed steps (after one untimed warm-up step).
        precision: ``"float32"`` or ``"bfloat16"`` (``torch.autocast`` on CPU).
        mode: ``"train"`` (forward, cross-entropy, backward, Adam step) or ``"infer"``
            (``torch.inference_mode``, eval mode).
        channels_last: use the channels-last memory format (PyTorch's CPU advice).
        num_classes: classes of the head.
        threads: ``torch.set_num_threads`` (None: leave PyTorch's default).
        seed: seed of the weights and the random batch.
        net: reuse a built network (None: build one).

    Returns:
        Images per second.
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    net = net if net is not None else InRAC(num_classes)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, *size, generator=gen).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
    if mode == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
    elif mode == "infer":
        net.eval()

        def step() -> None:
            with torch.inference_mode(), autocast:
                torch.softmax(net(x), dim=1)
    else:
        raise ValueError(f"mode must be train or infer, got {mode!r}")
    step()  # warm-up: oneDNN primitive creation, allocator
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)
