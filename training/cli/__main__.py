"""``python -m training.cli`` runs the ``dstudy`` command."""
import sys

from training.cli import main

sys.exit(main())
