"""The micro (cell) space: arch.py (record, the authors' codec), settings.py (its own config
settings), controller.py, ops.py, supernet.py, network.py, picture.py and space.py (the
:class:`MicroSpace` registered as ``SPACES["micro"]``). Nothing is imported here, so the record
loads without torch."""
