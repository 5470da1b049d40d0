"""The extractive answerer's quoting (issue 11, item 3): markers outside code, citations on exactly the quoted lines,
the fix rather than the setup, lead-ins never left dangling."""

from __future__ import annotations

import re

import pytest

from assistant.citations import quote_unit as render_unit

MARKER = re.compile(r"\[(\d+)\]")


def _marker_places(markdown: str) -> dict[str, list[str]]:
    """Where ``[n]`` markers land once markdown-it parses ``markdown``: {"text": [...], "code": [...]}."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable(["table"])
    places: dict[str, list[str]] = {"text": [], "code": []}
    for token in md.parse(markdown):
        if token.type in ("fence", "code_block"):
            places["code"] += MARKER.findall(token.content)
        for child in token.children or ():
            if child.type == "code_inline":
                places["code"] += MARKER.findall(child.content)
            elif child.type == "text":
                places["text"] += MARKER.findall(child.content)
    return places


UNITS = [
    "- **a** b",
    "plain sentence.",
    "1. first step",
    "- 🙂",
    "x",
    "```sh\nmake build --jobs 4\n```",
    "~~~\nwith ``` inside\n~~~",
    "    make build --jobs 4",
    "- To grant read access I ran:\n\n      GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporter;",
    "- Run:\n  ```\n  make\n  ```",
    "Set it in the config:\n\n```toml\n[tool]\nx = 1\n```",
    "| flag | meaning |\n|---|---|\n| --quokka | render quokkas |",
    "> Read more: the quokka guide",
    "- uses `arr[0]` and `--force-with-lease`",
    "```bash\n$ uv run pytest\n=== test session starts ===",  # a long block cut before its closing fence
    "collected 3 items [100%]\n```",  # …and the piece after it
    "- Run:\n  ```\n  make [0]",
]


@pytest.mark.parametrize("text", UNITS)
def test_marker_lands_in_text_never_in_code(text):
    rendered = render_unit(text, 7)
    places = _marker_places(rendered)
    assert places["text"] == ["7"], rendered
    assert "7" not in places["code"], rendered


def test_indented_code_stays_code_and_tables_keep_their_cells():
    from markdown_it import MarkdownIt

    rendered = render_unit("    make build --jobs 4", 1)
    assert rendered.startswith("```\nmake build --jobs 4\n```")
    md = MarkdownIt("commonmark").enable(["table"])
    table = md.render(render_unit("| flag | meaning |\n|---|---|\n| --quokka | render quokkas |", 2))
    assert "<td>render quokkas</td>" in table and table.count("<td>") == 2 and "[2]" in table


def test_answers_on_the_golden_set_put_every_marker_outside_code(golden_answers_quick):
    for record, answer in golden_answers_quick:
        if answer.abstained:
            continue
        places = _marker_places(answer.answer)
        assert not places["code"], (record["id"], answer.answer)
        assert {int(n) for n in places["text"]} == {c.n for c in answer.citations}, record["id"]


def test_citations_cover_only_quoted_lines(golden_answers_quick):
    """A citation never spans unquoted lines (was: lines 3–19 cited while quoting 3 and 19 only)."""
    from tests.conftest import BUNDLED_NOTES

    lines = BUNDLED_NOTES.read_text(encoding="utf-8").split("\n")
    for record, answer in golden_answers_quick:
        for citation in answer.citations:
            quoted = [p.strip() for p in citation.text.split("\n") if p.strip()]
            for number in range(citation.start_line, citation.end_line + 1):
                line = lines[number - 1].strip()
                if line:
                    assert any(line in p or p in line for p in quoted), (record["id"], number, line)


@pytest.fixture(scope="module")
def golden_answers_quick(assistant, golden):
    return [(r, assistant.ask(r["question"], r.get("history", ()))) for r in golden[:120]]


# -- the fix, not the setup ---------------------------------------------------------------------------------------
HOWTO = {
    "quokka/run-a-migration-script-in-a-container.md": """# Run A Migration Script In A Container

I keep my quokkadb schema changes in plain SQL files and apply them by hand
while I experiment with the schema outside of any framework tooling.

With a local quokkadb install I'd pipe the file into the client like so:

```bash
$ quokkadb-cli < migrate.sql
```

When I tried the same pipe through the container runtime, it was silently
doing nothing. The redirection is not handled across the container boundary.

I ran this instead:

```bash
$ quokkactl cp migrate.sql db-1:/tmp/migrate.sql
$ quokkactl exec db-1 quokkadb-cli --file /tmp/migrate.sql
```

Here is the output it printed:

```
MIGRATED 3 tables
```
""",
    "quokka/kick-other-clients-off-a-shared-session.md": """# Kick Other Clients Off A Shared Session

Several people can attach to the same wombat terminal session to pair. When
someone forgets to detach, their client hangs around in the session.

Hit

    <prefix> D

to open a list of every client attached to the session, pick the stale one
and press enter to detach it.
""",
    "quokka/list-the-tables.md": """# List The Tables

To see every table of the current quokkadb database, run:

```bash
$ quokkadb-cli --list-tables
```
""",
}


@pytest.fixture(scope="module")
def howto_assistant(tmp_path_factory, embedding_cache, embedder):
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("howto")
    for name, text in HOWTO.items():
        (root / "notes" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "notes" / name).write_text(text, encoding="utf-8")
    settings = load_settings({}, notes_path=root / "notes", data_dir=root / "index", embedding_cache_dir=embedding_cache)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return Assistant(engine, settings)


def test_the_command_after_i_ran_wins_over_the_problem_and_the_output(howto_assistant):
    answer = howto_assistant.ask(
        "Piping a SQL file into the quokkadb client inside the container silently does nothing. "
        "How can I run my migration script against the database in the container?")
    assert not answer.abstained
    assert "quokkactl cp migrate.sql" in answer.answer and "--file /tmp/migrate.sql" in answer.answer
    fix_line = HOWTO["quokka/run-a-migration-script-in-a-container.md"].split("\n").index(
        "$ quokkactl cp migrate.sql db-1:/tmp/migrate.sql") + 1
    assert any(c.start_line <= fix_line <= c.end_line for c in answer.citations)


def test_an_unfinished_lead_in_comes_with_the_code_it_introduces(howto_assistant):
    answer = howto_assistant.ask("How do I kick a stale client off a shared wombat terminal session?")
    assert "<prefix> D" in answer.answer  # was: "- Hit [1]" and nothing after it
    assert "- Hit [1]\n\n- to open" not in answer.answer


QUESTIONS = [
    "How do I run a migration script in the container?",
    "How do I list the tables of a quokkadb database?",
    "How do I kick someone off my shared wombat session?",
    "What did the migration print?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_lead_in_never_ends_an_answer(howto_assistant, question):
    answer = howto_assistant.ask(question)
    blocks = [MARKER.sub("", b).strip() for b in re.split(r"\n\n(?=\S)", answer.answer)[1:]]
    blocks = [b for b in blocks if b]
    for i, block in enumerate(blocks):
        if block.endswith(":"):
            assert i + 1 < len(blocks), (question, answer.answer)


def test_wants_fix_reads_how_why_and_keyword_questions():
    from assistant.answerers.extractive import wants_fix

    assert wants_fix("How do I undo a hard reset?") and wants_fix("Why is my index not used?")
    assert wants_fix("tmux change prefix key") and wants_fix("Is there a faster way to count rows?")
    assert wants_fix("I worry about UPDATE without WHERE. Can the client refuse it?")
    assert not wants_fix("What is S3 versioning?") and not wants_fix("In what format is the TTL stored?")


def test_a_short_note_is_quoted_whole_so_the_fix_after_the_setup_is_in_the_answer(tmp_path, make_settings, embedder):
    """TIL-style notes state a problem, show what failed, then the fix. Quoting the best 4 units of such
    a note often stopped before the fix (TIL tune half: key-fact recall 0.898); a short note is one answer."""
    from assistant.engine import Engine
    from assistant.service import Assistant

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "force-push.md").write_text(
        "# Shorthand To Force Push A Branch\n\n"
        "If your local branch differs in its history from the remote branch, git refuses the push.\n\n"
        "You can override the remote by force pushing, for example with the force flag:\n\n"
        "```bash\n$ git push --force origin main\n```\n\n"
        "That rejected push happens a lot after an interactive rebase of the branch.\n\n"
        "The remote then shows the old commits until you push again.\n\n"
        "A shorter way is to prefix the branch name with a plus sign:\n\n"
        "```bash\n$ git push origin +main\n```\n\n"
        "In a team, prefer `--force-with-lease` so you do not overwrite commits you have not pulled.\n",
        encoding="utf-8",
    )
    (notes / "other.md").write_text("# Rebase\n\nAn interactive rebase rewrites the branch history.\n\n"
                                    "## Autosquash\n\nUse `--autosquash` to fold fixup commits.\n", encoding="utf-8")
    engine = Engine(make_settings(notes), embedder=embedder)
    engine.index()
    assert "force-push.md" in engine.retriever.snapshot.whole_notes and "other.md" not in engine.retriever.snapshot.whole_notes
    answer = Assistant(engine).ask("git refuses my push after I rewrote the branch history; how do I overwrite the remote?")
    assert not answer.abstained
    assert "+main" in answer.answer and "--force-with-lease" in answer.answer
    assert [c.source for c in answer.citations] == ["force-push.md"]
