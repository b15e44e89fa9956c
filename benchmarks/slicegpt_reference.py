"""Run the reference SliceGPT (microsoft/TransformerCompression) on exactly our calibration and
test blocks, to compare with `benchmarks/compression.py --slicegpt-bases`.

The reference needs its own environment (it pins transformers 4.41), so this runs in two steps:

    # 1. in complaw's venv: write the token blocks (the same ones compression.py uses)
    COMPLAW_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/slicegpt_reference.py \
        blocks --calibration ptb:train --calib-samples 32 --calib-seq-len 1024 \
        --max-tokens 16384 --out /tmp/blocks.pt
    # 2. in a venv with the reference's requirements (torch, transformers==4.41.0, accelerate,
    #    ml-collections, "numpy<2", datasets==2.18.0), its source fetched outside this tree:
    /tmp/refvenv/bin/python benchmarks/slicegpt_reference.py reference --blocks /tmp/blocks.pt \
        --source /path/to/TransformerCompression/src \
        --model-dir ~/.cache/complaw/models/SmolLM2-... --ratios 0.1,0.3,0.5,0.7

Step 2 slices with the reference's defaults (LayerNorm fusion, `ConstSlicingScheduler` with
(1 − r)·d rounded down to a multiple of 8, `final_orientation` random, unsliced head) and prints
perplexity (its `evaluate_ppl`), parameters and slicing time per ratio. `--model-dir` is a HF
folder written by transformers 5 (e.g. complaw's dequantised GGUF cache): its config is copied
with `rope_theta` moved back to the top level, where transformers 4.41 reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def write_blocks(args: argparse.Namespace) -> None:
    # complaw is only in complaw's venv: imported here, not at the top (step 2 runs without it)
    from compression import token_blocks

    from complaw.models import load_model

    test, calibration = token_blocks(args, load_model(args.model).tokenizer)
    torch.save({"test": test, "calibration": calibration}, args.out)
    print(f"wrote {args.out}: calibration {tuple(calibration.shape)}, test {tuple(test.shape)}")


def legacy_folder(model_dir: Path, into: Path) -> Path:
    """`model_dir` as transformers 4.41 reads it: weights linked, rope_theta at the top level."""
    config = json.loads((model_dir / "config.json").read_text())
    rope = config.pop("rope_parameters", None) or {}
    config.setdefault("rope_theta", rope.get("rope_theta", 10000.0))
    config.setdefault("torch_dtype", config.pop("dtype", "float32"))
    (into / "config.json").write_text(json.dumps(config))
    for file in model_dir.iterdir():
        if file.name != "config.json":
            (into / file.name).symlink_to(file.resolve())
    return into


def run_reference(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.source))
    from slicegpt import gpu_utils, layernorm_fusion, rotate
    from slicegpt.adapters.llama_adapter import LlamaModelAdapter
    from slicegpt.slicing_scheduler import ConstSlicingScheduler
    from transformers import LlamaForCausalLM

    blocks = torch.load(args.blocks)

    def loader(tokens: torch.Tensor, batch_size: int) -> list[dict[str, torch.Tensor]]:
        return [{"input_ids": b, "attention_mask": torch.ones_like(b)}
                for b in tokens.split(batch_size)]

    with tempfile.TemporaryDirectory() as tmp:
        folder = legacy_folder(args.model_dir, Path(tmp))
        for ratio in args.ratios:
            model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
            adapter = LlamaModelAdapter(model)
            adapter.use_cache = False
            layernorm_fusion.replace_layers(adapter)
            layernorm_fusion.fuse_modules(adapter)
            width = int((1 - ratio) * adapter.hidden_size)
            width -= width % 8
            start = time.perf_counter()
            rotate.rotate_and_slice(adapter, loader(blocks["calibration"], 16),
                                    ConstSlicingScheduler(width), final_orientation="random")
            seconds = time.perf_counter() - start
            ppl = gpu_utils.evaluate_ppl(model, model.config.pad_token_id,
                                         loader(blocks["test"], 4))
            params = sum(p.numel() for p in model.parameters())
            print(f"reference r={ratio:g} d'={width}: ppl {ppl:.2f}, {params:,} parameters, "
                  f"sliced in {seconds:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    blocks = steps.add_parser("blocks", help="write the token blocks (complaw's venv)")
    blocks.add_argument("--model", default="smollm2-135m")
    blocks.add_argument("--calibration", default="ptb:train")
    blocks.add_argument("--calib-samples", type=int, default=32)
    blocks.add_argument("--calib-seq-len", type=int, default=1024)
    blocks.add_argument("--max-tokens", type=int, default=16384)
    blocks.add_argument("--seq-len", type=int, default=1024)
    blocks.add_argument("--data-dir", type=Path, default=None)
    blocks.add_argument("--out", type=Path, required=True)
    reference = steps.add_parser("reference", help="slice with the reference (its own venv)")
    reference.add_argument("--blocks", type=Path, required=True)
    reference.add_argument("--source", type=Path, required=True,
                           help="the reference's src/ folder (it holds the slicegpt package)")
    reference.add_argument("--model-dir", type=Path, required=True)
    reference.add_argument("--ratios", type=lambda s: [float(r) for r in s.split(",")],
                           default=[0.1, 0.3, 0.5, 0.7])
    args = parser.parse_args()
    (write_blocks if args.step == "blocks" else run_reference)(args)


if __name__ == "__main__":
    main()
