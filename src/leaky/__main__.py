"""``python -m leaky`` runs the command line."""

from leaky.app.cli import main

main()
