"""The launcher `make run` uses: imports and workers first, then Streamlit's own `run` on app.py."""

from streamlit.web import cli

import ui.serve
from packviz import workers


def test_the_launcher_preloads_then_runs_app_py_with_the_options_given(monkeypatch):
    monkeypatch.setenv("PACKVIZ_WORKERS", "0")  # no worker processes in this test
    steps = []
    preload = ui.serve.preload
    monkeypatch.setattr(ui.serve, "preload", lambda: (preload(), steps.append("preload")))
    monkeypatch.setattr(workers, "start_workers", lambda: steps.append("workers"))
    monkeypatch.setattr(cli, "main", lambda args: steps.append(args))
    ui.serve.main(["--server.port", "8765", "--server.headless", "true"])
    assert steps == ["workers", "preload", ["run", str(ui.serve.APP), "--server.port", "8765",
                                            "--server.headless", "true"]]
    assert ui.serve.APP.name == "app.py" and ui.serve.APP.exists()
