"""Data: split format, dataset registry, download, parsers, preprocessing, splits."""
