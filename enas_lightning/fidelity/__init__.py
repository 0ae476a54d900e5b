"""``task=fidelity``: rank correlations, bootstrap intervals and the scatter plot."""
