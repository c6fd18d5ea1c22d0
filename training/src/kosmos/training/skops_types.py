"""Which types a scikit-learn model may carry through MLflow's skops format.

MLflow saves scikit-learn models with skops, which refuses to load any type it does not
trust by default (a tree's ``sklearn.tree._tree.Tree``, for one) unless ``log_model`` names it
in ``skops_trusted_types``. Types from scikit-learn, NumPy and SciPy are data and estimators,
never code a caller chose, so Kosmos trusts those; any other type is the user's to review.
"""

from __future__ import annotations

from typing import Any

from kosmos.platform.errors import InvalidInput

SAFE_MODULES = ("sklearn.", "numpy.", "scipy.")
"""Packages whose types a model may carry without the user naming them."""


def trusted_types(model: Any) -> list[str]:
    """The types ``model`` needs trusted to load back, when all of them are from SAFE_MODULES.

    Raises InvalidInput naming the others: pass them in ``skops_trusted_types`` once reviewed.
    """
    import skops.io as sio

    untrusted = sorted(sio.get_untrusted_types(data=sio.dumps(model)))
    unknown = [t for t in untrusted if not t.startswith(SAFE_MODULES)]
    if unknown:
        raise InvalidInput.field(
            "skops_trusted_types",
            f"the model carries types from outside scikit-learn, NumPy and SciPy: {', '.join(unknown)}. "
            "Loading them runs their code; once reviewed, pass "
            f"run.log_model(model, ..., skops_trusted_types={untrusted!r})",
        )
    return untrusted
