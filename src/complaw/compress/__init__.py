"""Structured compression methods behind one registry (`METHODS`) and one entry point."""

from complaw.compress import layerdrop, prunenet, slicegpt  # noqa: F401  (register the methods)
from complaw.compress.base import METHODS, CompressionMethod, CompressionResult, compress

__all__ = ["METHODS", "CompressionMethod", "CompressionResult", "compress"]
