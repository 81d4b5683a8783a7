"""Running studies on machines: GPU slots, run status, cost estimates, the benchmark suite, and the
CPU-vs-CUDA agreement check."""
