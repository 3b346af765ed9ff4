"""Datasets: YAML cards (datasets/*.yaml) + one registered loader per on-disk format.

Every loader returns a `LoadedDataset`: uint8 image arrays (N, C, H, W) per split, already
resized to the card's image size, with labels. Training and evaluation only ever see that.
"""
from harness.data.cards import DATASETS, LOADERS, DatasetCard, LoadedDataset, load_dataset

__all__ = ["DATASETS", "LOADERS", "DatasetCard", "LoadedDataset", "load_dataset"]
