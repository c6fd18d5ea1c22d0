"""The assistant withholds a model answer that names what its facts and sources do not say."""

from __future__ import annotations

from kosmos.genai.assistant.grounding import ungrounded

FACTS = (
    "Models of demo:\n- fraud-detector champion is version 1: pr_auc 0.1417, roc_auc 0.8756; trained in "
    "run deeper, with learning_rate 0.08, max_iter 120, on dataset fraud-training v1 (4000 rows), "
    "features from fraud_model, code commit 3f2a9c1b7e"
)


def test_the_answers_seen_in_the_ui_that_contradicted_their_facts_are_caught() -> None:
    # issue 24: the champion "is" a function path no fact names
    wrong = (
        "The model version that is champion for fraud-detector is "
        "`kosmos.training.trainers.fraud_mlp.train_mlp`."
    )
    assert ungrounded(wrong, FACTS) == ["kosmos.training.trainers.fraud_mlp.train_mlp"]
    assert ungrounded("The champion is version 2 with a ROC-AUC of 0.8756.", FACTS) == ["2"]
    assert ungrounded("fraud-detector v3 is the champion.", FACTS) == ["v3"]
    assert ungrounded("Its ROC-AUC is 0.91 [1].", FACTS) == ["0.91"]
    assert ungrounded("It was trained with `max_depth` 6.", FACTS) == ["6", "max_depth"]


def test_answers_that_word_the_facts_pass_with_rounding_percentages_and_citations() -> None:
    for fine in (
        "The champion of fraud-detector is version 1, with a ROC-AUC of 0.8756.",
        "Version 1 is champion (ROC-AUC 0.876, about 87.6%, or 88%) [1][2].",
        "It was trained in run deeper with learning_rate 0.08 and max_iter 120 on fraud-training v1, "
        "4,000 rows, using the fraud_model feature service.",
        "No deployment is degraded.",
    ):
        assert ungrounded(fine, FACTS) == [], fine
