"""The ComplawError family: every message names the bad value and how to fix it."""

class ComplawError(Exception):
    """Base of every error complaw raises on bad input; the CLI prints it as one line."""


class ConfigError(ComplawError):
    """A setting, flag or spec value is invalid."""


class ModelError(ComplawError):
    """A model cannot be found, loaded or handled."""


class DataError(ComplawError):
    """A dataset cannot be found, read or tokenised as asked."""


class CompressionError(ComplawError):
    """A compression method cannot be applied as asked."""


class RecordError(ComplawError):
    """A record or output location cannot be written or read."""


class LawError(ComplawError):
    """A law cannot be fitted, found or evaluated as asked."""

