"""One experiment on one model: its typed config (`config`), its record (`records`) and the
single-model pipeline (`pipeline`: load a subject, run one stage on it, write its record).

The CLI and the study runner both call this package; it knows nothing of grids, scheduling or
caching (complaw.study). `config` and `records` import no torch; `pipeline` does.
"""
