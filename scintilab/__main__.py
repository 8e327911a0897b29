"""``python -m scintilab`` runs the console command."""

import sys

from scintilab.cli import main

sys.exit(main())
