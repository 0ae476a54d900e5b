"""Pictures of architectures (Graphviz DOT) and of the controller's learning (matplotlib)."""

from enas_lightning.viz.controller_plots import plot_curves, plot_op_probs
from enas_lightning.viz.dot import arch_dot, macro_arch_dot, micro_arch_dot, micro_cell_dot, render

__all__ = [
    "arch_dot",
    "macro_arch_dot",
    "micro_arch_dot",
    "micro_cell_dot",
    "plot_curves",
    "plot_op_probs",
    "render",
]
