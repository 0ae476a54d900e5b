"""Search spaces: one sub-package per space (ops, supernet, standalone network)."""
