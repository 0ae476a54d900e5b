"""What ``python -m enas_lightning task=...`` runs: search, final, pipeline, inspect."""
