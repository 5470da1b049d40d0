"""Follow-up rewriting (issue 11, item 4): entity swaps, pronouns at any length, new topics left alone."""

from __future__ import annotations

import pytest

from assistant.followup import condense, content_words, followup_kind, needs_context


def user(text: str) -> dict:
    return {"role": "user", "content": text}


LOOP = "How do I stop a Lambda function stuck in an infinite loop triggered by S3?"


def test_entity_swap_keeps_the_aspect_and_replaces_the_subject():
    # Was: "what about SQS? (stop Lambda function stuck infinite loop triggered S3)" — the first answer again.
    assert condense("what about SQS?", [user(LOOP)]) == "How do I stop a Lambda function stuck in an infinite loop triggered by SQS?"
    assert condense("and for DynamoDB?", [user("How is Aurora billed?")]) == "How is DynamoDB billed?"
    assert condense("How about Kinesis Data Streams?", [user("What is the maximum retention of SQS?")]) == (
        "What is the maximum retention of Kinesis Data Streams?")
    # Plural kinds stay the aspect: "Lambda functions" → "ECS functions" (as before the kind-noun rule).
    assert condense("and for ECS?", [user("How many Lambda functions can I run at once?")]) == (
        "How many ECS functions can I run at once?")
    assert condense("what about GCP?", [user("Which AWS services support encryption at rest?")]) == (
        "Which GCP services support encryption at rest?")
    # "database" was part of the old subject ("RDS database"): EFS is not a database.
    assert condense("Is it the same for EFS?", [user("Can I encrypt an existing RDS database?")]) == (
        "Can I encrypt an existing EFS?")


def test_swap_after_a_rewritten_turn_swaps_the_carried_subject():
    history = [user("How does Lambda provisioned concurrency work?"), user("and how is it billed?")]
    swapped = condense("what about SnapStart?", history)
    assert swapped.startswith("and how is it billed? (SnapStart") and "Lambda" not in swapped


def test_swap_retrieves_the_new_subject_not_the_first_answer_again(assistant):
    first = assistant.ask("How do I back up an RDS database?")
    swapped = assistant.ask("And for EFS?", [user("How do I back up an RDS database?"),
                                             {"role": "assistant", "content": first.answer}])
    assert "RDS" not in swapped.condensed_query and "EFS" in swapped.condensed_query
    assert {c.start_line for c in swapped.citations}.isdisjoint({c.start_line for c in first.citations})
    assert any(c.heading_path[-2:] == ("EFS", "Backups") for c in swapped.citations)


@pytest.mark.parametrize("question", [
    "Once it has been switched on for a bucket, can I turn it off again later on?",  # 15 words (was: ≤ 8 only)
    "Is there any way at all to make them scale automatically when the traffic grows during the night?",
    "how is it billed",
    "And if two of those regions update the same item at almost the same moment, which write wins?",
])
def test_pronouns_resolve_whatever_the_length(question):
    history = [user("How do DynamoDB global tables work?")]
    assert followup_kind(question, history[0]["content"]) == "pronoun"
    assert condense(question, history) == f"{question} (DynamoDB global tables)"


@pytest.mark.parametrize("question", [
    "Also, how do I tag an EC2 instance?",
    "Which storage class is cheapest for archives in S3?",
    "Also, can security groups have deny rules?",
    "And how do I check the integrity of CloudTrail log files?",
    "What is the difference between gateway and interface VPC endpoints?",
    "How does S3 versioning work and can I suspend it?",  # its own subject comes before the pronoun
    "What happens to SQS messages that fail processing?",  # "that" is a relative pronoun here
    "Which EC2 placement group spreads instances across distinct underlying hardware?",
])
def test_a_self_contained_question_never_carries_the_old_subject(question):
    history = [user("How does Lambda provisioned concurrency work?"), {"role": "assistant", "content": "It keeps…"}]
    assert followup_kind(question, history[0]["content"]) == "new"
    assert condense(question, history) == question


@pytest.mark.parametrize("question, kind", [
    ("and the maximum?", "elliptic"),
    ("why?", "elliptic"),
    ("And for long polling?", "elliptic"),  # an aspect, not a name: not a swap
    ("And how do I restore an object someone deleted by mistake?", "drill_down"),
    ("So what visibility timeout should the queue have?", "drill_down"),
    ("what about its pricing?", "pronoun"),
    ("and from Deep Archive?", "swap"),
])
def test_kinds(question, kind):
    assert followup_kind(question, "How does S3 versioning work?") == kind
    assert condense(question, [user("How does S3 versioning work?")]) != question


@pytest.mark.parametrize("question", ["", "?", "🙂", "什么是 Lambda", "what about " + "SQS " * 300, "it " * 500])
def test_edge_inputs_do_not_fail(question):
    for history in ([], [user("")], [{"role": "assistant", "content": "hi"}], [user(LOOP)], [user("🙂")]):
        assert isinstance(condense(question, history), str)
    assert condense(question, []) == question


def test_without_history_nothing_needs_context():
    assert followup_kind("and how is it billed?", "") == "new"
    assert needs_context("and how is it billed?")  # with some earlier turn
    assert content_words("What is the S3 max object size?") == ["s3", "max", "object", "size"]
