"""``python -m deephar.convert weights.h5 out.pt --model mpii|h36m|penn|ntu [--blocks K]``."""

import sys

from deephar.convert import main

sys.exit(main())
