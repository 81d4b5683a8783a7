"""OneBP-Bench: reproducibility benchmark harness for One Backpropagation (Chen & Wang, 2024)."""

__version__ = "0.1.0"
