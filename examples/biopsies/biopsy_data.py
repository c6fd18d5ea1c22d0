"""The example's data: scikit-learn's breast cancer biopsies (569 real cases, shipped in its wheel).

Each case becomes a patient with a biopsy measured on some day of the half year before ``end``;
the lab's numbers are recorded up to two days later (late data), and the diagnosis is known a
day after that. Deterministic for a given ``seed`` and ``end``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


def default_end() -> datetime:
    """Today, midnight UTC: the same data all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def biopsies(seed: int = 7, end: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables as a lab system would export them: ``biopsies`` (measurements) and ``diagnoses``."""
    end = end or default_end()
    raw = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(seed)
    n = len(raw.frame)
    measured = pd.Timestamp(end) - pd.to_timedelta(rng.uniform(3, 180, n), unit="D")
    recorded = measured + pd.to_timedelta(rng.uniform(0, 48, n), unit="h")
    frame = raw.data.rename(columns=lambda c: c.replace(" ", "_"))
    frame.insert(0, "patient_id", np.arange(1, n + 1, dtype=np.int64))
    frame["measured_at"] = measured.astype("datetime64[us, UTC]")
    frame["recorded_at"] = recorded.astype("datetime64[us, UTC]")
    diagnoses = pd.DataFrame(
        {
            "patient_id": frame["patient_id"],
            # in scikit-learn's coding 0 is malignant: the label says what it means
            "malignant": (raw.target == 0).astype(np.int64),
            "diagnosed_at": (recorded + timedelta(days=1)).astype("datetime64[us, UTC]"),
        }
    )
    return frame, diagnoses
