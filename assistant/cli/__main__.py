"""``python -m assistant.cli`` = the ``notes-assistant`` console script."""

from assistant.cli.root import main

main()
