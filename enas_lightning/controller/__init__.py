"""The LSTM controller that samples architectures, one decision at a time."""

from enas_lightning.controller.base import Controller, Sample
from enas_lightning.controller.macro import MacroController
from enas_lightning.controller.micro import MicroController

__all__ = ["Controller", "MacroController", "MicroController", "Sample"]
