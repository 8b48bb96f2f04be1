"""The term modules: importing them imports no torch; their nn.Module classes are defined once, by name."""

import pickle
import subprocess
import sys

from specmatch.plugins import BUILTIN_PLUGINS

TERMS = [m for m in BUILTIN_PLUGINS if m.startswith("specmatch.regularizers.")]


def test_every_term_is_a_builtin_plugin():
    assert [m.rsplit(".", 1)[1] for m in TERMS] == ["kl", "esm", "dsm", "vavae", "eqvae", "scale_equivariance"]


def test_importing_the_terms_imports_no_torch():
    code = (f"import importlib, sys\nfor m in {TERMS!r}:\n    mod = importlib.import_module(m)\n"
            "    assert not hasattr(mod, 'NoSuchName')\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_module_classes_are_defined_once_and_found_by_name():
    from specmatch.regularizers import vavae

    first = vavae.VAVAERegularizer
    assert vavae.VAVAERegularizer is first and first.__qualname__ == "VAVAERegularizer"
    reg = first(vavae.VAVAEParams(), latent_channels=4, feature_dim=8)
    assert isinstance(reg.projection, vavae.VFProjection)
    copy = pickle.loads(pickle.dumps(reg))
    assert type(copy) is first and type(copy.projection) is vavae.VFProjection
