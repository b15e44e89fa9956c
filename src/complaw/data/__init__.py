"""Named datasets read from a data directory (or the hub), tokenised into blocks."""

from complaw.data.blocks import DataRef, load_blocks, to_blocks, tokenize
from complaw.data.registry import DATASETS, DatasetSpec, SplitText, data_dir

__all__ = ["DATASETS", "DataRef", "DatasetSpec", "SplitText", "data_dir", "load_blocks",
           "to_blocks", "tokenize"]
