"""Training: soft- and hard-target examples, family-balanced order, the packed losses and the training loop."""
