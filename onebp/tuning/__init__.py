"""Tuning: trials drawn up front with one budget per method, and `onebp tune plan|summarize`."""
