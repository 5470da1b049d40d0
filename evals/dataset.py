"""Load and validate an eval dataset (JSONL, one question per line).

The accepted format (issue 5)::

    {"id": "q-017", "question": "...", "answerable": true, "source": "aws-notes.md",
     "gold_lines": [312, 318], "gold_heading": "AWS Lambda > Inside VPC",
     "key_facts": [["NAT gateway", "NAT"], ["public IP"]], "reference_answer": "...",
     "kind": "paraphrase", "history": [{"role": "user", "content": "..."}]}
    {"id": "q-u03", "question": "How do I prune tomatoes?", "answerable": false, "kind": "unanswerable"}

A follow-up (``"kind": "followup"``) may say which kind of follow-up it is with
``"followup_kind"``: one of ``FOLLOWUP_KINDS`` (an entity swap, a pronoun, an elliptic
question, a drill-down, a topic change).

``split_of`` puts every question in the ``tune`` or the ``report`` half by a hash of
its id, so the halves never change when questions are added or reordered.

Unknown fields are ignored. A malformed line becomes a ``DatasetProblem`` with its
line number and is skipped; the run continues with the other lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from evals.errors import DatasetError

__all__ = [
    "KINDS", "FOLLOWUP_KINDS", "SPLITS", "EvalRecord", "DatasetProblem", "Dataset", "load_dataset", "corpus_lines",
    "line_count", "split_of", "select_split",
]

logger = logging.getLogger(__name__)

KINDS = ("paraphrase", "factual", "disambiguation", "why", "followup", "keyword", "unanswerable")
ROLES = ("user", "assistant")
FOLLOWUP_KINDS = ("swap", "pronoun", "elliptic", "drill_down", "topic_change")
SPLITS = ("tune", "report")


@dataclass(frozen=True)
class EvalRecord:
    """One validated question. ``gold_lines`` is 1-based inclusive; ``key_facts`` groups alternatives."""

    id: str
    question: str
    answerable: bool
    kind: str
    line: int
    source: str | None = None
    gold_lines: tuple[int, int] | None = None
    gold_heading: str = ""
    key_facts: tuple[tuple[str, ...], ...] = ()
    reference_answer: str = ""
    history: tuple[dict, ...] = ()
    followup_kind: str | None = None


@dataclass(frozen=True)
class DatasetProblem:
    """A line that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Dataset:
    """The usable records of a dataset file plus the problems of the lines that were skipped."""

    path: Path
    sha256: str
    records: list[EvalRecord] = field(default_factory=list)
    problems: list[DatasetProblem] = field(default_factory=list)
    split: str | None = None  # "tune" or "report" when only that half of the file is kept


def split_of(record_id: str) -> str:
    """The half a question belongs to: ``"tune"`` when the first byte of sha256(id) is even, else ``"report"``.

    Stable by id alone: adding, removing or reordering questions never moves another one.

    >>> split_of("q-001"), split_of("q-005")
    ('report', 'tune')
    """
    return SPLITS[hashlib.sha256(record_id.encode("utf-8")).digest()[0] % 2]


def select_split(dataset: Dataset, split: str | None) -> Dataset:
    """``dataset`` with only the records of ``split`` (None: all of them, unchanged).

    Raises:
        ValueError: ``split`` is not one of ``SPLITS``.
    """
    if split is None:
        return dataset
    if split not in SPLITS:
        raise ValueError(f"split must be one of {'|'.join(SPLITS)}, got {split!r}")
    kept = [r for r in dataset.records if split_of(r.id) == split]
    return Dataset(dataset.path, dataset.sha256, kept, list(dataset.problems), split)


def line_count(text: str) -> int:
    """Lines of a note as the indexer numbers them.

    >>> line_count("a\\nb\\n"), line_count("a\\nb"), line_count("")
    (2, 2, 0)
    """
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def corpus_lines(notes_path: Path) -> dict[str, int]:
    """``{source: line count}`` of the notes under ``notes_path`` (sources named as the index names them)."""
    from ingest import read_notes

    notes, _ = read_notes(notes_path)
    return {n.source: line_count(n.text) for n in notes}


class _Invalid(ValueError):
    pass


def _require_str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f'"{name}" must be a non-empty string')
    return value


def _gold_lines(value, source: str | None, corpus: Mapping[str, int] | None) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
        raise _Invalid('"gold_lines" must be [first, last]: two whole line numbers')
    first, last = value
    if not 1 <= first <= last:
        raise _Invalid(f'"gold_lines" {value} must satisfy 1 <= first <= last')
    if corpus is not None and source is not None and last > corpus[source]:
        raise _Invalid(f'"gold_lines" {value} out of range: {source} has {corpus[source]} lines')
    return first, last


def _key_facts(value) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid('"key_facts" must be a non-empty list of groups, e.g. [["NAT gateway", "NAT"], ["public IP"]]')
    groups = []
    for group in value:
        if not (isinstance(group, list) and group and all(isinstance(a, str) and a.strip() for a in group)):
            raise _Invalid(f'each "key_facts" group must be a non-empty list of non-empty strings, got {group!r}')
        groups.append(tuple(group))
    return tuple(groups)


def _history(value) -> tuple[dict, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid('"history" must be a list of {"role", "content"} turns')
    turns = []
    for turn in value:
        if not (isinstance(turn, dict) and turn.get("role") in ROLES and isinstance(turn.get("content"), str)):
            raise _Invalid(f'each "history" turn needs "role" (user|assistant) and "content" (string), got {turn!r}')
        turns.append({"role": turn["role"], "content": turn["content"]})
    return tuple(turns)


def _followup_kind(value, kind: str, history: tuple[dict, ...]) -> str | None:
    if value is None:
        return None
    if value not in FOLLOWUP_KINDS:
        raise _Invalid(f'"followup_kind" must be one of {"|".join(FOLLOWUP_KINDS)}, got {value!r}')
    if not history:
        raise _Invalid('"followup_kind" needs a "history" of earlier turns')
    return value


def _source(value, corpus: Mapping[str, int] | None) -> str | None:
    if value is None:
        if corpus is None:
            return None
        if len(corpus) == 1:
            return next(iter(corpus))
        raise _Invalid(f'"source" is required: the notes hold {len(corpus)} files')
    if not isinstance(value, str) or not value.strip():
        raise _Invalid('"source" must be a note file name, e.g. "aws-notes.md"')
    source = value.strip().removeprefix("./")
    if corpus is not None and source not in corpus:
        known = ", ".join(sorted(corpus)[:5])
        raise _Invalid(f'"source" {source!r} is not among the notes ({known})')
    return source


def _record(obj, line: int, corpus: Mapping[str, int] | None) -> EvalRecord:
    if not isinstance(obj, dict):
        raise _Invalid("each line must be a JSON object")
    record_id = obj.get("id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str) or not record_id.strip():
        raise _Invalid('"id" must be a non-empty string')
    question = _require_str(obj, "question")
    answerable = obj.get("answerable")
    if not isinstance(answerable, bool):
        raise _Invalid('"answerable" must be true or false')
    kind = obj.get("kind", "factual" if answerable else "unanswerable")
    if kind not in KINDS:
        raise _Invalid(f'"kind" must be one of {"|".join(KINDS)}, got {kind!r}')
    if (kind == "unanswerable") == answerable:
        raise _Invalid(f'"kind" {kind!r} contradicts "answerable": {str(answerable).lower()}')
    history = _history(obj.get("history"))
    followup_kind = _followup_kind(obj.get("followup_kind"), kind, history)
    if not answerable:
        return EvalRecord(record_id, question, False, kind, line, history=history, followup_kind=followup_kind)
    if "gold_lines" not in obj:
        raise _Invalid('an answerable question needs "gold_lines": [first, last]')
    if "key_facts" not in obj:
        raise _Invalid('an answerable question needs "key_facts"')
    source = _source(obj.get("source"), corpus)
    gold = _gold_lines(obj["gold_lines"], source, corpus)
    heading = obj.get("gold_heading") if isinstance(obj.get("gold_heading"), str) else ""
    reference = obj.get("reference_answer") if isinstance(obj.get("reference_answer"), str) else ""
    return EvalRecord(
        record_id, question, True, kind, line, source=source, gold_lines=gold, gold_heading=heading,
        key_facts=_key_facts(obj["key_facts"]), reference_answer=reference, history=history,
        followup_kind=followup_kind,
    )


def load_dataset(path: Path, corpus: Mapping[str, int] | None = None) -> Dataset:
    """Read and validate a JSONL dataset.

    Args:
        path: the JSONL file.
        corpus: ``{source: line count}`` of the indexed notes (see ``corpus_lines``); when given,
            sources and gold line ranges are checked against it and a missing ``source`` defaults
            to the only note. ``None`` skips those checks.

    Returns:
        The records that passed validation and one ``DatasetProblem`` per skipped line
        (bad JSON, missing/invalid fields, out-of-range gold lines, duplicate ids).

    Raises:
        DatasetError: the file cannot be read as UTF-8 text.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as e:
        raise DatasetError(f"cannot read dataset {path}: {e.strerror or e}; pass --dataset with a JSONL file") from e
    except UnicodeDecodeError as e:
        raise DatasetError(f"dataset {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 JSONL") from e
    dataset = Dataset(path=path, sha256=hashlib.sha256(raw).hexdigest())
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            dataset.problems.append(DatasetProblem(number, f"not valid JSON ({e.msg} at column {e.colno})"))
            continue
        try:
            record = _record(obj, number, corpus)
        except _Invalid as e:
            dataset.problems.append(DatasetProblem(number, str(e)))
            continue
        if record.id in seen:
            dataset.problems.append(DatasetProblem(number, f'duplicate "id" {record.id!r}'))
            continue
        seen.add(record.id)
        dataset.records.append(record)
    for problem in dataset.problems:
        logger.warning("dataset=%s skipped %s", path, problem)
    return dataset
