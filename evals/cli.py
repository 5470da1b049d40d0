"""``notes-assistant eval``: run the golden set (or any dataset), write the report, enforce floors.

Registered lazily by ``assistant.cli`` (``eval`` → ``evals.cli:eval_command``), so
ranx, numba and matplotlib load only when an eval runs.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import click

from assistant.cli.options import global_options
from assistant.cli.output import (
    UserError, emit_json, ensure_index, make_engine, progress_bar, run_guarded, settings_from,
)
from assistant.settings import BACKENDS
from evals.errors import EvalError

__all__ = ["eval_command", "tune_command", "default_dataset", "default_out_dir", "parse_floors", "missed_floors"]

logger = logging.getLogger(__name__)


def default_dataset() -> Path:
    """The bundled golden set."""
    import evals

    return Path(evals.__file__).parent / "datasets" / "golden.jsonl"


def default_out_dir(now: datetime | None = None) -> Path:
    """``evals/reports/<YYYYmmdd-HHMMSS>/`` next to the evals package (gitignored); never an existing folder."""
    import evals

    root = Path(evals.__file__).parent / "reports"
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


def parse_floors(specs: tuple[str, ...], valid: list[str]) -> dict[str, float]:
    """``("hit@5=0.9",)`` → ``{"hit@5": 0.9}``; a bad spec or unknown metric is a ``UserError`` (exit 2)."""
    floors: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or math.isnan(number):
            raise UserError(f"--min {spec!r}: write METRIC=VALUE, e.g. --min hit@5=0.9")
        if name not in valid:
            raise UserError(f"--min {spec!r}: unknown metric {name!r}; valid metrics: {', '.join(valid)}")
        floors[name] = number
    return floors


def missed_floors(summary: dict, floors: dict[str, float]) -> list[str]:
    """One line per floor not met (an undefined metric misses its floor)."""
    missed = []
    for name, floor in floors.items():
        value = summary.get(name)
        if value is None:
            missed.append(f"{name} is not defined for this dataset (floor {floor})")
        elif value < floor:
            missed.append(f"{name} = {value:.4f} < {floor}")
    return missed


def _summary_text(result) -> str:
    from evals.report import SUMMARY_ROWS, fmt

    m = result.metrics
    lines = [(f"{m['counts']['questions']} questions ({m['counts']['answerable']} answerable), "
              f"{m['counts']['passed']} passed, in {m['timing_s']['total']:.1f} s")]
    lines += [f"  {name:<22}{fmt(m['summary'].get(name)):>8}" for name in SUMMARY_ROWS]
    for mode, values in m["retrieval"].items():
        if mode != "hybrid":
            lines.append(f"  {mode}: " + "  ".join(f"{k} {fmt(v)}" for k, v in values.items()))
    lat = m["latency_ms"].get("total")
    if lat:
        lines.append(f"  latency total p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
    if result.out_dir is not None:
        lines.append(f"report: {result.out_dir / 'report.md'}")
    return "\n".join(lines)


def _warn_skipped(dataset) -> None:
    for problem in dataset.problems:
        click.echo(f"warning: {dataset.path}:{problem.line}: {problem.message} (line skipped)", err=True)


@click.command("eval")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="JSONL dataset (default: the bundled golden set).")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="Answerer to evaluate (default: settings).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Report folder (default: evals/reports/<timestamp>/).")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path), default=None,
              help="A previous report folder: print deltas, significance and pass→fail flips.")
@click.option("--min", "floors", multiple=True, metavar="METRIC=VALUE",
              help="Exit 1 when METRIC is below VALUE (repeatable), e.g. --min hit@5=0.9.")
@click.option("--ablate", is_flag=True, help="Also score dense-only and BM25-only retrieval.")
@click.option("--sweep", "sweeps", multiple=True, metavar="SETTING=V1,V2,…",
              help="Evaluate each value (repeatable: all combinations), e.g. --sweep chunk_tokens=128,256,384.")
@click.option("--llm-base-url", default=None, help="OpenAI-compatible or Ollama base URL (LLM backends).")
@click.option("--llm-model", default=None, help="LLM model name (LLM backends).")
@click.option("--json", "as_json", is_flag=True, help="Print only the metrics object as JSON on stdout.")
@click.option("--split", type=click.Choice(("tune", "report")), default=None,
              help="Only the questions of one half (stable by a hash of the id): tune on one, report the other.")
@global_options
@click.pass_context
def eval_command(ctx, dataset_path, backend, out_dir, compare_dir, floors, ablate, sweeps, llm_base_url, llm_model,
                 as_json, split):
    """Measure retrieval and answer quality on a question set; write metrics, report and charts."""
    from evals.metrics import metric_names

    settings = settings_from(ctx, backend=backend, llm_base_url=llm_base_url, llm_model=llm_model)
    floors = parse_floors(floors, metric_names(ablate))
    dataset_path = dataset_path or default_dataset()
    out_dir = out_dir or default_out_dir()
    # Before the run, not after it: an existing folder is reused (.ci/run relies on it), anything else is refused.
    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"--out {out_dir}: {existing} exists and is not a folder; choose a folder path")
    if sweeps:
        if compare_dir is not None or floors:
            raise UserError("--sweep prints a comparison table; run --compare/--min without --sweep")
        return _sweep(settings, dataset_path, out_dir, backend, ablate, sweeps, as_json, split)
    previous = None
    if compare_dir is not None:
        from evals.compare import load_run

        try:
            previous = load_run(compare_dir)
        except EvalError as e:
            raise UserError(str(e)) from e

    def run():
        from assistant.service import Assistant
        from evals.dataset import corpus_lines, load_dataset, select_split
        from evals.runner import execute

        engine = make_engine(settings)
        ensure_index(engine)
        dataset = load_dataset(dataset_path, corpus_lines(settings.notes_path))
        _warn_skipped(dataset)
        dataset = select_split(dataset, split)
        with progress_bar("eval", "q") as update:
            return execute(Assistant(engine, settings), dataset_path, out_dir, ablate, backend, update, previous,
                           dataset)

    result = _guarded(run)
    _warn_fallbacks(result.metrics)
    if as_json:
        emit_json(result.metrics)
    else:
        click.echo(_summary_text(result))
        if result.metrics.get("compare"):
            from evals.compare import format_comparison

            click.echo(format_comparison(result.metrics["compare"]))
    missed = missed_floors(result.metrics["summary"], floors)
    for line in missed:
        click.echo(f"floor missed: {line}", err=True)
    if missed:
        ctx.exit(1)


def _warn_fallbacks(metrics: dict) -> None:
    """Say so when an LLM backend was asked for but answers came from the extractive fallback."""
    wanted = metrics["config"]["backend"]
    fallback = metrics["backends_used"].get("extractive", 0)
    if wanted != "extractive" and fallback:
        click.echo(f"warning: {fallback} of {metrics['counts']['questions']} answers came from the extractive fallback "
                   f"({wanted} was unavailable for them; see \"notices\" in per_question.jsonl)", err=True)


def _guarded(fn):
    try:
        return run_guarded(fn)
    except EvalError as e:
        raise UserError(str(e)) from e
    except ImportError as e:  # an optional backend's package is missing
        raise UserError(f"cannot run the eval: {e}; install the missing package or choose --backend extractive") from e


def _sweep(settings, dataset_path, out_dir, backend, ablate, sweeps, as_json, split=None) -> None:
    from evals.report import write_json
    from evals.sweep import format_sweep_table, parse_sweeps, run_sweep, sweep_configs

    try:
        configs = sweep_configs(parse_sweeps(sweeps))
    except EvalError as e:
        raise UserError(str(e)) from e
    click.echo(f"sweep: {len(configs)} configurations on {dataset_path}", err=True)
    with ExitStack() as bars:

        def progress_factory(label: str):
            bars.close()  # one bar at a time: the previous configuration's is done
            return bars.enter_context(progress_bar(label, "q"))

        results = _guarded(lambda: run_sweep(settings, dataset_path, configs, out_dir, backend, ablate,
                                             prepare=ensure_index, progress_factory=progress_factory, split=split))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "sweep.json", results)
    (out_dir / "sweep.md").write_text("# Sweep\n\n" + format_sweep_table(results, markdown=True), encoding="utf-8")
    if as_json:
        emit_json({"sweep": results})
    else:
        click.echo(format_sweep_table(results))
        click.echo(f"reports: {out_dir}")


TUNE_METRICS = ("hit@1", "mrr@10", "key_fact_recall", "citation_hit", "abstention_recall", "answerable_answered")


@click.command("tune")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="Your own golden set, scored before and after (default: the bundled one when it fits the notes).")
@click.option("--split", type=click.Choice(("tune", "report")), default=None, help="Only one half of that golden set.")
@click.option("--questions", "answerable", type=click.IntRange(20, 2000), default=150, show_default=True,
              help="Answerable questions to make from the notes (a third as many unanswerable ones are added).")
@click.option("--reset", is_flag=True, help="Delete the stored calibration: the defaults apply again.")
@click.option("--json", "as_json", is_flag=True, help="Print only the result as JSON on stdout.")
@global_options
@click.pass_context
def tune_command(ctx, dataset_path, split, answerable, reset, as_json):
    """Calibrate fusion weights and abstention thresholds on questions made from your notes, and keep them.

    The values are stored in the data dir (calibration.json) and used from the next
    question on, by this command's index configuration; settings you set explicitly
    (NOTES_ASSISTANT_BM25_WEIGHT, …) still win.
    """
    from assistant.calibration import CalibrationError, calibration_path, reset_calibration

    settings = settings_from(ctx)
    path = calibration_path(settings.data_dir)
    if reset:
        try:
            existed = reset_calibration(settings.data_dir)
        except CalibrationError as e:
            raise UserError(str(e)) from e
        if as_json:
            emit_json({"removed": existed, "path": str(path)})
        else:
            click.echo(f"removed {path}; the defaults apply" if existed else f"no calibration at {path}; the defaults apply")
        return
    engine = make_engine(settings)
    golden = _tune_dataset(settings, dataset_path, split)

    def run() -> dict:
        from evals.tune import TuneError, calibrate

        ensure_index(engine)
        before = _golden_summary(engine, settings, golden, "golden before") if golden else None
        click.echo("tune: making questions from your notes and scoring each setting…", err=True)
        try:
            result = calibrate(engine, answerable)
        except TuneError as e:
            raise UserError(str(e)) from e
        after = _golden_summary(engine, settings, golden, "golden after") if golden else None
        return {"calibration": engine.calibration.to_json(), "saved": str(path),
                "questions": result.stored.report["questions"],
                "synthetic": {"before": result.before.to_json(), "after": result.after.to_json()},
                "golden": {"dataset": str(golden.path), "split": split, "before": before, "after": after} if golden else None}

    out = _guarded(run)
    if as_json:
        emit_json(out)
        return
    click.echo(_tune_text(out))


def _tune_dataset(settings, dataset_path: Path | None, split: str | None):
    """The golden set to score before/after: the one given, or the bundled one if its notes are these notes."""
    from evals.dataset import corpus_lines, load_dataset, select_split

    corpus = corpus_lines(settings.notes_path) if Path(settings.notes_path).exists() else {}
    if dataset_path is None:
        dataset_path = default_dataset()
        asked_about = {json.loads(line).get("source") for line in dataset_path.read_text(encoding="utf-8").splitlines()
                       if line.strip()} - {None}
        if not asked_about or not asked_about <= set(corpus):
            click.echo("tune: the bundled golden set is about other notes; pass --dataset for before/after on yours",
                       err=True)
            return None
    try:
        dataset = load_dataset(dataset_path, corpus)
    except EvalError as e:
        raise UserError(str(e)) from e
    _warn_skipped(dataset)
    return select_split(dataset, split)


def _golden_summary(engine, settings, dataset, label: str) -> dict:
    from assistant.service import Assistant
    from evals.runner import execute

    with progress_bar(label, "q") as update:
        result = execute(Assistant(engine, settings), dataset.path, None, False, None, update, dataset=dataset)
    return {name: result.metrics["summary"].get(name) for name in TUNE_METRICS}


def _tune_text(out: dict) -> str:
    from evals.report import fmt

    c = out["calibration"]
    fusion = ", ".join(f"{k} {v:g}" for k, v in c["fusion"].items())
    abstention = ", ".join(f"{k} {v:g}" for k, v in c["abstention"].items())
    q = out["questions"]
    lines = [f"{q['answerable']} answerable + {q['unanswerable']} unanswerable questions made from your notes",
             f"  fusion:     {fusion}", f"  abstention: {abstention}", "",
             f"  {'':<34}{'before':>8}{'after':>8}"]
    for name in ("hit@1", "mrr@10", "answered", "abstention_recall"):
        s = out["synthetic"]
        lines.append(f"  {'synthetic ' + name:<34}{fmt(s['before'][name]):>8}{fmt(s['after'][name]):>8}")
    if out["golden"]:
        g = out["golden"]
        for name in TUNE_METRICS:
            lines.append(f"  {'golden ' + name:<34}{fmt(g['before'][name]):>8}{fmt(g['after'][name]):>8}")
        lines.append(f"  (golden: {g['dataset']}{', ' + g['split'] + ' half' if g['split'] else ''}; never used to tune)")
    lines.append(f"saved: {out['saved']} — used from the next question on; notes-assistant tune --reset goes back "
                 "to the defaults")
    return "\n".join(lines)
