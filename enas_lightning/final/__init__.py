"""Final training: a found architecture trained from scratch, evaluated and exported."""

from enas_lightning.final.export import export_network
from enas_lightning.final.module import FinalModule
from enas_lightning.final.train import build_final_network, train_final

__all__ = ["FinalModule", "build_final_network", "export_network", "train_final"]
