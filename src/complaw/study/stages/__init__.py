"""Study stages: the kinds of work the runner executes, one registry entry each.

A stage fills one *slot* of an experiment (`compression`, `recovery` or `eval`) and declares:
what it reads (`inputs`: the stages whose output it can take, "model" for the base model), what
it produces (a `checkpoint` folder, cached by content id and shared by every later stage, or a
`record`), its Ray resources, how to resolve its options (defaults filled in, for ids) and its
run function. Adding a stage is one module in this package (or a plugin module named in the
spec) that calls `register(Stage(...))`. The registry and the types live in
`complaw.study.stages.base`, which the stage modules import; this package re-exports them after
importing the built-in stages, so whoever reads `STAGES` from here finds them registered.

The built-in stages: `compress`, `recover`, `intrinsic`, `extrinsic` and `speed`, one module
each. A spec that asks for a stage that is not registered fails before anything runs.
"""

# The built-in stages (each module registers its stage).
from complaw.study.stages import compress, extrinsic, intrinsic, recover, speed  # noqa: F401
from complaw.study.stages.base import STAGES, Resources, Stage, StageContext, register, require

__all__ = ["STAGES", "Resources", "Stage", "StageContext", "register", "require"]
