"""Questions made from the notes themselves, for ``notes-assistant tune``.

No golden labels and no LLM: each answerable question comes from one indexed chunk
and names that chunk's lines as its answer; each unanswerable one asks about a
name or a topic whose words occur nowhere in the notes.

Answerable, from a sample of chunks spread over the notes (``origin``):

- ``heading`` — the section's own title, asked as a question ("How does cross-region
  replication work?"); a title shared by several sections gets its parent's title too;
- ``bold`` — a bold phrase the note stresses ("What about **only one parent**?");
- ``definition`` — "X is …", "X: …", "X - …" lines → "What is X?";
- ``command`` — a section that holds a command or code → "How do I use <title>?";
- ``keywords`` — three or four of a sentence's rarer words, as a user who half
  remembers a note types them.

A fifth of them get one word of the asker's own that the notes never use ("… roughly?"),
as people's questions do (``_OWN_WORDS``).

Unanswerable: well-known products, tools and everyday topics (``ABSENT``) kept only
when none of their words occurs in the notes; a product is asked about alone or about
an aspect the notes do cover (half the words match), a topic inside a question of
ordinary length (one odd word among common ones). No name that a bundled golden set
asks about is in the list, so those sets stay held out.

Hand-written, no library: it reads our own chunk metadata and BM25 analysis.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from assistant.followup import content_words, written_like_a_name
from vectorstore.bm25 import analyze

__all__ = ["SyntheticQuestion", "ABSENT", "make_questions", "to_jsonl_record"]

ABSENT = (
    # software and services
    "Ansible", "Snowflake", "BigQuery", "RabbitMQ", "Elasticsearch",
    "MongoDB", "Cassandra", "CircleCI", "Grafana", "Prometheus", "Datadog", "Splunk", "Heroku", "Vercel",
    "Netlify", "Cloudflare", "Firebase", "Supabase", "Azure", "Airflow", "Databricks", "Tableau", "Salesforce",
    "Shopify", "Stripe", "Twilio", "Zendesk", "Jira", "Confluence", "Figma", "Photoshop", "Excel", "Blender", "Unity",
    "Unreal", "Kotlin", "Haskell", "Erlang", "Fortran", "COBOL", "Svelte", "Angular", "Xamarin", "Laravel",
    "Symfony", "Nomad", "Consul", "Vault", "Pulumi", "Istio", "Envoy", "Traefik", "HAProxy", "Nginx",
    "Varnish", "Memcached", "Neo4j", "CouchDB", "InfluxDB", "ClickHouse", "Pinecone", "Weaviate", "OpenShift",
    "Mesos", "Hadoop", "Spark", "Flink", "Storm", "Hive", "Presto", "Looker", "Mixpanel", "Amplitude", "Okta",
    "Auth0", "Keycloak", "Sentry", "PagerDuty", "Bitbucket", "Mercurial", "Perforce", "SharePoint", "Dynamics",
    # everyday topics
    "knitting", "mortgage", "guitar", "chess", "gardening", "tomatoes", "yoga", "skiing", "espresso", "vinyl",
    "aquarium", "origami", "pottery", "sailing", "birdwatching", "calligraphy", "bonsai", "crochet", "surfing",
    "beekeeping", "woodworking", "kombucha", "orchids", "tennis", "golf", "camping", "meditation",
)
_NAME_TEMPLATES = (
    "How do I set up {name}?", "What is {name} used for?", "How does {name} handle {aspect}?",
    "Can {name} do {aspect}?", "{name} {aspect} best practices?", "Where do I configure {aspect} in {name}?",
)
_TOPIC_TEMPLATES = (  # an everyday topic in a question of ordinary length: one odd word among common ones
    "What's a good way to get started with {name} as a complete beginner?",
    "How much time should I set aside each week for {name}?", "What do I need before I start with {name}?",
    "Is {name} worth it for someone with a busy schedule?", "What are common mistakes people make with {name}?",
)
_GENERIC = {"overview", "notes", "note", "misc", "miscellaneous", "introduction", "intro", "summary", "example",
            "examples", "resources", "links", "todo", "other", "general", "basics", "more", "details", "usage",
            "tips", "references", "reference", "see also", "faq", "questions", "about"}
_STOP_START = {"the", "a", "an", "this", "that", "these", "those", "it", "we", "you", "i", "they", "here", "there",
               "when", "because", "if", "so", "but", "and", "or", "also", "then", "now", "consider", "something",
               "note", "see", "e.g", "i.e", "example"}
_RARE = 5  # a "keywords" question needs a word found in at most this many chunks
# People ask in their own words: on the golden sets' tune halves 14 % (AWS) and 22 % (TIL) of the
# answerable questions hold a word the notes never use. Questions made from the notes hold none, so
# a share of them gets one such word, or abstention would be tuned as if nobody ever paraphrased.
_OWN_WORDS = ("roughly", "briefly", "honestly", "basically", "nowadays", "gotchas", "pitfalls", "caveats",
              "tradeoffs", "nuances", "painlessly", "cheaply", "ideally", "sensibly", "cleverly", "wisely")
_OWN_WORDS_SHARE = 0.2
_BOLD = re.compile(r"\*\*([^*\n]{3,60}?)\*\*")
_DEFINITION = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|`)?([A-Z][\w .+/()-]{1,40}?|(?:(?<=\*\*)|(?<=`))[a-z][\w .+/()-]{1,40}?)(?:\*\*|`)?"
    r"\s*(?:\bis\b|\bare\b|\bmeans\b|:|\s-\s|—)\s+\S.{8,}",
)
_COMMAND = re.compile(r"^\s*(?:```|\$ |    \S)|`[a-z][\w.-]* [^`]*-{1,2}\w[^`]*`", re.M)
_SENTENCE = re.compile(r"[^.!?\n]{30,}")


@dataclass(frozen=True)
class SyntheticQuestion:
    """One question; answerable ones carry the chunk they were made from (``source``, ``lines``)."""

    id: str
    question: str
    answerable: bool
    origin: str
    source: str | None = None
    lines: tuple[int, int] | None = None
    heading: str = ""


def to_jsonl_record(q: SyntheticQuestion) -> dict:
    """The golden-set format (``evals.dataset``), so ``notes-assistant eval --dataset`` can run the set too."""
    if not q.answerable:
        return {"id": q.id, "question": q.question, "answerable": False, "kind": "unanswerable", "origin": q.origin}
    return {"id": q.id, "question": q.question, "answerable": True, "kind": "keyword" if q.origin == "keywords"
            else "paraphrase", "source": q.source, "gold_lines": list(q.lines), "gold_heading": q.heading,
            "origin": q.origin}


def _leaf(heading: str) -> tuple[str, str]:
    parts = [p.strip() for p in heading.split(" > ") if p.strip()]
    return (parts[-1] if parts else "", parts[-2] if len(parts) > 1 else "")


def _clean(text: str) -> str:
    return " ".join(re.sub(r"[*`#\[\]]", "", text).split()).strip(" :;,-.")


def _named(term: str, wrapped: bool) -> bool:
    """A term worth asking "What is X?" about: emphasised by the note, or written like a name
    (every word capitalised, an acronym, letters with digits) — not a sentence's first words."""
    words = term.split()
    if not content_words(term) or words[0].lower() in _STOP_START:
        return False
    if wrapped:
        return True
    if len(words) == 1:
        return written_like_a_name(words[0])
    return all(w[:1].isupper() or not w[:1].isalpha() for w in words)


def _from_chunk(text: str, heading: str, leaf_count: Counter, doc_freq: Mapping[str, int], rng: random.Random):
    """Candidate (origin, question) pairs for one chunk, best-grounded first.

    A question must name its subject with at least two content words (or one written like a
    name): "Can you explain patterns?" asks nothing a reader could answer.
    """
    leaf, parent = _leaf(heading)
    title = _clean(leaf)
    if title.lower() in _GENERIC or leaf_count[leaf] > 1 or len(content_words(title)) <= 1:
        title = _clean(f"{parent} {leaf}") if parent else title
    out = []
    if title.lower() not in _GENERIC and (len(content_words(title)) >= 2 or _named(title, False)):
        # Template words are stop words only (``followup.content_words``): a word of ours that the notes
        # happen to lack would make the question look half unknown to abstention.
        template = rng.choice(("How does {t} work?", "Tell me about {t}", "What should I know about {t}?",
                               "Can you explain {t}?"))
        first = title.split()[0]
        plain = first[1:].islower() or not first[1:]  # "Moving", not "CloudFront" or "EC2"
        out.append(("heading", template.format(t=title[:1].lower() + title[1:] if plain else title)))
        if _COMMAND.search(text):
            out.append(("command", f"How do I use {title}?"))
    for match in _BOLD.finditer(text):
        phrase = _clean(match.group(1))
        if 2 <= len(content_words(phrase)) <= 6:
            out.append(("bold", f"What about {phrase}?"))
            break
    for line in text.splitlines():
        match = _DEFINITION.match(line)
        if match is None:
            continue
        term = _clean(match.group(1))
        wrapped = line.lstrip(" -*+").startswith(("**", "`"))
        if term and len(content_words(term)) <= 4 and term.lower() not in _GENERIC and _named(term, wrapped):
            out.append(("definition", f"What is {term}?"))
            break
    sentences = [s for s in _SENTENCE.findall(re.sub(r"[*`]", "", text)) if len(set(analyze(s))) >= 6]
    if sentences:
        words = {}  # term → the first word of the sentence that gives it
        for word in re.findall(r"[\w'-]+", rng.choice(sentences)):
            for term in analyze(" ".join(content_words(word))):
                words.setdefault(term, word.lower())
        rare = sorted(words, key=lambda t: doc_freq.get(t, 0))[: rng.choice((3, 4))]
        if len(rare) >= 3 and doc_freq.get(rare[0], 0) <= _RARE:  # at least one word that points somewhere
            picked = dict.fromkeys(words[t] for t in words if t in rare)  # in the sentence's order, once each
            out.append(("keywords", " ".join(picked) + "?"))
    return out


def make_questions(ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[Mapping], doc_freq: Mapping[str, int],
                   answerable: int = 150, unanswerable: int = 50, seed: int = 0) -> list[SyntheticQuestion]:
    """Up to ``answerable`` + ``unanswerable`` questions from the indexed chunks (deterministic for a seed).

    Args:
        ids / texts / metadatas: the index snapshot's chunks (metadata: source, heading, start_line, end_line).
        doc_freq: term → number of chunks holding it (``Bm25Index.doc_freq``).
    """
    rng = random.Random(seed)
    sections = {(m["source"], m.get("heading", "")) for m in metadatas}  # a long section is several chunks
    leaf_count = Counter(_leaf(heading)[0] for _, heading in sections)
    order = list(range(len(ids)))
    rng.shuffle(order)
    questions: list[SyntheticQuestion] = []
    seen: set[str] = set()
    origins: Counter = Counter()
    per_origin = max(1, answerable // 5)
    for i in order:  # one question per chunk, the least used origin first: a mix of all five
        if len(questions) >= answerable:
            break
        meta = metadatas[i]
        candidates = _from_chunk(texts[i], meta.get("heading", ""), leaf_count, doc_freq, rng)
        candidates.sort(key=lambda c: origins[c[0]] >= per_origin)
        for origin, question in candidates:
            if question.lower() in seen or not analyze(question):
                continue
            seen.add(question.lower())
            origins[origin] += 1
            questions.append(SyntheticQuestion(
                _qid("a", question), question, True, origin, meta["source"],
                (int(meta["start_line"]), int(meta["end_line"])), meta.get("heading", ""),
            ))
            break
    own = [w for w in _OWN_WORDS if all(not doc_freq.get(t) for t in analyze(w))]
    for n, q in enumerate(questions):
        if own and rng.random() < _OWN_WORDS_SHARE:
            stem = q.question.rstrip("?")
            stem = stem[: -len(" work")] if stem.endswith(" work") else stem  # "How does X work?" → "How does X …"
            questions[n] = replace(q, question=f"{stem} {rng.choice(own)}?")
    aspects = _aspects(metadatas, doc_freq)
    absent = [name for name in ABSENT if all(not doc_freq.get(t) for t in analyze(name))]
    rng.shuffle(absent)
    for n, name in enumerate(absent[:unanswerable]):
        templates = _NAME_TEMPLATES if name[0].isupper() else _TOPIC_TEMPLATES
        template = templates[n % len(templates)]
        aspect = rng.choice(aspects) if aspects else "pricing"
        question = template.format(name=name, aspect=aspect)
        questions.append(SyntheticQuestion(_qid("u", question), question, False, "absent name"))
    return questions


def _aspects(metadatas: Sequence[Mapping], doc_freq: Mapping[str, int]) -> list[str]:
    """Short, lower-case section titles of the notes: what an absent name is asked about."""
    titles = Counter(_clean(_leaf(m.get("heading", ""))[0]).lower() for m in metadatas)
    return sorted(t for t in titles if 1 <= len(t.split()) <= 3 and t not in _GENERIC and analyze(t)
                  and all(doc_freq.get(term) for term in analyze(t)))


def _qid(prefix: str, question: str) -> str:
    return f"syn-{prefix}-{hashlib.sha1(question.encode()).hexdigest()[:10]}"
