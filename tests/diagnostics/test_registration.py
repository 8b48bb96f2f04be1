import attrs
import pytest

from specmatch import DiagnosticSpec
from specmatch.core.session import get_registry

BUILT_IN = {"latent-spectrum", "lowpass-rfid", "noised-reconstruction", "equivariance", "channel-eigenspectrum",
            "latent-pca"}


def test_built_in_diagnostics_are_registered_with_documented_params():
    registry = get_registry()
    assert BUILT_IN <= set(registry.names("diagnostic"))
    for name in BUILT_IN:
        spec = registry.get("diagnostic", name)
        assert spec.output.endswith(".json") and spec.summary
        for field in attrs.fields(spec.params_class()):
            assert field.metadata["doc"], (name, field.name)
    cheap = {n for n in BUILT_IN if registry.get("diagnostic", n).during_training}
    assert cheap == {"latent-spectrum", "channel-eigenspectrum"}
    assert registry.get("diagnostic", "latent-pca").figures == ("latent_pca.png",)


def test_figure_names_must_be_plain_png_files():
    def build(params, ctx):
        return None

    with pytest.raises(ValueError, match="plain .png"):
        DiagnosticSpec(name="x", factory=build, figures=("sub/figure.png",))
    with pytest.raises(ValueError, match="plain .png"):
        DiagnosticSpec(name="x", factory=build, figures=("figure.jpg",))
    spec = DiagnosticSpec(name="x", factory=build)  # the older contract: no figures, not during training
    assert spec.figures == () and spec.during_training is False


def test_validate_rejects_bad_diagnostic_params(tmp_path):
    from specmatch.testing import MINIMAL_RECIPE, invoke_cli, write_recipe

    head = MINIMAL_RECIPE + '[evaluation]\ndiagnostics = ["lowpass-rfid", "equivariance"]\n'
    recipe = write_recipe(tmp_path, head + '[evaluation.diagnostic_params.lowpass-rfid]\n'
                                           'levels = [4, 9]\nblock_size = 4\n')
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2
    assert "levels[1]: mask level 9 is above 2 * block_size - 1 = 7" in result.output
    recipe = write_recipe(tmp_path, head + '[evaluation.diagnostic_params.equivariance]\nscales = [2.0]\n')
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2
    assert "evaluation.diagnostic_params.equivariance.scales: expected a value < 1; got 2.0" in result.output
