"""specmatch: which autoencoder latent diffuses best?

A plugin-registry framework for Spectrum Matching (ESM, DSM) and its baselines. Importing this package is
cheap: it imports neither torch nor any plugin. Plugin authors need only::

    from specmatch import hookimpl, RegularizerSpec, param
"""

__version__ = "0.1.0"

from .core.components import (  # noqa: E402
    AlignmentTarget,
    Autoencoder,
    Denoiser,
    DenoiserRegularizer,
    DenoiserRegularizerInputs,
    FeatureSet,
    FeatureStream,
    LatentRegularizer,
    Metric,
    PairContext,
    Posterior,
    RegularizerInputs,
)
from .core.errors import (  # noqa: E402
    DataError,
    ParamError,
    PluginConflictError,
    PluginError,
    Problem,
    RecipeError,
    SpecmatchError,
    WeightsError,
)
from .core.markers import hookimpl, hookspec  # noqa: E402
from .core.specs import (  # noqa: E402
    PLUGIN_API,
    AlignmentSpec,
    AutoencoderSpec,
    BuildContext,
    DatasetSpec,
    DenoiserRegularizerSpec,
    DenoiserSpec,
    DiscriminatorSpec,
    MetricSpec,
    DiagnosticSpec,
    Facts,
    FileNeed,
    ObjectiveSpec,
    PerceptualSpec,
    RegularizerSpec,
    SamplerSpec,
    param,
)

__all__ = [
    "__version__", "hookimpl", "hookspec", "param", "PLUGIN_API", "BuildContext", "Facts", "FileNeed",
    "AutoencoderSpec", "RegularizerSpec", "DenoiserSpec", "DenoiserRegularizerSpec", "AlignmentSpec",
    "DatasetSpec", "ObjectiveSpec", "SamplerSpec", "PerceptualSpec", "DiscriminatorSpec", "MetricSpec",
    "DiagnosticSpec",
    "Autoencoder", "Posterior", "LatentRegularizer", "RegularizerInputs", "PairContext", "AlignmentTarget",
    "Denoiser", "DenoiserRegularizer", "DenoiserRegularizerInputs", "FeatureSet", "FeatureStream", "Metric",
    "SpecmatchError", "RecipeError", "Problem", "ParamError", "PluginError", "PluginConflictError", "DataError",
    "WeightsError",
]
