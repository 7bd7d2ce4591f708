"""python -m sdmae: the sdmae command (also under torchrun)."""

import sys

from sdmae.cli import main

sys.exit(main())
