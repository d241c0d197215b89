"""Build hook: copy the top-level seccomp/ and policies/ into the wheel as trustbuild/_data/.

Everything else is declared in pyproject.toml. The directories at the repository root stay the
source of truth; an editable install reads them in place (trustbuild._internal.data).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = {"seccomp": ("*.json",), "policies": ("*.yaml", "keys/*.pub", "keys/README.md")}


class BuildPyWithData(build_py):
    """``build_py`` that also copies the shipped data files into ``trustbuild/_data``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for kind, patterns in DATA.items():
            src = ROOT / kind
            if not src.is_dir():
                raise SystemExit(f"setup.py: {src} is missing: build from a full checkout or sdist")
            dest = Path(self.build_lib) / "trustbuild" / "_data" / kind
            for pattern in patterns:
                for f in sorted(src.glob(pattern)):
                    target = dest / f.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, target)


setup(cmdclass={"build_py": BuildPyWithData})
