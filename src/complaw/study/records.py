"""Compatibility: the record helpers moved to complaw.experiment.records; `law_table` is still
imported from here by complaw.cli.laws (switch it over, then delete this module)."""

from complaw.experiment.records import law_table

__all__ = ["law_table"]
