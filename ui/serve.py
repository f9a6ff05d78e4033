"""Serve the app with its heavy imports done before the first visitor comes.

    python -m ui.serve [streamlit run options]      # what `make run` does

``streamlit run app.py`` imports torch, Plotly and the packer inside the first
visitor's run. Those imports hold the GIL for seconds at a time, and meanwhile
Streamlit's event loop (a thread of the same process) sends nothing, not even the
title and the spinner the page shows before them: the first visitor looks at a
blank page. Here they are imported first, the packing workers (packviz.workers)
start and warm up, and only then does the server listen, so its health check answers when it
can serve a page at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"
# at most this long; after it the app serves anyway, packing in its own process until they are warm
WORKERS_WAIT_S = 60.0


def preload() -> None:
    """Import what the pages import (torch, Plotly, the packer), and start the packing workers."""
    import plotly.io  # noqa: F401  (Streamlit's plotly_chart imports it on first use)

    import packviz.cost
    import packviz.io.export
    import packviz.viz.figures  # noqa: F401

    # Not ui.*: their st.cache_data functions, set up before Streamlit's runtime exists,
    # would warn and fall back to a storage of their own instead of the runtime's.
    from packviz.workers import start_workers, worker_count, workers_ready

    start_workers()
    if worker_count() == 0:  # PACKVIZ_WORKERS=0: every run in the server's own threads
        return
    # and warm: spawning them beside the first visitor's run would take its cores
    deadline = time.monotonic() + WORKERS_WAIT_S
    while not workers_ready() and time.monotonic() < deadline:
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    preload()
    from streamlit.web import cli

    cli.main(["run", str(APP), *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
