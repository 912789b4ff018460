"""What a search box may hold, for every list the portal searches."""

from __future__ import annotations

#: longer searches are cut to this: no one types more into a search box, and SQLite
#: refuses a LIKE pattern of more than 50,000 bytes ("LIKE or GLOB pattern too complex")
MAX_SEARCH = 200


def search_text(query: str | None) -> str:
    """The text to look for: without surrounding spaces, at most :data:`MAX_SEARCH` long."""
    return (query or "").strip()[:MAX_SEARCH]
