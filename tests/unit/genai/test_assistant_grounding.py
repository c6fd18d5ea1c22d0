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


DEPLOYMENTS = [
    {
        "tool": "deployments",
        "data": [
            {"name": "fraud-detector", "model": "fraud-detector", "status": "healthy", "reason": None},
            {"name": "assistant-llm", "model": "smollm2-135m-instruct", "status": "healthy", "reason": None},
        ],
    }
]
MODELS = [
    {
        "tool": "models",
        "data": [
            {"model": "fraud-detector", "alias": "champion", "version": 1, "metrics": {"roc_auc": 0.8742}}
        ],
    }
]


def test_states_the_facts_do_not_give_are_contradictions() -> None:
    from kosmos.genai.assistant.grounding import contradicted

    # answers SmolLM2-135M gave on make run's demo, every deployment healthy (stop 34)
    assert contradicted("The fraud-detector deployment is not healthy.", DEPLOYMENTS) == [
        "fraud-detector not healthy"
    ]
    said = "The status of your deployments is:\n- `deployment.rollout` is `unstable`\n- it is `degraded`"
    assert contradicted(said, DEPLOYMENTS) == ["unstable", "degraded"]
    assert contradicted("fraud-detector is healthy and so is assistant-llm.", DEPLOYMENTS) == []
    assert contradicted("No deployment is degraded.", DEPLOYMENTS) == []
    assert contradicted("The model is degraded.", MODELS) == []  # no states among these facts


def test_a_lookup_answer_must_give_one_of_its_results() -> None:
    from kosmos.genai.assistant.grounding import restates

    question = "What is the champion model's ROC-AUC?"
    assert not restates(
        "The champion model's ROC-AUC is the Receirawa-Coomroff-AuCiRAC model.", MODELS, question
    )
    assert restates("The champion's ROC-AUC is 0.874.", MODELS, question)
    assert restates("About 87.4% [1].", MODELS, question)
    assert not restates("Yes, there is. The server cannot keep up.", DEPLOYMENTS, "Is anything broken?")
    assert restates("All of them are healthy.", DEPLOYMENTS, "Is anything broken?")
    assert restates("See the docs.", [{"tool": "deployments", "data": []}], "Is anything broken?")


def test_a_small_models_loops_are_not_answers() -> None:
    from kosmos.genai.assistant.grounding import degenerate

    loop = "The version that is the champion is version 1.  The version that is the champion is version 1."
    assert degenerate(loop)
    assert degenerate("1. **Install the Deployment-Rollback-Deployment-Deployment-Deployment-Deployment")
    assert degenerate("Version 1 is champion. Its ROC-AUC is 0.874, from run baseline.") is None


def test_a_question_about_one_field_needs_that_fields_value() -> None:
    from kosmos.genai.assistant.grounding import restates

    facts = [{"tool": "models", "data": [{**MODELS[0]["data"][0], "trained": {"run": "baseline"}}]}]
    question = "What is the champion model's ROC-AUC?"
    # SmolLM2-135M on make run's demo: it names the run, not the ROC-AUC asked for
    assert not restates("The ROC-AUC is the Receirawa model, a hybrid of a baseline model.", facts, question)
    assert restates("It is 0.8742, from run baseline.", facts, question)
    assert restates("Trained in run baseline.", facts, "How was the champion trained?")


def test_a_whole_number_is_not_a_metric_rounded() -> None:
    from kosmos.genai.assistant.grounding import restates

    # SmolLM2-135M, asked for the ROC-AUC, defined the metric in a numbered list: "1." is no 0.8742
    said = "The ROC-AUC is the ratio of two areas.\n\n1. The model makes a decision.\n2. It takes"
    assert not restates(said, MODELS, "What is the champion model's ROC-AUC?")
    assert ungrounded("Its ROC-AUC is 1.", FACTS) == []  # version 1 is a fact: held as itself
    assert ungrounded("It has 3 versions.", FACTS) == ["3"]
