"""Evaluation of (compressed) models: intrinsic loss (`intrinsic`), extrinsic accuracy
(`extrinsic`, lm-eval), speed (`speed`). Import from the submodules: this package imports none
of them, so that `complaw.evaluate.tasks` (which `config` reads) loads no torch and no config."""
