"""Studies: records of experiments, grid expansion and running."""
