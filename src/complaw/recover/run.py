"""`recover`: the one entry point of recovery fine-tuning (the CLI and the study runner call it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from complaw.compress.checkpoint import (
    Manifest,
    is_compressed,
    load_subject,
    read_manifest,
    recovered_manifest,
    save_checkpoint,
)
from complaw.config import Recovery
from complaw.data import DataRef, tokenize
from complaw.errors import RecordError
from complaw.io import check_target
from complaw.models import LoadedModel
from complaw.recover.batches import training_batches, training_rows
from complaw.recover.config import RecoveryError
from complaw.recover.train import TrainStats, merge, resolve_device, train_lora


@dataclass
class RecoveryResult:
    model: PreTrainedModel  # the merged model (eval mode)
    tokenizer: PreTrainedTokenizerBase
    folder: Path  # where the checkpoint was written
    manifest: Manifest  # the manifest written there; its "recovery" entry describes the run
    stats: TrainStats

    @property
    def recovery(self) -> dict[str, Any]:
        return self.manifest.recovery


def check_out(out: str | Path, overwrite: bool = False, source: str | Path | None = None) -> Path:
    """Fail unless `out` can become the new checkpoint folder: not a file, not the input, empty
    (or `overwrite`), in a writable folder."""
    target = check_target(out, overwrite)
    if source is not None and Path(source).exists() and target.resolve() == \
            Path(source).resolve():
        raise RecordError(f"output folder {str(out)!r} is the input checkpoint; choose a new path")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise RecordError(f"cannot write into {str(target.parent)!r} (permission denied); choose "
                          "another --out")
    return target


def load_input(subject: LoadedModel | str | Path) -> tuple[LoadedModel, Manifest | None]:
    """The model to recover and, when it is a complaw checkpoint, its manifest."""
    location = subject.source.location if isinstance(subject, LoadedModel) else str(subject)
    manifest = read_manifest(location) if is_compressed(location) else None
    if manifest is not None and manifest.recovery is not None:
        raise RecoveryError(
            f"{location} is already recovered (D = {manifest.recovery['tokens']:,} tokens); "
            "recover its input checkpoint instead")
    if not isinstance(subject, LoadedModel):
        subject = load_subject(location, "float32", "cpu")
    return subject, manifest


def recovery_entry(config: Recovery, stats: TrainStats, variant: dict[str, str]
                   ) -> dict[str, Any]:
    """The manifest's "recovery" entry of the resolved `config` (see docs/recover.md)."""
    options = config.lora.to_dict()
    entry = {k: v for k, v in options.items() if k not in Recovery.execution}
    entry.update(
        dataset=config.dataset, data_variant=variant, tokens=stats.tokens,
        samples=config.samples, sequences=stats.sequences, steps=stats.steps,
        seq_len=config.seq_len, seed=config.seed,
    )
    entry["stats"] = {
        **stats.as_dict(), **{k: options[k] for k in Recovery.execution},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for key in ("steps", "tokens", "sequences"):
        del entry["stats"][key]
    return entry


def recover(
    subject: LoadedModel | str | Path,
    config: Recovery,
    out: str | Path,
    device: str = "auto",
    data_dir: str | Path | None = None,
    overwrite: bool = False,
) -> RecoveryResult:
    """LoRA-recover `subject` (a loaded model, or anything `complaw evaluate` accepts) on
    `config`'s exact token budget, merge the adapter and write the checkpoint to `out`.

    Bad input (config, data, budget, model, output folder) fails before any training, and
    nothing is written unless the run succeeds. D = 0 writes the input model unchanged. A
    LoadedModel given as `subject` is trained in place: its model becomes the merged model.
    """
    config = config.resolve()
    source = subject.source.location if isinstance(subject, LoadedModel) else subject
    target = check_out(out, overwrite, source)
    torch_device = resolve_device(device)
    split = DataRef.parse(config.dataset).load(data_dir)
    loaded, base = load_input(subject)
    rows = training_rows(tokenize(split.text, loaded.tokenizer), config.tokens, config.seq_len,
                         config.dataset)
    # a BOS in front of each row where the family needs it (never a target: labels shift)
    rows = [loaded.adapter.with_bos(row[None], loaded.model.config)[0] for row in rows]
    if rows:
        pad_id = loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id or 0
        batches = training_batches(rows, config.lora.batch_size, pad_id)
        peft_model, stats = train_lora(loaded.model, loaded.adapter, batches, config,
                                       torch_device)
        model = merge(peft_model).cpu()
    else:
        model, stats = loaded.model, TrainStats()
    entry = recovery_entry(config, stats, split.variant)
    manifest = recovered_manifest(base, entry, loaded.name)
    save_checkpoint(model, target, manifest, loaded.tokenizer, overwrite)
    return RecoveryResult(model, loaded.tokenizer, target, manifest, stats)
