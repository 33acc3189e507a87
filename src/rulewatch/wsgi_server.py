"""Serving the WSGI app with gunicorn, configured from code."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from rulewatch.wsgi import app

        return app


def serve(host: str, port: int, workers: int) -> None:
    """Run gunicorn in the foreground until it is told to stop."""
    _Gunicorn({"bind": f"{host}:{port}", "workers": workers, "threads": 4,
               "accesslog": "-", "graceful_timeout": 10, "timeout": 60}).run()  # fmt: skip
