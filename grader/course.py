"""Where things are: the course root, its assignments and notebooks, read from nbgrader_config.py."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
CONFIG_FILE = HERE / "nbgrader_config.py"
DEFAULT_ROOT = HERE.parent


def nbgrader_env() -> None:
    """nbgrader runs `alembic` as a subprocess: make the venv's bin directory visible."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path
    os.environ.setdefault("MPLBACKEND", "Agg")


def load_config(root: Path | None = None):
    """The traitlets Config from grader/nbgrader_config.py, with CourseDirectory.root = root."""
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    if root is not None:
        cfg.CourseDirectory.root = str(Path(root).resolve())
    return cfg


@dataclass
class Course:
    root: Path
    source_dirname: str = "solutions"
    release_dirname: str = "notebooks"

    @classmethod
    def at(cls, root: str | os.PathLike | None = None) -> "Course":
        root = Path(root or DEFAULT_ROOT).resolve()
        cfg = load_config(root)
        return cls(root, str(cfg.CourseDirectory.source_directory), str(cfg.CourseDirectory.release_directory))

    @property
    def source_dir(self) -> Path:
        return self.root / self.source_dirname

    @property
    def release_dir(self) -> Path:
        return self.root / self.release_dirname

    def assignments(self) -> list[str]:
        """Assignment folders in solutions/ that hold at least one notebook, sorted."""
        if not self.source_dir.is_dir():
            return []
        return sorted(p.name for p in self.source_dir.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))

    def select(self, names: list[str] | None) -> list[str]:
        known = self.assignments()
        if not names:
            return known
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown assignment(s) {unknown}; {self.source_dir} has {known}")
        return list(names)

    def source_notebooks(self, assignment: str) -> list[Path]:
        return sorted(p for p in (self.source_dir / assignment).glob("*.ipynb"))

    def release_notebook(self, assignment: str, name: str) -> Path:
        return self.release_dir / assignment / name

    def notebook_index(self) -> dict[str, tuple[str, Path]]:
        """notebook file name -> (assignment, source path), over all assignments."""
        return {p.name: (a, p) for a in self.assignments() for p in self.source_notebooks(a)}


def read_notebook(path: str | os.PathLike):
    """Read a notebook (any nbformat 4 minor); raises ValueError with the path if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
    except Exception as e:  # json errors, encoding errors, nbformat errors
        raise ValueError(f"{path}: not a readable notebook ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: not a readable notebook (no cell list)")
    return nb
