"""Ship the top-level flows/, locales/ and triage/ inside the package, with compiled catalogs.

The repository keeps content where translators and NGO staff expect it (flows/, locales/, triage/); a built wheel
carries a copy under bot/content/ so that `pip install .` works from any directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_content(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).parent
        target = Path(self.build_lib) / "bot" / "content"
        for name in ("flows", "locales", "triage"):
            if (target / name).exists():
                shutil.rmtree(target / name)
            shutil.copytree(root / name, target / name, ignore=shutil.ignore_patterns("*.mo", "__pycache__"))
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po_path in (target / "locales").glob("*/LC_MESSAGES/*.po"):
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file)
            with po_path.with_suffix(".mo").open("wb") as mo_file:
                write_mo(mo_file, catalog)


setup(cmdclass={"build_py": build_py_with_content})
