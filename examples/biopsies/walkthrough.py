"""Your own data, end to end, through the SDK only: tables -> features -> training set -> run ->
registry -> deployment with online features -> predict.

    python examples/biopsies/walkthrough.py            # after `make run` and `kosmos login`
    python examples/biopsies/walkthrough.py --project clinic --team pathology

Every step is a call a notebook makes; nothing is written into the server's folder by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kosmos

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from biopsy_data import biopsies  # noqa: E402 - the example's own module, next to this file

SERVICE = "diagnosis_v1"


def walkthrough(project: str, team: str, *, deployment: str = "diagnosis-api") -> dict[str, Any]:
    """Run the example in ``project`` (created in ``team`` unless it exists); what a caller checks."""
    if project not in {p["name"] for p in kosmos.projects.list()}:
        kosmos.projects.create(project, team, description="Breast cancer biopsies: the own-data example.")
    kosmos.init(project)

    # 1. the data: the lab's two tables, uploaded as they are
    measurements, diagnoses = biopsies()
    kosmos.features.upload_table("biopsies", measurements)

    # 2. the feature repository: Feast definitions and a pipeline, applied as a version
    applied = kosmos.features.apply(HERE / "feature_repo")
    run = kosmos.features.run_pipelines()  # the pipeline, then materialization into the online store

    # 3. a point-in-time training set: each diagnosis sees the biopsy as recorded by then
    entity_df = diagnoses.rename(columns={"diagnosed_at": "event_timestamp"})
    frame = kosmos.features.training_set(entity_df, feature_service=SERVICE)
    dataset = kosmos.datasets.register("diagnoses", frame, feature_service=SERVICE)

    # 4. a tracked run on that dataset version, its model in the registry
    columns = [c for c in frame.columns if c not in ("patient_id", "event_timestamp", "malignant")]
    ordered = frame.sort_values("event_timestamp")
    cut = int(len(ordered) * 0.8)  # train on the earlier 80%, test on the later 20%
    train, test = ordered.iloc[:cut], ordered.iloc[cut:]
    # code_path: the code version recorded is the git commit of this file (a notebook: its folder)
    with kosmos.training.start(
        "diagnosis", dataset="diagnoses", run_name="logistic", code_path=HERE
    ) as tracked:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(train[columns], train["malignant"])
        auc = roc_auc_score(test["malignant"], model.predict_proba(test[columns])[:, 1])
        tracked.log_metrics({"roc_auc": auc})
        tracked.log_model(model, input_example=test[columns].head(5))
    registered = kosmos.models.register("diagnosis", tracked.run_id)
    kosmos.models.promote("diagnosis", registered["version"], alias="champion", reason="own-data example")

    # 5. a deployment that looks the features up online: callers send only the patient id
    if deployment not in {d["name"] for d in kosmos.deployments.list()}:
        kosmos.deployments.create(deployment, "diagnosis", feature_service=SERVICE, num_cpus=0.25)
    state = kosmos.deployments.wait(deployment, timeout_s=300)
    patients = pd.DataFrame({"patient_id": [int(i) for i in test["patient_id"].head(20)]})
    predicted = kosmos.deployments.predict(deployment, patients)
    return {
        "applied": applied,
        "pipelines": run,
        "dataset": dataset,
        "run_id": tracked.run_id,
        "roc_auc": auc,
        "model_version": registered["version"],
        "deployment": state,
        "patients": patients,
        "predicted": predicted,
        "model": model,
        "columns": columns,
        "test": test,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="clinic")
    parser.add_argument("--team", default="risk", help="The team that owns a new project.")
    args = parser.parse_args()
    kosmos.login()
    out = walkthrough(args.project, args.team)
    print(f"feature repository v{out['applied']['version']}; dataset {out['dataset']['tag']}")
    print(f"model diagnosis v{out['model_version']}: roc_auc {out['roc_auc']:.3f} on the later 20%")
    print(out["predicted"].assign(patient_id=out["patients"]["patient_id"]).to_string())


if __name__ == "__main__":
    main()
