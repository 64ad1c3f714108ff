"""Row lineage through pandas, polars and Spark frames.

Traced frames carry hidden per-row lineage *slots* (packed source row ids, or group codes /
group keys after a group-by) that the user never sees in ``columns`` / ``schema``:

- pandas (:mod:`._pandas`): a ``DataFrame`` subclass keeping the slots beside the data;
- polars (:mod:`._polars`): proxies whose wrapped frame holds hidden ``__rt_<n>`` columns;
- Spark (:mod:`._spark`): a proxy whose plan carries hidden id / id-list columns.

Public entry points live at the top level: ``rt.pandas``, ``rt.polars``, ``rt.spark``,
``rt.to_numpy`` and ``rt.torch``.
"""

from __future__ import annotations

__all__: list[str] = []
