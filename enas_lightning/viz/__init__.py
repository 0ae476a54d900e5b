"""Pictures of architectures (Graphviz DOT, each space draws its own) and of the controller's
learning (matplotlib)."""

from enas_lightning.viz.controller_plots import plot_curves, plot_op_probs
from enas_lightning.viz.dot import arch_dot, render

__all__ = ["arch_dot", "plot_curves", "plot_op_probs", "render"]
