"""Make the package importable from a source checkout without installing it (an installed copy wins)."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("specmatch_latent_unet") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
