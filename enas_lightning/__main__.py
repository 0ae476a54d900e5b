"""``python -m enas_lightning``: see :mod:`enas_lightning.app`."""

from enas_lightning.app import main

if __name__ == "__main__":
    main()
