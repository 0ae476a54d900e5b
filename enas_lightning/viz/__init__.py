"""Pictures of architectures (each space describes its own as a :class:`Picture`, written as DOT
and rendered by Graphviz, or laid out by grandalf and drawn by matplotlib) and of the
controller's learning (matplotlib)."""

from enas_lightning.viz.controller_plots import plot_curves, plot_op_probs
from enas_lightning.viz.dot import arch_dot, render
from enas_lightning.viz.graph import Picture

__all__ = ["Picture", "arch_dot", "plot_curves", "plot_op_probs", "render"]
