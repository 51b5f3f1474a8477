"""Tests of the scripts under scripts/ (run by `make test` through scripts/test.sh). The scripts are not a package:
put their folder on sys.path, as they do for each other."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
