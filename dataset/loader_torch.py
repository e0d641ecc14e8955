# SPDX-License-Identifier: GPL-3.0-or-later
"""PyTorch adapters of the loader (torch is imported only when used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def need_torch() -> None:
    """Raise ImportError with the fix when PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError("as_torch() needs PyTorch, which is not installed: pip install torch "
                          "(the loader itself works without it)") from exc


class TorchFrames:
    """Map-style dataset for ``torch.utils.data.DataLoader`` (picklable: works with worker
    processes). Made by :func:`as_torch`."""

    def __init__(self, source, keys: tuple[str, ...] | None = None, transform=None):
        seqs = [source] if hasattr(source, "frames_meta") else list(source)  # a Sequence or a Dataset
        self.index = [(s, i) for s in seqs for i in range(len(s))]
        self.keys = keys
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import torch

        seq, j = self.index[i]
        fr = seq[j]
        out: dict[str, torch.Tensor] = {"index": torch.tensor(i)}
        for k in self.keys or seq.keys:
            a = np.ascontiguousarray(getattr(fr, k))
            if k == "segmentation":
                a = a.astype(np.int64)
            elif a.dtype == np.uint16:
                a = a.astype(np.int32)
            out[k] = torch.from_numpy(a)
        return self.transform(out) if self.transform is not None else out
