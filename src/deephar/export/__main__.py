"""``python -m deephar.export CKPT --out DIR [--int8 CROPS]`` (see ``deephar.export.cli``)."""

import sys

from deephar.export.cli import main

sys.exit(main())
