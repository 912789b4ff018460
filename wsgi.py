"""WSGI entry point for servers of your choice: ``waitress-serve --call wsgi:create_app``."""

from app import create_app

app = create_app()
