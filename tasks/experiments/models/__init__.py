"""Every model of the paper's experiments, built from standard PyTorch modules."""
