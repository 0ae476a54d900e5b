"""ENAS (Pham et al., 2018) as a PyTorch Lightning + Hydra framework."""

__version__ = "0.1.0"
