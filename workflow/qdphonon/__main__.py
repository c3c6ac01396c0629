"""``python -m qdphonon``: the same as the ``qdphonon`` console script."""

import sys

from qdphonon.cli import main

sys.exit(main())
