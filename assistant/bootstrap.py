"""The one process bootstrap, called first by every entry point (console script, ``app.py``).

It sets environment variables that libraries read when *they* are imported, so it
must run before gradio, huggingface_hub, transformers or numpy is imported. No
library module sets them at import time.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["PROCESS_ENV", "prepare_process"]

PROCESS_ENV = {
    # Nothing phones home and no model hub is ever asked: a blocked hub call costs seconds or hangs.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma; the client settings say so too
    "TOKENIZERS_PARALLELISM": "false",
    # One BLAS thread per request: the server runs many queries at once, and OpenBLAS's own thread pool
    # on a busy 2-core machine made one query encoding 10x slower (402 -> 31 ms; bench/load_test.py).
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Privacy settings are forced; performance ones only default (a user may raise the thread counts).
_FORCED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED",
           "ANONYMIZED_TELEMETRY")


def prepare_process(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the offline, telemetry and thread-count variables in ``environ`` (``os.environ``).

    >>> env = {"OMP_NUM_THREADS": "4", "HF_HUB_OFFLINE": "0"}
    >>> prepare_process(env)
    >>> env["HF_HUB_OFFLINE"], env["OMP_NUM_THREADS"], env["GRADIO_ANALYTICS_ENABLED"]
    ('1', '4', 'False')
    """
    environ = os.environ if environ is None else environ
    for key, value in PROCESS_ENV.items():
        if key in _FORCED:
            environ[key] = value
        else:
            environ.setdefault(key, value)
