"""``--sweep``: evaluate several settings on the same dataset and print one comparison table.

Chunking settings need their own index: each distinct chunking is indexed into a
temporary data dir that shares the embedding cache (``embedding_cache_dir``), so a
chunk already embedded once is never embedded again. Retrieval-only settings
(fusion weights, rrf_k, mmr, top_k) reuse the index of their chunking.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from evals.errors import EvalError

__all__ = ["SWEEPABLE", "INDEX_SETTINGS", "TABLE_METRICS", "parse_sweeps", "sweep_configs", "run_sweep", "format_sweep_table"]

logger = logging.getLogger(__name__)

INDEX_SETTINGS = ("chunk_tokens", "chunk_overlap")
SWEEPABLE = (*INDEX_SETTINGS, "dense_weight", "bm25_weight", "rrf_k", "mmr", "top_k")
TABLE_METRICS = ("hit@1", "hit@5", "mrr@10", "ndcg@10", "key_fact_recall", "citation_hit", "groundedness",
                 "abstention_f1", "pass_rate")


def parse_sweeps(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["chunk_tokens=128,256", "bm25_weight=0.5,1"]`` → ``{"chunk_tokens": ["128", "256"], …}``.

    Raises:
        EvalError: a spec is not ``SETTING=V1,V2,…`` or names a setting that cannot be swept.
    """
    sweeps: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not items:
            raise EvalError(f"--sweep {spec!r}: write SETTING=V1,V2,… e.g. --sweep chunk_tokens=128,256,384")
        if name not in SWEEPABLE:
            raise EvalError(f"--sweep {spec!r}: cannot sweep {name!r}; choose one of {', '.join(SWEEPABLE)}")
        sweeps[name] = list(dict.fromkeys(items))
    return sweeps


def sweep_configs(sweeps: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of the swept values (cartesian product), in the order given.

    >>> sweep_configs({"chunk_tokens": ["128", "256"], "bm25_weight": ["1"]})
    [{'chunk_tokens': '128', 'bm25_weight': '1'}, {'chunk_tokens': '256', 'bm25_weight': '1'}]
    """
    names = list(sweeps)
    return [dict(zip(names, combo)) for combo in itertools.product(*(sweeps[n] for n in names))]


def _label(config: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


def _folder(config: Mapping[str, str]) -> str:
    return "_".join(f"{k}-{v}" for k, v in config.items()).replace("/", "-")


def run_sweep(base_settings, dataset_path: Path, configs: Sequence[Mapping[str, str]], out_dir: Path,
              backend: str | None = None, ablate: bool = False,
              prepare: Callable[[object], None] | None = None,
              progress_factory: Callable[[str], Callable[[int, int], None] | None] | None = None,
              split: str | None = None) -> list[dict]:
    """Evaluate each config; return one entry per config (label, settings, chunks, summary, latency, out_dir).

    Args:
        base_settings: the settings every config overrides.
        dataset_path: the dataset to run for each config.
        configs: ``sweep_configs`` output.
        out_dir: each config's full report goes to ``out_dir/<setting-value_…>/``.
        backend: answerer override.
        ablate: also score dense-only and BM25-only retrieval per config.
        prepare: called with each new engine to build/refresh its index (the CLI shows progress);
            default ``engine.ensure_index()``.
        progress_factory: label → per-question progress callback.
        split: only the "tune" or "report" half of the dataset (``evals.dataset.select_split``).

    Raises:
        SettingsError: a swept value is invalid for its setting.
        EvalError: chunking is swept against a Chroma server (only the embedded store gets temp indexes).
    """
    from assistant.engine import Engine
    from assistant.service import Assistant
    from evals.dataset import corpus_lines, load_dataset, select_split
    from evals.runner import execute

    dataset = None
    if split is not None:
        dataset = select_split(load_dataset(dataset_path, corpus_lines(base_settings.notes_path)), split)
    variants = [(config, base_settings.with_overrides(**config)) for config in configs]  # validate all first
    changes_index = any(getattr(s, k) != getattr(base_settings, k) for _, s in variants for k in INDEX_SETTINGS)
    if changes_index and base_settings.server_mode:
        raise EvalError("--sweep of chunk_tokens/chunk_overlap needs the embedded store (temporary indexes); "
                        "unset --chroma-host or sweep only fusion settings")
    prepare = prepare or (lambda engine: engine.ensure_index())
    results = []
    clients: dict[tuple, object] = {}
    with tempfile.TemporaryDirectory(prefix="na-sweep-") as tmp:
        for config, settings in variants:
            key = tuple(getattr(settings, k) for k in INDEX_SETTINGS)
            if key != tuple(getattr(base_settings, k) for k in INDEX_SETTINGS):
                settings = settings.with_overrides(
                    data_dir=Path(tmp) / "-".join(str(k) for k in key), embedding_cache_dir=base_settings.cache_dir,
                )
            engine = Engine(settings, client=clients.get(key))
            if key not in clients:
                prepare(engine)
                clients[key] = engine.client
            label = _label(config)
            logger.info("sweep config=%s data_dir=%s", label, settings.data_dir)
            progress = progress_factory(label) if progress_factory else None
            result = execute(Assistant(engine, settings), dataset_path, Path(out_dir) / _folder(config), ablate,
                             backend, progress, dataset=dataset)
            results.append({
                "label": label, "settings": dict(config), "chunks": result.metrics["config"]["chunks"],
                # A chunking variant is another index configuration: the stored calibration is not its own.
                "calibration": engine.calibration.origin["abstention"],
                "summary": result.metrics["summary"], "latency_ms": result.metrics["latency_ms"],
                "out_dir": str(result.out_dir),
            })
    return results


def format_sweep_table(results: Sequence[Mapping], markdown: bool = False) -> str:
    """One row per config, one column per metric of ``TABLE_METRICS``; the best value per column is starred."""
    from evals.report import fmt

    header = ["config", "chunks", *TABLE_METRICS, "p50 ms"]
    best = {m: max((r["summary"].get(m) for r in results if r["summary"].get(m) is not None), default=None)
            for m in TABLE_METRICS}
    mixed = len({r.get("calibration") for r in results}) > 1
    rows = []
    for r in results:
        cells = [r["label"] + (" †" if mixed and r.get("calibration") == "default" else ""), str(r["chunks"])]
        for m in TABLE_METRICS:
            v = r["summary"].get(m)
            cells.append(fmt(v) + ("*" if v is not None and v == best[m] and len(results) > 1 else ""))
        cells.append(fmt(r["latency_ms"].get("total", {}).get("p50"), 0))
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        note = "\n† default thresholds: the stored calibration belongs to another index configuration\n" if mixed else ""
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n" + note
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    note = "\n(† default thresholds: the stored calibration belongs to another index configuration)" if mixed else ""
    return "\n".join(out) + "\n(* best in its column)" + note
