"""The two-tower model: the paper's four modules (encoders, samplers, losses, update strategies) and
what composes them into a trainable model."""
