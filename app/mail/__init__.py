"""Reading and making mail safe: MIME, the part index, HTML to text, sanitizing. No database."""
