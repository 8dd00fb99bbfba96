"""cffi builder for ``hdx._damage_native`` (out-of-line, API mode).

Used two ways:

* by setuptools, through ``cffi_modules=["native/build_damage.py:ffibuilder"]`` in setup.py,
  when the package is built or installed (``pip install .`` / ``pip install -e .``);
* as a script, ``python native/build_damage.py``, which compiles the extension in place as
  ``hdx/_damage_native.*.so`` next to the package sources (intermediate files go to
  ``native/_build/``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODULE = "hdx._damage_native"


def _cdef_text(header: Path) -> str:
    """The header less its preprocessor lines, which cffi's cdef() does not parse."""
    lines = header.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def make_ffibuilder(absolute_paths: bool = False) -> FFI:
    """A builder for the extension.

    setuptools wants source paths relative to the project root (its working directory during a
    build); cffi's own ``compile()`` runs from its temporary directory and needs absolute ones.
    """

    def path(p: Path) -> str:
        return str(p) if absolute_paths else os.path.relpath(p, ROOT).replace(os.sep, "/")

    builder = FFI()
    builder.cdef(_cdef_text(HERE / "damage.h"))
    builder.set_source(
        MODULE,
        '#include "damage.h"',
        sources=[path(HERE / "damage.c")],
        include_dirs=[path(HERE)],
        depends=[path(HERE / "damage.h")],
        extra_compile_args=[] if sys.platform == "win32" else ["-O3"],
    )
    return builder


ffibuilder = make_ffibuilder()


def build_in_place() -> Path:
    """Compile the extension and copy it into ``hdx/``; return the path of the copy.

    Other builds of the module left in ``hdx/`` (``pip install -e .`` names its build
    ``_damage_native.abi3.so``) are removed, so the import cannot pick a stale one.
    """
    builder = make_ffibuilder(absolute_paths=True)
    built = Path(builder.compile(tmpdir=str(HERE / "_build"), verbose=True))
    target = ROOT / "hdx" / built.name
    for stale in (ROOT / "hdx").glob("_damage_native.*"):
        if stale.suffix in (".so", ".pyd") and stale != target:
            stale.unlink()
    shutil.copy2(built, target)
    return target


if __name__ == "__main__":
    print(f"built {build_in_place()}")
