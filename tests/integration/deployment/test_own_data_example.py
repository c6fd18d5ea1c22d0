"""The own-data example (``examples/biopsies``) end to end, through the notebook SDK only.

Tables -> feature repository -> pipelines -> point-in-time training set -> dataset version ->
tracked run -> registry -> deployment with online features -> predict. Nothing is written into
the platform's folder by hand: every step is a call a data scientist makes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import kosmos
from kosmos.platform.settings import get_settings

WALKTHROUGH = Path(__file__).resolve().parents[3] / "examples" / "biopsies" / "walkthrough.py"


def _walkthrough():
    spec = importlib.util.spec_from_file_location("biopsies_walkthrough", WALKTHROUGH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.walkthrough


def test_the_biopsies_example_runs_end_to_end_through_the_sdk(deploy_env, monkeypatch) -> None:
    settings = deploy_env["settings"]
    monkeypatch.setenv("KOSMOS_MLFLOW__TRACKING_URI", settings.mlflow_tracking_uri)  # this platform's
    get_settings.cache_clear()
    kosmos.login(url=deploy_env["url"], token=deploy_env["admin"])

    out = _walkthrough()("clinic", "risk")

    assert out["applied"]["version"] == 1 and out["applied"]["feature_services"] == ["diagnosis_v1"]
    assert out["pipelines"]["status"] == "succeeded" and out["pipelines"]["rows"] == {"biopsy_shape": 569}
    assert out["dataset"]["feature_service"] == "diagnosis_v1" and out["dataset"]["feature_version"] == 1
    assert out["roc_auc"] > 0.95  # a logistic regression on these biopsies: about 0.99 published
    assert out["deployment"]["status"] == "healthy", out["deployment"]

    # the deployment looked the features up online by patient id and gave class-labelled columns
    predicted, patients = out["predicted"], out["patients"]["patient_id"].tolist()
    assert list(predicted.columns) == ["0", "1"] and len(predicted) == len(patients)
    rows = out["test"].set_index("patient_id").loc[patients, out["columns"]]
    np.testing.assert_allclose(predicted.to_numpy(), out["model"].predict_proba(rows), rtol=1e-6)

    lineage = kosmos.models.lineage("diagnosis", out["model_version"])
    assert lineage["dataset"]["uri"] == out["dataset"]["uri"]
    assert lineage["features"]["version"] == 1
    views = {v["name"] for v in lineage["features"]["feature_views"]}
    assert views == {"biopsy_measurements", "biopsy_shape"}
