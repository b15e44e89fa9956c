"""A pytest plugin that registers one more architecture family before collection: Qwen3, which
complaw does not ship (Qwen2's layout without q/k/v biases, plus per-head q/k norms). With
`pytest -p tests.unit.extra_family` every shared family test also runs on it (test_registries)."""

from complaw.models import ADAPTERS
from complaw.models.adapters import ArchitectureAdapter

ADAPTERS.add("qwen3", ArchitectureAdapter("qwen3", model_types=("qwen3",)))
