"""Data: the dataset catalog, download, parsers, preprocessing, splitting, the split format."""
