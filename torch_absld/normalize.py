"""Per-channel input normalisation as a layer, so that attacks work in [0, 1] pixel space."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Normalize"]


def _as_channel_vector(value: Sequence[float] | Tensor, name: str) -> Tensor:
    if isinstance(value, str) or not (isinstance(value, (Tensor, Sequence)) or hasattr(value, "__array__")):
        raise TypeError(f"Expected `{name}` to be a sequence of floats or a tensor, but got {type(value).__name__}.")
    if isinstance(value, Sequence):
        bad = [type(item).__name__ for item in value if isinstance(item, bool) or not isinstance(item, numbers.Real)]
        if bad:
            raise TypeError(f"Expected `{name}` to hold real numbers, but got an item of type {bad[0]}.")
    tensor = torch.as_tensor(value).detach()
    vector = tensor.to(torch.float32).flatten()
    if tensor.dim() > 1 and vector.numel() != max(tensor.shape):
        raise ValueError(f"Expected `{name}` of shape (C,), but got {tuple(tensor.shape)}.")
    if vector.numel() == 0:
        raise ValueError(f"Expected `{name}` to hold one value per channel, but got an empty sequence.")
    if not bool(torch.isfinite(vector).all()):
        raise ValueError(f"Expected `{name}` to be finite, but got {vector.tolist()}.")
    return vector


class Normalize(nn.Module):
    r"""Subtract a per-channel mean and divide by a per-channel std: $(x - \mu_c) / \sigma_c$.

    The first layer of a model trained on normalised images (``nn.Sequential(Normalize(mean,
    std), backbone)``), so that attacks work in $[0, 1]$ pixel space. ``mean`` and ``std``
    (positive) are buffers, in the ``state_dict`` unless ``persistent=False``.

    Shape:
        - Input: $(N, C, *)$ with $C$ = ``len(mean)``; Output: the same shape and dtype

    Example:
        >>> norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> norm(torch.full((1, 3, 2, 2), 0.75))[0, :, 0, 0]
        tensor([1., 1., 1.])
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, *, persistent: bool = True
    ) -> None:
        super().__init__()
        mean_vector, std_vector = _as_channel_vector(mean, "mean"), _as_channel_vector(std, "std")
        if (count := mean_vector.numel()) != std_vector.numel():
            got = f"{count} and {std_vector.numel()} values"
            raise ValueError(f"Expected `mean` and `std` with one value per channel each, but got {got}.")
        if not bool((std_vector > 0).all()):
            raise ValueError(f"Expected `std` > 0 in every channel, but got {std_vector.tolist()}.")
        self.num_channels = int(count)
        self.register_buffer("mean", mean_vector, persistent=persistent)
        self.register_buffer("std", std_vector, persistent=persistent)

    def forward(self, input: Tensor) -> Tensor:
        """Normalise ``input`` channel-wise (channels on dimension 1)."""
        if not isinstance(input, Tensor) or not input.is_floating_point():
            got = input.dtype if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor, but got {got}.")
        if input.dim() < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"Expected `input` of shape (N, {self.num_channels}, ...), but got {tuple(input.shape)}. "
                "Channels go on dimension 1 (NCHW; channels_last is a memory format, not a shape)."
            )
        view = (1, self.num_channels) + (1,) * (input.dim() - 2)
        return (input - self.mean.to(input.dtype).view(view)) / self.std.to(input.dtype).view(view)

    def extra_repr(self) -> str:
        mean, std = (", ".join(f"{v:.4g}" for v in vector.tolist()) for vector in (self.mean, self.std))
        return f"mean=({mean}), std=({std})"
