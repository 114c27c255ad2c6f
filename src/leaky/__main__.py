"""``python -m leaky`` runs the command line."""

from leaky.cli import main

main()
