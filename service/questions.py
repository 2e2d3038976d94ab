"""POST /v1/leads/next-question: which unknown field to ask a lead next, and what each answer would do.

The ranking is ``training.questions.QuestionRanker`` over the bundle's answer statistics; the lead and all its
hypothetical answers are scored in one call of the serving fast path. Nothing is written to the score log: the
answers are hypothetical, and the lead is scored for real once it is qualified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException, status
from pydantic import ValidationError

from service.champion import ServingModel
from service.errors import LeadRejected
from service.scoring import error_list, serving_model
from training.questions import Question, QuestionRanker

RETRAIN = (
    "model {version} was trained before next-question statistics were kept in bundles; "
    "retrain it (leadscore train) to enable next questions"
)

# A real exchange with the model trained on the generated sample leads (two of its questions shown).
NEXT_QUESTION_REQUEST: dict[str, Any] = {
    "lead_id": "L-1001",
    "lead_source": "referral",
    "contact_role": "decision_maker",
}
NEXT_QUESTION_REPLY: dict[str, Any] = {
    "lead_id": "L-1001",
    "probability": 0.3684,
    "grade": "A",
    "questions": [
        {
            "field": "owns_home",
            "question": "Do you own your home?",
            "value_of_asking": 0.1468,
            "entropy_reduction": 0.0826,
            "answers": [
                {"value": False, "label": "No", "share": 0.7171, "probability": 0.2383, "grade": "B"},
                {"value": True, "label": "Yes", "share": 0.2829, "probability": 0.5999, "grade": "A"},
            ],
        },
        {
            "field": "purchase_timeframe",
            "question": "When are you looking to buy?",
            "value_of_asking": 0.0927,
            "entropy_reduction": 0.0356,
            "answers": [
                {"value": "3-6 months", "label": "In 3–6 months", "share": 0.3084, "probability": 0.3364, "grade": "A"},
                {"value": "1-3 months", "label": "In 1–3 months", "share": 0.2774, "probability": 0.4356, "grade": "A"},
                {
                    "value": "6+ months",
                    "label": "In 6 months or more",
                    "share": 0.2394,
                    "probability": 0.232,
                    "grade": "B",
                },
                {"value": "immediate", "label": "Right away", "share": 0.1749, "probability": 0.5447, "grade": "A"},
            ],
        },
    ],
    "model_version": "20261203-185535-2db86b",
}


def ranker_of(model: ServingModel) -> QuestionRanker:
    if model.ranker is None:
        raise HTTPException(status.HTTP_409_CONFLICT, RETRAIN.format(version=model.version))
    return model.ranker


def next_questions(state: Any, body: bytes) -> dict[str, Any]:
    """The lead's probability and grade now, and its unanswered askable fields ranked by value of asking."""
    model = serving_model(state)
    try:
        lead = model.validator.validate_json(body)
    except ValidationError as exc:
        raise LeadRejected(error_list(exc)) from None
    ranker = ranker_of(model)
    scorer = model.scorer
    ranking = ranker.rank(scorer.encode([lead]).matrix[0])
    every = np.concatenate([[ranking.probability], *(q.probabilities for q in ranking.questions)])
    grades = scorer.grades(every)[0]  # the lead's, then each answer's in the order of the questions
    questions, start = [], 1
    for question in ranking.questions:
        end = start + len(question.probabilities)
        questions.append(_question(question, grades[start:end], model))
        start = end
    lead_id = lead.get(scorer.id_field) if scorer.id_field else None
    return {
        "lead_id": None if lead_id is None else str(lead_id),
        "probability": ranking.probability,
        "grade": grades[0],
        "questions": questions,
        "model_version": model.version,
    }


def _question(question: Question, grades: list[str], model: ServingModel) -> dict[str, Any]:
    name = question.field
    answers = zip(
        question.answers.values,
        model.answer_labels[name],
        question.shares.tolist(),
        question.probabilities.tolist(),
        grades,
        strict=True,
    )
    return {
        "field": name,
        "question": model.question_texts[name],
        "value_of_asking": question.value_of_asking,
        "entropy_reduction": question.entropy_reduction,
        "answers": [
            {"value": value, "label": label, "share": share, "probability": probability, "grade": grade}
            for value, label, share, probability, grade in answers
        ],
    }


def answer_table(model: ServingModel) -> dict[str, Any]:
    """GET /v1/model/answers: per field, its question, whether a rep may ask it, and its answers with their shares
    among all leads and among the best customers (the profile's definition), for the qualification page."""
    ranker = ranker_of(model)
    wording = model.bundle.wording
    fields = []
    for name, answers, askable in zip(ranker.fields, ranker.answers, ranker.askable, strict=True):
        fields.append(
            {
                "field": name,
                "kind": answers.kind,
                "askable": bool(askable),
                "name": wording.field_name(name) if wording else name,
                "question": model.question_texts[name],
                "answers": [
                    {
                        "value": answers.values[i],
                        "label": model.answer_labels[name][i],
                        "share_all": float(answers.shares[i]),
                        "share_best": float(answers.best_shares[i]),
                    }
                    for i in range(len(answers.values))
                ],
            }
        )
    return {"model_version": model.version, "best_customers": model.bundle.profile.get("definition"), "fields": fields}
