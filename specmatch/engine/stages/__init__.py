"""The stages of a run, one module each: autoencoder -> latent statistics -> denoiser -> evaluation.

Each stage is a function of a :class:`~specmatch.engine.run_context.RunContext` and the frozen results of
the stages before it, returning its own frozen result.
"""

from .autoencoder import AutoencoderResult, autoencoder_stage
from .denoiser import DenoiserResult, denoiser_stage
from .evaluation import EvaluationResult, evaluation_stage
from .latent_stats import LatentStatsResult, latent_stats_stage

__all__ = ["AutoencoderResult", "DenoiserResult", "EvaluationResult", "LatentStatsResult", "autoencoder_stage",
           "denoiser_stage", "evaluation_stage", "latent_stats_stage"]
