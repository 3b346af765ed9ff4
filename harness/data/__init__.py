"""Datasets: YAML cards (datasets/*.yaml) + one registered loader per on-disk format (formats/).

Every loader returns a `LoadedDataset`: uint8 image arrays (N, C, H, W) per split, already
resized to the card's image size, with labels. Training and evaluation only ever see that.
`load_dataset` is the one door (with the decoded cache when given a cache_dir);
`load_dataset_shared` is that door for a multi-process job (one decode, one memory-mapped copy);
`download_dataset` fetches, checks and unpacks what a card lists for --download.
"""
from byol_bench.data.card import DatasetCard
from byol_bench.data.catalog import DATASETS, LOADERS, get_card, register_cards
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.load import load_dataset, load_from_card
from byol_bench.data.download import download_dataset
from byol_bench.data.shared import load_dataset_shared
from byol_bench.data.views import ConcatImages

__all__ = ["DATASETS", "LOADERS", "ConcatImages", "DatasetCard", "LoadedDataset", "download_dataset",
           "get_card", "load_dataset", "load_dataset_shared", "load_from_card", "register_cards"]
