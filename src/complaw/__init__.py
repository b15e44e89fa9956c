"""complaw: measure, fit and predict compression laws of large language models."""

__version__ = "0.1.0"
