"""Sanity checks for the golden evaluation dataset (evals/datasets/golden.jsonl).

Every record is checked on its own (parametrized by record id), then the set as a
whole is checked for size, mix of question kinds and coverage of the notes file.
Stdlib + pytest only.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASET = REPO_ROOT / "evals" / "datasets" / "golden.jsonl"
NOTES_DIR = REPO_ROOT / "notes"
DEFAULT_SOURCE = "aws-notes.md"

VALID_KINDS = {"paraphrase", "factual", "disambiguation", "why", "followup", "unanswerable"}
ANSWERABLE_FIELDS = {
    "id", "question", "answerable", "source", "gold_lines", "gold_heading",
    "key_facts", "reference_answer", "kind",
}
UNANSWERABLE_FIELDS = {"id", "question", "answerable", "kind"}
ID_PATTERNS = {
    "answerable": re.compile(r"^q-\d{3}$"),
    "followup": re.compile(r"^q-f\d{2}$"),
    "unanswerable": re.compile(r"^q-u\d{2}$"),
}
FOLLOWUP_KINDS = {"swap", "pronoun", "elliptic", "drill_down", "topic_change"}
MAX_GOLD_SPAN = 25      # gold ranges should be tight
N_STRETCHES = 8         # the file is split into 8 equal stretches for coverage


# --------------------------------------------------------------------------- loading

def _read_lines(path: Path) -> list[str]:
    # split on "\n" only (not str.splitlines, which also splits on \x0b, \u2028, ...)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _load_raw() -> list[tuple[int, str]]:
    assert DATASET.is_file(), f"dataset not found: {DATASET}"
    rows = []
    for lineno, raw in enumerate(DATASET.read_text(encoding="utf-8").split("\n"), 1):
        if raw.strip():
            rows.append((lineno, raw))
    return rows


RAW_ROWS = _load_raw()


def _parse(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _row_id(row: tuple[int, str]) -> str:
    lineno, raw = row
    rec = _parse(raw)
    if isinstance(rec, dict) and isinstance(rec.get("id"), str):
        return rec["id"]
    return f"line-{lineno}"


RECORDS = [r for r in (_parse(raw) for _, raw in RAW_ROWS) if isinstance(r, dict)]

_NOTES_CACHE: dict[str, list[str]] = {}


def notes_lines(source: str) -> list[str]:
    if source not in _NOTES_CACHE:
        path = NOTES_DIR / source
        assert path.is_file(), f"source file not found: {path}"
        _NOTES_CACHE[source] = _read_lines(path)
    return _NOTES_CACHE[source]


# --------------------------------------------------------------------------- heading paths

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")   # 7+ hashes is not a heading


def heading_paths(lines: list[str]) -> list[str]:
    """Heading path (levels >= 3, joined with ' > ') in force at each line (index 0 unused).

    Fenced code blocks are skipped: a fence closes only with the same character and at
    least as many characters as the opener, so nested/longer fences are handled.
    """
    paths = [""] * (len(lines) + 1)
    stack: dict[int, str] = {}
    fence = None
    for i, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
        elif m:
            fence = m.group(1)
        else:
            h = _HEADING.match(line)
            if h:
                level = len(h.group(1))
                stack = {k: v for k, v in stack.items() if k < level}
                stack[level] = h.group(2)
        paths[i] = " > ".join(stack[k] for k in sorted(stack) if k >= 3)
    return paths


_PATH_CACHE: dict[str, list[str]] = {}


def heading_path_at(source: str, line_no: int) -> str:
    if source not in _PATH_CACHE:
        _PATH_CACHE[source] = heading_paths(notes_lines(source))
    return _PATH_CACHE[source][line_no]


# --------------------------------------------------------------------------- per-record checks

@pytest.mark.parametrize("row", RAW_ROWS, ids=_row_id)
def test_record(row):
    lineno, raw = row
    rec = _parse(raw)
    assert isinstance(rec, dict), f"dataset line {lineno} is not a JSON object"
    rid = rec.get("id")

    assert isinstance(rid, str) and rid, "missing id"
    assert isinstance(rec.get("question"), str) and rec["question"].strip(), f"{rid}: empty question"
    assert rec.get("kind") in VALID_KINDS, f"{rid}: invalid kind {rec.get('kind')!r}"
    assert isinstance(rec.get("answerable"), bool), f"{rid}: 'answerable' must be a bool"

    kind = rec["kind"]
    if not rec["answerable"]:
        assert kind == "unanswerable", f"{rid}: answerable=false but kind={kind}"
        assert ID_PATTERNS["unanswerable"].match(rid), f"{rid}: unanswerable ids look like q-u01"
        missing = UNANSWERABLE_FIELDS - rec.keys()
        assert not missing, f"{rid}: missing fields {sorted(missing)}"
        for forbidden in ("gold_lines", "key_facts", "gold_heading"):
            assert forbidden not in rec, f"{rid}: unanswerable record must not have {forbidden}"
        return

    assert kind != "unanswerable", f"{rid}: kind unanswerable but answerable=true"
    missing = ANSWERABLE_FIELDS - rec.keys()
    assert not missing, f"{rid}: missing fields {sorted(missing)}"
    pattern = ID_PATTERNS["followup" if kind == "followup" else "answerable"]
    assert pattern.match(rid), f"{rid}: id does not match {pattern.pattern} for kind {kind}"
    assert isinstance(rec["reference_answer"], str) and rec["reference_answer"].strip(), f"{rid}: empty reference_answer"

    if "followup_kind" in rec:
        assert kind == "followup", f"{rid}: only follow-ups have a followup_kind"
        assert rec["followup_kind"] in FOLLOWUP_KINDS, f"{rid}: invalid followup_kind {rec['followup_kind']!r}"

    # follow-ups carry the earlier turns
    if kind == "followup":
        hist = rec.get("history")
        assert isinstance(hist, list) and hist, f"{rid}: follow-up needs a non-empty history"
        for turn in hist:
            assert isinstance(turn, dict) and set(turn) == {"role", "content"}, f"{rid}: bad history turn {turn!r}"
            assert turn["role"] in {"user", "assistant"}, f"{rid}: bad role {turn['role']!r}"
            assert isinstance(turn["content"], str) and turn["content"].strip(), f"{rid}: empty history content"
        assert hist[0]["role"] == "user", f"{rid}: history should start with a user turn"
    else:
        assert "history" not in rec, f"{rid}: only follow-ups carry history"

    # gold lines
    source = rec["source"]
    lines = notes_lines(source)
    gl = rec["gold_lines"]
    assert isinstance(gl, list) and len(gl) == 2 and all(type(x) is int for x in gl), f"{rid}: gold_lines must be [first, last]"
    first, last = gl
    assert 1 <= first <= last <= len(lines), f"{rid}: gold_lines {gl} outside 1..{len(lines)} or reversed"
    assert last - first + 1 <= MAX_GOLD_SPAN, f"{rid}: gold span {last - first + 1} lines is not tight"
    gold_text = "\n".join(lines[first - 1:last])
    assert gold_text.strip(), f"{rid}: gold lines are blank"

    # gold heading = heading path in force at the first gold line
    assert isinstance(rec["gold_heading"], str) and rec["gold_heading"], f"{rid}: empty gold_heading"
    expected = heading_path_at(source, first)
    assert rec["gold_heading"] == expected, f"{rid}: gold_heading {rec['gold_heading']!r} != {expected!r}"

    # key facts: each group has >= 1 alternative literally inside the gold text
    kf = rec["key_facts"]
    assert isinstance(kf, list) and kf, f"{rid}: key_facts must be a non-empty list of groups"
    haystack = gold_text.lower()
    for group in kf:
        assert isinstance(group, list) and group, f"{rid}: empty key-fact group"
        assert all(isinstance(a, str) and a.strip() for a in group), f"{rid}: bad alternative in {group!r}"
        assert any(a.lower() in haystack for a in group), (
            f"{rid}: no alternative of {group!r} occurs in gold lines {first}-{last}"
        )


# --------------------------------------------------------------------------- set-level checks

def test_all_lines_are_json_objects():
    bad = [lineno for lineno, raw in RAW_ROWS if not isinstance(_parse(raw), dict)]
    assert not bad, f"dataset lines that are not JSON objects: {bad}"


def test_ids_unique():
    counts = Counter(r.get("id") for r in RECORDS)
    dupes = sorted(str(k) for k, v in counts.items() if v > 1)
    assert not dupes, f"duplicate ids: {dupes}"


def test_dataset_size_and_mix():
    kinds = Counter(r.get("kind") for r in RECORDS)
    total = len(RECORDS)
    assert total >= 80, f"only {total} records"
    single_turn = total - kinds["followup"]  # the multi-turn items of issue 11 are a set of their own
    assert kinds["paraphrase"] / single_turn >= 0.40, f"paraphrase share {kinds['paraphrase']}/{single_turn} < 40%"
    assert kinds["followup"] >= 5, f"only {kinds['followup']} follow-ups"
    assert kinds["unanswerable"] >= 10, f"only {kinds['unanswerable']} unanswerable"
    for kind in ("factual", "why", "disambiguation"):
        assert kinds[kind] >= 8, f"only {kinds[kind]} {kind} records"


def test_gold_lines_cover_whole_file():
    by_source: dict[str, list[int]] = {}
    for r in RECORDS:
        if r.get("answerable") and isinstance(r.get("gold_lines"), list) and r["gold_lines"]:
            by_source.setdefault(r.get("source", DEFAULT_SOURCE), []).append(r["gold_lines"][0])
    assert DEFAULT_SOURCE in by_source, "no answerable records for the main notes file"
    n = len(notes_lines(DEFAULT_SOURCE))
    stretch = -(-n // N_STRETCHES)  # ceil
    counts = Counter(min((first - 1) // stretch, N_STRETCHES - 1) for first in by_source[DEFAULT_SOURCE])
    empty = [
        f"{i * stretch + 1}-{min((i + 1) * stretch, n)}"
        for i in range(N_STRETCHES)
        if counts[i] < 5
    ]
    assert not empty, f"stretches of {DEFAULT_SOURCE} with fewer than 5 answerable questions: {empty}"


def test_multi_turn_items_cover_every_followup_kind():
    """Issue 11: at least 10 multi-turn items of each kind, each with a user turn before the question."""
    kinds = Counter(r["followup_kind"] for r in RECORDS if "followup_kind" in r)
    assert set(kinds) == FOLLOWUP_KINDS and min(kinds.values()) >= 10, kinds
    assert sum(kinds.values()) >= 50


def test_topic_changes_never_carry_the_old_subject():
    """A self-contained new question is searched as asked: nothing of the earlier turns is added to it."""
    from assistant.followup import condense

    changes = [r for r in RECORDS if r.get("followup_kind") == "topic_change"]
    assert changes
    for r in changes:
        assert condense(r["question"], r["history"]) == r["question"], r["id"]
