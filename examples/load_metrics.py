"""Load the curated and metrics datasets of a model-metrics root into pandas.

Needs only Apache Avro's Python package and pandas (Debian: python3-avro python3-pandas).
Reads the committed partitions alone: a stage=/dt= folder counts once its _SUCCESS manifest
exists, and only the files that manifest lists are read (hidden _staging/ is never looked at).

    python3 examples/load_metrics.py ROOT    # prints per model version and stage: days, MSE, MAE
"""
import json
import sys
from pathlib import Path

import pandas as pd
from avro.datafile import DataFileReader
from avro.io import DatumReader

DAY_MICROS = 86_400_000_000


def load_dataset(folder):
    """Every record of every committed stage=…/dt=… partition, with stage and dt columns."""
    frames = []
    for success in sorted(Path(folder).glob("stage=*/dt=*/_SUCCESS")):
        manifest = json.loads(success.read_text())
        records = []
        for output in manifest["outputs"]:
            with open(Path(folder) / output["key"], "rb") as f:
                records.extend(DataFileReader(f, DatumReader()))
        frame = pd.DataFrame.from_records(records)
        frame["stage"], frame["dt"] = manifest["stage"], manifest["date"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def day_rows(metrics):
    """The ordinary daily records: not label-age (maturity) records, not hourly windows."""
    age = metrics["label_age_s"] if "label_age_s" in metrics else pd.Series(None, index=metrics.index)
    span = metrics["window_end_ts"] - metrics["window_start_ts"]
    if not pd.api.types.is_integer_dtype(span):  # timestamp-micros read as datetimes
        span = span.dt.total_seconds() * 1_000_000
    return metrics[age.isna() & (span == DAY_MICROS)]


def rollup(metrics, by=("model_name", "model_version", "stage")):
    """MSE and MAE of whole model versions over all days, exactly from the sufficient statistics."""
    whole = day_rows(metrics)
    whole = whole[whole["slice_keys"].map(len) == 0].copy()
    for name in ("sum_sq_error", "sum_abs_error"):  # v2 splits each sum into sum_X + sum_X_lo
        whole[name] = whole[name] + (whole[f"{name}_lo"] if f"{name}_lo" in whole else 0.0)
    totals = whole.groupby(list(by)).agg(
        days=("dt", "nunique"), count=("count", "sum"), labeled=("labeled_count", "sum"),
        sum_sq_error=("sum_sq_error", "sum"), sum_abs_error=("sum_abs_error", "sum"))
    totals["mse"] = totals["sum_sq_error"] / totals["labeled"]
    totals["mae"] = totals["sum_abs_error"] / totals["labeled"]
    return totals.drop(columns=["sum_sq_error", "sum_abs_error"]).reset_index()


if __name__ == "__main__":
    root = Path(sys.argv[1])
    curated = load_dataset(root / "curated")
    metrics = load_dataset(root / "metrics")
    print(f"curated: {len(curated)} rows; metrics: {len(metrics)} records")
    print(rollup(metrics).to_string(index=False))
