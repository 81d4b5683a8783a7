"""The shipped baselines, one module per method family. Installed as the package ``onebp_baselines``;
``onebp.methods.registry.discover`` imports each module by path (this file registers nothing)."""
