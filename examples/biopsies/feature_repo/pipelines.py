"""The biopsies example's pipeline: Kosmos calls it with the table its parameter names."""

import numpy as np
import pandas as pd


def biopsy_shape(biopsies: pd.DataFrame) -> pd.DataFrame:
    """Shape features of each biopsy, known when its measurements were recorded."""
    out = biopsies[["patient_id", "measured_at", "recorded_at"]].copy()
    out["roundness"] = 4 * np.pi * biopsies["mean_area"] / biopsies["mean_perimeter"] ** 2
    out["radius_spread"] = biopsies["worst_radius"] / biopsies["mean_radius"]
    out["texture_spread"] = biopsies["worst_texture"] / biopsies["mean_texture"]
    concavity = biopsies["mean_concavity"].where(biopsies["mean_concavity"] > 0)
    out["concave_share"] = (biopsies["mean_concave_points"] / concavity).fillna(0.0)
    return out
