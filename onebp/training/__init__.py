"""Training one run: the trainer, model selection, checkpoints, the curve log, the run record,
timing, evaluation, and the `onebp train|bench|methods` commands."""
