"""The public frame namespaces are lazy: reaching them imports no optional dependency."""

from __future__ import annotations

import json
import subprocess
import sys

import rowtrail as rt


def test_namespaces_are_reachable_without_importing_engines() -> None:
    code = (
        "import json, sys, rowtrail as rt;"
        "names = [rt.pandas.read_csv, rt.polars.scan_csv, rt.spark.read_parquet,"
        " rt.torch.dataset, rt.to_numpy];"
        "print(json.dumps([m for m in ('pandas', 'polars', 'pyspark', 'torch')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_namespace_entry_points() -> None:
    assert {"read_csv", "read_parquet", "track"} <= set(rt.pandas.__all__)
    assert {"read_csv", "read_parquet", "scan_csv", "scan_parquet", "track", "concat"} <= set(
        rt.polars.__all__
    )
    assert {"read_parquet", "session", "track"} <= set(rt.spark.__all__)
    assert rt.torch.dataset.__name__ == "dataset"
    assert rt.to_numpy.__name__ == "to_numpy"
