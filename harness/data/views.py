"""Views over image arrays that read rows on demand instead of copying whole arrays.

At real sizes the decoded cache is memory-mapped read-only (byol_bench.data.shared): STL10's train +
unlabeled is 2.9 GB, ChestX-ray14 at 224 px 5.6 GB. Anything that would build a full copy per
run (np.concatenate of two splits, a channel conversion of a whole split) goes through a view
here: `len`, `.shape`, `.dtype` and `.ndim` as the full array, and indexing (an int, a slice,
an integer array or a boolean mask along the first axis) reads only the rows asked for and
returns a new, writable numpy array, so torch.from_numpy works on it.
"""
from __future__ import annotations

import numpy as np
import torch

from byol_bench.data.images import array_to_channels
from byol_bench.errors import UserError


def as_tensor(batch) -> torch.Tensor:
    """A torch tensor of rows read from an image array. torch cannot wrap a read-only array (a
    memory-mapped cache slice): those rows are copied, so pass a batch, never a whole split."""
    x = np.asarray(batch)
    if not x.flags.writeable:
        x = np.array(x)
    return torch.from_numpy(x)


def _first_axis_index(idx, n: int) -> np.ndarray | slice | int:
    """Normalise an index along the first axis: an int (bounds-checked, non-negative), a slice,
    or a 1-D int64 array of non-negative positions (IndexError when out of range)."""
    if isinstance(idx, slice):
        return idx
    if isinstance(idx, tuple):
        raise IndexError("image views are indexed along the first axis only")
    arr = np.asarray(idx)
    if arr.ndim == 0:
        if not np.issubdtype(arr.dtype, np.integer):
            raise IndexError(f"only integers, slices, integer arrays and boolean masks index images, got {idx!r}")
        i = int(arr)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} images")
        return i + n if i < 0 else i
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean mask of shape {arr.shape} for {n} images")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise IndexError(f"only integers, slices, integer arrays and boolean masks index images, got {idx!r}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(f"index out of range for {n} images")
    return np.where(arr < 0, arr + n, arr)


class ConcatImages:
    """Several image arrays (N_k, C, H, W) seen as one along the first axis, without copying them.

    `LoadedDataset.pretrain_images()` returns this for train + unlabeled: np.concatenate would
    copy both splits (2.9 GB for STL10) in every run. Rows keep the order of the parts.
    np.asarray(view) does build the concatenation: for small data and tests only.
    """

    def __init__(self, parts):
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("ConcatImages needs at least one array")
        first = self.parts[0]
        for p in self.parts[1:]:
            if p.shape[1:] != first.shape[1:] or p.dtype != first.dtype:
                raise ValueError(f"cannot join images {p.dtype} {p.shape[1:]} to {first.dtype} {first.shape[1:]}")
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def ndim(self) -> int:
        return self.parts[0].ndim

    def __repr__(self) -> str:
        return f"ConcatImages({' + '.join(str(len(p)) for p in self.parts)} images of {self.shape[1:]} {self.dtype})"

    def __getitem__(self, idx) -> np.ndarray:
        n = len(self)
        idx = _first_axis_index(idx, n)
        if isinstance(idx, int):
            k = int(np.searchsorted(self.offsets, idx, side="right")) - 1
            return np.array(self.parts[k][idx - self.offsets[k]])
        if isinstance(idx, slice):
            start, stop, step = idx.indices(n)
            if step != 1:
                return self[np.arange(start, stop, step)]
            pieces = [p[max(start - lo, 0):max(min(stop, hi) - lo, 0)]
                      for p, lo, hi in zip(self.parts, self.offsets[:-1], self.offsets[1:])]
            return np.concatenate([x for x in pieces if len(x)] or [self.parts[0][:0]])
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        part_of = np.searchsorted(self.offsets, idx, side="right") - 1
        for k, part in enumerate(self.parts):
            rows = np.flatnonzero(part_of == k)
            if len(rows):
                out[rows] = part[idx[rows] - self.offsets[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        full = np.concatenate(self.parts)
        return full if dtype is None else full.astype(dtype)


class ChannelsView:
    """Images (N, C, H, W) read as `channels` channels, converted per batch on indexing (a
    transfer target in the source's channel count) instead of converting the whole split."""

    def __init__(self, images, channels: int):
        have = images.shape[1]
        if have == channels or (have != 1 and channels != 1):
            raise UserError(f"ChannelsView converts between 1 and 3 channels, not {have} to {channels}")
        self.images, self.channels = images, channels

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), self.channels, *self.images.shape[2:])

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    @property
    def ndim(self) -> int:
        return 4

    def __repr__(self) -> str:
        return f"ChannelsView({self.images!r} as {self.channels} channels)"

    def __getitem__(self, idx) -> np.ndarray:
        idx = _first_axis_index(idx, len(self))
        if isinstance(idx, int):
            return array_to_channels(np.asarray(self.images[idx])[None], self.channels)[0]
        return array_to_channels(np.asarray(self.images[idx]), self.channels)  # a new array

    def __array__(self, dtype=None, copy=None):
        full = array_to_channels(np.asarray(self.images), self.channels)
        return full if dtype is None else full.astype(dtype)


def with_channels(images, channels: int):
    """`images` itself when it has `channels` channels, else a ChannelsView (no full copy)."""
    return images if images.shape[1] == channels else ChannelsView(images, channels)
