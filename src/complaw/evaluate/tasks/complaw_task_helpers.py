"""Functions complaw's local task YAMLs name with `!function` (lm-eval loads this file from the
folder the YAMLs are written to). complaw fills in the data directory when writing it; the
hellaswag and winogrande functions are lm-eval's own, re-exported so that the YAMLs beside this
file can reach them."""

from pathlib import Path

from lm_eval.tasks.hellaswag.utils import process_docs as hellaswag_process_docs
from lm_eval.tasks.winogrande.preprocess_winogrande import (
    doc_to_choice as winogrande_doc_to_choice,
)
from lm_eval.tasks.winogrande.preprocess_winogrande import (
    doc_to_target as winogrande_doc_to_target,
)
from lm_eval.tasks.winogrande.preprocess_winogrande import (
    doc_to_text as winogrande_doc_to_text,
)

DATA_DIR = Path("${DATA_DIR}")
PIQA_LABELS = DATA_DIR / "piqa" / "valid-labels.lst"

__all__ = ["hellaswag_process_docs", "piqa_with_labels", "winogrande_doc_to_choice",
           "winogrande_doc_to_target", "winogrande_doc_to_text"]


def piqa_with_labels(dataset):
    """PIQA's validation rows with the `label` column of the aligned labels file."""
    labels = [int(line) for line in PIQA_LABELS.read_text().split()]
    if len(labels) != len(dataset):
        raise ValueError(f"{PIQA_LABELS} has {len(labels)} labels for {len(dataset)} rows")
    return dataset.add_column("label", labels)
