"""cultura: culturally aware language models on Ray (CulturePark and Cultural Palette)."""

import os as _os

# Busy-waiting OpenMP threads slowed generation 6-10x on a shared 2-core machine; set before torch loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
