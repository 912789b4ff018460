"""Domain logic in plain functions: no Flask request, no SMTP session."""
