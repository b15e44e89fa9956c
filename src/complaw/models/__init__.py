"""Loading causal LMs (alias, GGUF, HF folder, hub) and their architecture adapters."""

from complaw.models.adapters import ADAPTERS, ArchitectureAdapter, adapter_for
from complaw.models.loading import LoadedModel, load_model
from complaw.models.params import count_parameters
from complaw.models.sources import ALIASES, ModelSource, cache_dir, resolve

__all__ = [
    "ADAPTERS", "ALIASES", "ArchitectureAdapter", "LoadedModel", "ModelSource", "adapter_for",
    "cache_dir", "count_parameters", "load_model", "resolve",
]
