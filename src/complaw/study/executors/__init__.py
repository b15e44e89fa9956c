"""Executors, one registry entry each (`EXECUTORS`): "local" (one stage execution at a time in
this process) and "ray" (stage executions as Ray tasks on a cluster). Adding one is a module
here that registers its class with `@EXECUTORS.register(name)`, imported below."""

from complaw.study.executors import local, ray
from complaw.study.executors.base import EXECUTORS, Executor, OnOutcome

__all__ = ["EXECUTORS", "Executor", "OnOutcome", "local", "ray"]
