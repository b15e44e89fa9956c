"""The attention and MLP projections every architecture adapter names (LoRA's default targets).

A leaf module: `config` and `models.adapters` both read it, and neither imports the other."""

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
