"""WSGI entry point: `gunicorn rulewatch.wsgi:app`."""

from rulewatch import create_app

app = create_app()
