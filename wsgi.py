"""WSGI entry point: `gunicorn wsgi:app`."""

from helpdesk.app import create_app

app = create_app()
