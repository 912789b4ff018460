"""``python -m app``: the ``ccm`` command, for processes that start others of their own
(``ccm smtp``'s siblings) whatever the name the command was installed under."""

from app.cli import main

main()
