"""The project's scripts (`scripts/<name>.py`: the pinned third-party servers, the manifest validator) loaded as
modules for tests; they are plain files, not packages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[4]


def load_script(name: str) -> ModuleType:
    """`scripts/<name>.py` as a module (registered in sys.modules: dataclasses resolve annotations through it)."""
    module_name = f"eva_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "scripts" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no script scripts/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
