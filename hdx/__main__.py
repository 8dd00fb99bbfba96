"""``python -m hdx`` is the ``hdx`` command."""

import sys

from hdx.cli import main

sys.exit(main())
