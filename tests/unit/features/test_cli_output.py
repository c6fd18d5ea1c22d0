"""What `kosmos features list` prints (the control plane's answer is stubbed; the integration
suite runs the real one)."""

from __future__ import annotations

from typer.testing import CliRunner

from kosmos.features import cli


def test_features_list_names_each_kind_as_people_do(monkeypatch) -> None:
    described = {
        "entities": ["customer"],
        "feature_views": ["customer_stats"],
        "on_demand_feature_views": ["ratio"],
        "feature_services": ["churn_v1"],
    }
    monkeypatch.setattr(cli.sdk, "list_features", lambda project: described)
    shown = CliRunner().invoke(cli.app, ["list", "-p", "acme"])
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[-1]: line for line in shown.output.splitlines() if line.strip()}
    assert lines["customer"].split()[0] == "entity" and "entitie " not in shown.output
    assert lines["customer_stats"].startswith("feature view")
    assert lines["ratio"].startswith("on-demand view") and lines["churn_v1"].startswith("feature service")
