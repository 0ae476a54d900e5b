"""The macro (whole network) space: arch.py (record, the authors' codec), settings.py (its own
config settings), controller.py, ops.py, supernet.py, network.py, picture.py and space.py (the
:class:`MacroSpace` registered as ``SPACES["macro"]``). Nothing is imported here, so the record
loads without torch."""
