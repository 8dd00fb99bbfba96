"""Build hook for the native change detector (everything else lives in pyproject.toml).

cffi compiles ``native/damage.c`` into ``hdx._damage_native``. Without a C compiler the package
still installs, and ``hdx.damage`` uses its numpy twin (same results, ~3x slower).
"""

import os
import shutil
import sys

from setuptools import setup

compiler = os.environ.get("CC", "cc").split()[0]
if shutil.which(compiler):
    setup(cffi_modules=["native/build_damage.py:ffibuilder"])
else:
    print(f"hdx: no C compiler ({compiler!r}); installing without the native change detector",
          file=sys.stderr)
    setup()
