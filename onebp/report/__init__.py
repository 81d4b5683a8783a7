"""Results: run directories → one long table → tables and figures (``onebp report ...``)."""
