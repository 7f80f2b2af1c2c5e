"""``python -m seqae``: the same as the ``seqae`` console command."""

import sys

from seqae.cli import main

sys.exit(main())
