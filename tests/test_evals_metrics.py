"""Eval metrics on tiny hand-computed cases: retrieval (ranx), key facts, citations, groundedness, abstention."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from evals.metrics import (
    RETRIEVAL_METRICS, abstention_scores, answer_summary, latency_summary, mean_of, retrieval_scores, summarize,
)
from evals.runner import judge
from evals.scoring import check_citations, check_grounding, check_key_facts, normalize, statements

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)


# -- retrieval (ranx) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scores():
    qrels = {
        "two-relevant": ["b", "d"],
        "tie-order": ["a"],
        "no-hit": ["x"],
        "nothing-retrieved": ["x"],
        "no-relevant-chunk": [],
        "partial-recall": ["a", "b", "c"],
        "first": ["a"],
    }
    rankings = {
        "two-relevant": ["a", "b", "c", "d"],
        # Equal retrieval scores: our rank order must survive, not ranx's id order ("a" < "z").
        "tie-order": ["z", "a"],
        "no-hit": ["a", "b", "c"],
        "nothing-retrieved": [],
        "no-relevant-chunk": ["a", "b"],
        "partial-recall": ["a", "p1", "p2", "p3", "p4", "b", "p5"],
        "first": ["a", "b"],
    }
    return retrieval_scores(qrels, rankings)


def test_two_relevant_chunks_hand_computed(scores):
    s = scores["two-relevant"]
    assert (s["hit@1"], s["hit@3"], s["hit@5"], s["hit@10"]) == (0.0, 1.0, 1.0, 1.0)
    assert s["mrr@10"] == pytest.approx(0.5)
    # DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    assert s["ndcg@10"] == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3))
    assert s["recall@5"] == pytest.approx(1.0)


def test_ties_keep_the_retrievers_order(scores):
    s = scores["tie-order"]
    assert s["hit@1"] == 0.0 and s["hit@3"] == 1.0
    assert s["mrr@10"] == pytest.approx(0.5)
    assert s["ndcg@10"] == pytest.approx(1 / LOG2_3)


@pytest.mark.parametrize("qid", ["no-hit", "nothing-retrieved", "no-relevant-chunk"])
def test_no_hits_score_zero_everywhere(scores, qid):
    assert scores[qid] == {m: 0.0 for m in RETRIEVAL_METRICS}


def test_recall_counts_the_share_of_relevant_chunks(scores):
    s = scores["partial-recall"]
    assert s["recall@5"] == pytest.approx(1 / 3)
    assert s["recall@10"] == pytest.approx(2 / 3)
    assert s["hit@1"] == 1.0 and s["mrr@10"] == 1.0


def test_perfect_ranking(scores):
    assert scores["first"] == {m: pytest.approx(1.0) for m in RETRIEVAL_METRICS}


def test_empty_rankings_give_no_scores():
    assert retrieval_scores({}, {}) == {}


# -- key facts -----------------------------------------------------------------------------------
def test_key_facts_alternatives_case_and_markdown():
    check = check_key_facts("Put a **nat  Gateway** in a public subnet [1]", [["NAT gateway", "NAT"], ["public subnet"], ["IPv6"]])
    assert check.found == ("NAT gateway", "public subnet")
    assert check.missing == ("IPv6",)
    assert check.recall == pytest.approx(2 / 3)


@pytest.mark.parametrize("answer", ["", "   ", "🙂"])
def test_key_facts_of_an_empty_answer(answer):
    check = check_key_facts(answer, [["350"], ["ENI"]])
    assert check.found == () and check.recall == 0.0


def test_key_facts_without_groups_is_undefined():
    assert check_key_facts("anything", []).recall is None


# -- citations -----------------------------------------------------------------------------------
@dataclass
class Cite:
    source: str
    start_line: int
    end_line: int


def test_citation_precision_and_hit():
    cites = [Cite("a.md", 10, 12), Cite("a.md", 20, 25), Cite("b.md", 10, 12), Cite("a.md", 13, 14)]
    check = check_citations(cites, "a.md", (12, 20))
    assert check.on_gold == (True, True, False, True)  # boundaries overlap; other source never does
    assert check.precision == pytest.approx(0.75) and check.hit


def test_no_citations():
    check = check_citations([], "a.md", (1, 2))
    assert check.precision is None and check.hit is False


def test_citations_miss():
    check = check_citations([Cite("a.md", 1, 9)], "a.md", (10, 12))
    assert check.precision == 0.0 and not check.hit


# -- groundedness --------------------------------------------------------------------------------
def test_statements_skip_lead_ins_and_split_sentences():
    answer = ("From your notes on **Lambda › VPC**:\n\n- A VPC function has no public IP. Use a NAT gateway. [1]\n"
              "- Steps:\n```\naws ec2 create-nat-gateway\n```\n[2]")
    assert statements(answer) == ["A VPC function has no public IP.", "Use a NAT gateway.", "aws ec2 create-nat-gateway"]


def test_verbatim_statements_are_grounded():
    cited = ["- A VPC-attached **function** has no public IP.\n- Use a NAT gateway in a public subnet."]
    g = check_grounding("From your notes on X:\n\n- A VPC-attached function has no public IP. [1]\n- Use a NAT gateway in a public subnet. [1]", cited)
    assert (g.statements, g.verbatim, g.by_embedding, g.score) == (2, 2, 0, 1.0)


def test_unsupported_statement_without_embedder():
    g = check_grounding("Use a NAT gateway. Glacier is cheap. [1]", ["Use a NAT gateway."])
    assert g.score == 0.5 and g.unsupported == ["Glacier is cheap."]


def test_empty_answer_has_no_groundedness():
    g = check_grounding("", ["whatever"])
    assert g.statements == 0 and g.score is None


@pytest.fixture(scope="module")
def encode():
    from assistant.settings import default_model_path
    from vectorstore.query_encoder import NumpyQueryEncoder

    return NumpyQueryEncoder(default_model_path()).encode


def test_paraphrase_grounded_by_embedding(encode):
    cited = ["Lambda functions attached to a VPC need a NAT gateway to reach the internet."]
    answer = "To reach the internet, a Lambda function inside a VPC needs a NAT gateway [1]. Glacier is cheap archival storage."
    g = check_grounding(answer, cited, encode)
    assert (g.statements, g.verbatim, g.by_embedding) == (2, 0, 1)
    assert g.unsupported == ["Glacier is cheap archival storage."]
    assert g.score == 0.5


def test_normalize_strips_markdown_and_entities():
    assert normalize("1. `a &lt;b&gt;` **c** \\[x\\] [12]") == "a <b> c [x]"


# -- abstention ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answerable, abstained, expected",
    [
        ([True, True, False, False], [False, True, True, False], (0.5, 0.5, 0.5)),
        ([False, False], [True, True], (1.0, 1.0, 1.0)),         # all unanswerable, all abstained
        ([False, False], [False, False], (None, 0.0, 0.0)),      # all unanswerable, none abstained
        ([True, True], [False, False], (None, None, None)),      # nothing to abstain on, no abstention
        ([True, True], [True, False], (0.0, None, 0.0)),         # abstained on an answerable one only
    ],
)
def test_abstention_scores(answerable, abstained, expected):
    got = abstention_scores(answerable, abstained)
    assert (got["abstention_precision"], got["abstention_recall"], got["abstention_f1"]) == expected


# -- aggregation ---------------------------------------------------------------------------------
def test_latency_percentiles():
    lat = latency_summary([{"total": 10}, {"total": 20}, {"total": 30}, {"total": 40, "answer": 5}])
    assert lat["total"] == {"p50": 25.0, "p95": 38.5, "mean": 25.0, "max": 40.0}
    assert lat["answer"]["p50"] == 5.0 and "retrieve" not in lat


def test_mean_of_ignores_undefined():
    assert mean_of([1.0, None, float("nan"), 0.0]) == 0.5 and mean_of([]) is None


def _row(qid, kind, answerable=True, abstained=False, facts=1.0, precision=1.0, hit=True, grounded=1.0,
         first_rank=1, passed=True):
    row = {"id": qid, "kind": kind, "answerable": answerable, "abstained": abstained, "pass": passed,
           "key_fact_recall": facts, "citation_precision": precision, "citation_hit": hit, "groundedness": grounded,
           "timings_ms": {"total": 100.0}, "retrieval": {}}
    if answerable:
        rr = {m: (1.0 if first_rank == 1 else 0.0) for m in RETRIEVAL_METRICS}
        row["retrieval"] = {"hybrid": {"scores": rr, "first_relevant_rank": first_rank}}
    return row


def test_answer_summary_hand_computed():
    rows = [
        _row("a", "factual"),
        _row("b", "factual", facts=0.5, precision=0.5, grounded=0.5, first_rank=2, passed=False),
        _row("c", "why", abstained=True, facts=None, precision=None, hit=None, grounded=None, first_rank=3, passed=False),
        _row("u", "unanswerable", answerable=False, abstained=True, facts=None, precision=None, hit=None, grounded=None),
    ]
    got = answer_summary(rows)
    assert got["key_fact_recall"] == pytest.approx(0.5)        # (1 + 0.5 + 0 for the abstention) / 3
    assert got["citation_precision"] == pytest.approx(0.75)    # answered answerable only
    assert got["citation_hit"] == pytest.approx(1.0)
    assert got["groundedness"] == pytest.approx(0.75)
    assert got["answered_rate"] == pytest.approx(0.5)
    assert got["abstention_precision"] == pytest.approx(0.5) and got["abstention_recall"] == 1.0
    assert got["pass_rate"] == pytest.approx(0.5)
    metrics = summarize(rows)
    assert metrics["summary"]["hit@1"] == pytest.approx(1 / 3)
    assert metrics["by_kind"]["factual"]["count"] == 2
    assert metrics["by_kind"]["factual"]["hit@1"] == pytest.approx(0.5)
    assert metrics["by_kind"]["unanswerable"]["hit@1"] is None
    assert metrics["counts"] == {"questions": 4, "answerable": 3, "unanswerable": 1, "abstained": 2, "passed": 2}


def test_all_unanswerable_dataset():
    rows = [_row(q, "unanswerable", answerable=False, abstained=q != "u3", facts=None, precision=None, hit=None,
                 grounded=None, passed=q != "u3") for q in ("u1", "u2", "u3")]
    metrics = summarize(rows)
    s = metrics["summary"]
    assert s["hit@5"] is None and s["key_fact_recall"] is None and s["citation_hit"] is None
    assert s["abstention_precision"] == 1.0 and s["abstention_recall"] == pytest.approx(2 / 3)
    assert s["answered_rate"] == pytest.approx(1 / 3)


def test_judge_explains_failures():
    unanswered = {"answerable": False, "abstained": False, "citations": [{"source": "a.md", "start_line": 3, "end_line": 4}]}
    passed, problems, score = judge(unanswered)
    assert not passed and score == 0.0 and problems == ["answered an unanswerable question (cited a.md:3-4)"]
    row = {"answerable": True, "abstained": False, "source": "a.md", "gold_lines": [10, 12], "relevant_ids": ["c1"],
           "retrieval": {"hybrid": {"first_relevant_rank": 4}}, "citation_hit": False, "citations": [
               {"source": "a.md", "start_line": 30, "end_line": 31}], "facts_missing": ["NAT"], "unsupported": [],
           "statements": 2, "key_fact_recall": 0.5}
    passed, problems, score = judge(row)
    assert not passed
    assert problems == ["gold lines a.md:10-12 first retrieved at rank 4",
                        "no citation on the gold lines a.md:10-12 (cited 30-31)", "missing key facts: NAT"]
    assert score == pytest.approx((1 + 0 + 0.5 + 0.25) / 4)
