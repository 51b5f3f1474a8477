"""``python -m eva_simulator`` runs the CLI."""

import sys

from eva_simulator.cli import main

sys.exit(main())
