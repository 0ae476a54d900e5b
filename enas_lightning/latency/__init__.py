"""Measured latency: a per-op latency table, built once per device, space and input size.

``task=latency_table`` times every op the space can place in a standalone network (each
:class:`~enas_lightning.spaces.OpPlacement`: op, channels, input size, stride) on
``latency.device`` and caches the table on disk (:mod:`enas_lightning.latency.table`). An
architecture's latency is then predicted without running it: the sum of its ops' entries plus a
fixed part (stem, cell inputs, merges, head) measured once. ``reward.cost=latency`` and
``derive.max_latency_ms`` read the table; docs/cost_aware.md.
"""

from enas_lightning.latency.table import (
    LatencyTable,
    build_table,
    check_prediction,
    load_table,
    table_path,
)

__all__ = ["LatencyTable", "build_table", "check_prediction", "load_table", "table_path"]
