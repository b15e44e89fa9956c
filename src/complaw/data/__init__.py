"""Named datasets read from a data directory (or the hub), tokenised into blocks."""

from complaw.data.blocks import DataRef, load_blocks, to_blocks, tokenize
from complaw.data.registry import DATASETS, DatasetSpec, data_dir

__all__ = ["DATASETS", "DataRef", "DatasetSpec", "data_dir", "load_blocks", "to_blocks",
           "tokenize"]
