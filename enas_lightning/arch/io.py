"""Reading and writing architectures: JSON files and the authors' integer strings."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from enas_lightning.errors import ArchError
from enas_lightning.files import write_text
from enas_lightning.spaces import SPACES, ArchRecord


def parse_ints(text: str) -> list[int]:
    """``"0 1 2, 3"`` or ``"[0,1,2,3]"`` -> ``[0, 1, 2, 3]``."""
    tokens = [t for t in re.split(r"[\s,\[\]]+", text.strip()) if t]
    out: list[int] = []
    for t in tokens:
        # convert token by token so the error names the token int() rejected; guessing it with
        # str.isdigit() missed tokens such as "²" (isdigit() but not int()) and raised StopIteration
        try:
            out.append(int(t))
        except ValueError:
            raise ArchError(
                f"arch={text[:60]!r}: {t!r} is not an integer; give a JSON file path or the "
                "authors' integer string"
            ) from None
    return out


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false where the OS rejects the name (a 300-integer arc is too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def arch_from_dict(d: dict[str, Any], space: str) -> ArchRecord:
    found = d.get("space", space)
    if found != space:
        raise ArchError(
            f"the architecture is from the {found} search space but search_space={space}"
        )
    return SPACES[space].from_dict(d)


def load_arch(
    value: str | os.PathLike,
    space: str,
    ops: tuple[str, ...],
    size: int | None = None,
) -> ArchRecord:
    """Load an architecture for ``space`` from a JSON file path or an integer string.

    ``size`` is the size the space checks when given (:meth:`Space.arch_size`: the node count
    per cell of a cell space, say).
    A ``.json`` from a search run (``best_arch.json``) or from an export (``arch.json``) works.
    """
    if space not in SPACES:
        raise ArchError(f"search_space={space!r}: allowed {', '.join(SPACES)}")
    sp = SPACES[space]
    text = str(value)
    path = Path(text)
    if text.endswith(".json") or _is_file(path):
        if not _is_file(path):
            raise ArchError(f"arch={text!r}: no such file")
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArchError(f"arch={text!r}: not a readable JSON file ({e})") from None
        if not isinstance(d, dict):
            raise ArchError(f"arch={text!r}: expected a JSON object")
        d = d.get("arch", d)
        if not isinstance(d, dict):
            # e.g. {"arch": "0 1 ..."}: without this check d.get() raised AttributeError
            raise ArchError(f"arch={text!r}: 'arch' must be a JSON object, got {type(d).__name__}")
        arch = arch_from_dict(d, space)
    else:
        arch = sp.decode(parse_ints(text), ops, size)
    sp.check_arch(arch, ops, size)
    return arch


def save_arch(
    arch: ArchRecord, path: str | os.PathLike, ops: tuple[str, ...], **extra: Any
) -> None:
    """Write ``arch`` as readable JSON (plus the integer string for ``ops``) and ``extra`` keys."""
    d = arch.to_dict(ops)
    d.update(extra)
    write_text(path, json.dumps(d, indent=2) + "\n")  # whole or not at all
