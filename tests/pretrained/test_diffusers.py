"""Pretrained VAEs: diffusers' AutoencoderKL behind the ``diffusers-vae`` component, SD-VAE weights in the
built-in ``sdvae`` (diffusers and LDM names), and ``specmatch export --format diffusers``.

Every model is tiny and random, built here from a small config; nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from safetensors.torch import load_file, save_file  # noqa: E402

from specmatch.engine.init_weights import load_state  # noqa: E402
from specmatch.nn.autoencoder import SDVAE  # noqa: E402
from specmatch.nn.diffusers_vae import DiffusersVAE, load_autoencoder_kl  # noqa: E402
from specmatch.nn.sd_weights import to_ldm_name  # noqa: E402
from specmatch.core.errors import WeightsError  # noqa: E402
from specmatch.testing import invoke_cli  # noqa: E402

from .conftest import ae_recipe  # noqa: E402

#: a tiny SD-VAE in both libraries' terms: two levels (f2), 4 latent channels, mid attention
KL_CONFIG = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
                 scaling_factor=0.5, shift_factor=0.1)
SDVAE_ARCH = dict(channels=(8, 16), latent_channels=4, encoder_res_blocks=1, decoder_res_blocks=2, norm_groups=4,
                  mid_attention=True, downsample_padding="ldm")
SDVAE_TOML = ('{ preset = "micro-f2d4", channels = [8, 16], encoder_res_blocks = 1, decoder_res_blocks = 2, '
              'norm_groups = 4, downsample_padding = "ldm" }')


def tiny_kl(seed: int = 0):
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(**KL_CONFIG)
    with torch.no_grad():  # GroupNorm affine and biases start at 1/0: randomise them so a swap shows
        for name, p in vae.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return vae.eval()


@pytest.fixture(scope="module")
def kl_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae") / "tiny-vae"
    tiny_kl().save_pretrained(str(folder))
    return folder


def images(n: int = 2, side: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1


#: two implementations of one network (specmatch's and diffusers' attention and convolutions) agree to float32
#: rounding: about 1e-6 relative on outputs of magnitude ~1
CROSS = 1e-5


def same_outputs(vae, ours, atol: float = CROSS) -> None:
    """Posterior mean, log-variance and the decoded mean of a diffusers VAE and a specmatch autoencoder agree."""
    x = images()
    with torch.no_grad():
        ref = vae.encode(x).latent_dist
        post = ours.encode(x)
        assert torch.allclose(post.mean, ref.mean, atol=atol, rtol=0)
        assert torch.allclose(post.logvar, ref.logvar, atol=atol, rtol=0)
        assert torch.allclose(ours.decode(ref.mean), vae.decode(ref.mean).sample, atol=atol, rtol=0)


# -- the diffusers-vae component ----------------------------------------------------------------------------

def test_component_matches_diffusers(kl_folder):
    ours = DiffusersVAE(load_autoencoder_kl(kl_folder))
    assert (ours.latent_channels, ours.downsample_factor) == (4, 2)
    assert (ours.scaling_factor, ours.shift_factor) == (0.5, 0.1)
    assert ours.encoder_last_layer is ours.vae.encoder.conv_out.weight
    assert ours.decoder_last_layer is ours.vae.decoder.conv_out.weight
    same_outputs(tiny_kl(), ours, atol=0)


def test_single_checkpoint_file_with_a_local_config(kl_folder, tmp_path):
    file = tmp_path / "vae.safetensors"
    save_file(load_file(str(kl_folder / "diffusion_pytorch_model.safetensors")), str(file))
    same_outputs(tiny_kl(), DiffusersVAE(load_autoencoder_kl(file, config=kl_folder)), atol=0)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(WeightsError, match=str(tmp_path / "nowhere")):
        load_autoencoder_kl(tmp_path / "nowhere")
    recipe = ae_recipe(tmp_path, "m")
    recipe.write_text(recipe.read_text().replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }',
                                                 'name = "diffusers-vae"\nparams = { path = "nowhere" }'))
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2
    assert "autoencoder.params.path" in result.output and str(tmp_path / "nowhere") in result.output


def test_validate_reads_the_latent_geometry_from_config_json(kl_folder, tmp_path):
    recipe = ae_recipe(tmp_path, "geo", extra='\n[denoiser]\nname = "dit"\nparams = { preset = "dit-micro", '
                                              'patch_size = 3 }\n')
    recipe.write_text(recipe.read_text().replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }',
                                                 f'name = "diffusers-vae"\nparams = {{ path = "{kl_folder}" }}'))
    result = invoke_cli("validate", str(recipe))
    # 16 px images, f = 2 from block_out_channels: an 8x8 latent of 4 channels, which patch size 3 does not tile
    assert result.exit_code == 2 and "latent 4x8x8" in result.output, result.output


def test_new_weights_in_the_same_folder_change_the_stage_key(kl_folder, tmp_path):
    import shutil

    from specmatch.core.plan import make_plan
    from specmatch.core.recipe import load_recipe

    folder = tmp_path / "vae"
    shutil.copytree(kl_folder, folder)
    recipe = ae_recipe(tmp_path, "k")
    recipe.write_text(recipe.read_text().replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }',
                                                 f'name = "diffusers-vae"\nparams = {{ path = "{folder}" }}'))

    def key() -> str:
        return make_plan(load_recipe(recipe), tmp_path / "run").stages[0].key

    first = key()
    tiny_kl(seed=1).save_pretrained(str(folder))  # other weights, same folder and file names
    second = key()
    assert second != first
    shutil.copy(kl_folder / "diffusion_pytorch_model.safetensors", folder / "diffusion_pytorch_model.safetensors")
    assert key() == first  # the same bytes again: the finished stage is the one to reuse
    # the folder must hold the weights file diffusers will load; validate says so before any work
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2 and "diffusion_pytorch_model.safetensors" in result.output, result.output


@pytest.mark.slow
def test_esm_fine_tuning_of_a_diffusers_vae_through_the_engine(kl_folder, tmp_path):
    extra = '\n[[regularizers]]\nname = "esm"\nweight = 0.01\nparams = { delta = 1.0 }\n'
    recipe = ae_recipe(tmp_path, "esm", extra=extra)
    recipe.write_text(recipe.read_text().replace("lr = 1e-3\n", "lr = 1e-3\nanalyze_every = 1\n"))
    recipe.write_text(recipe.read_text().replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }',
                                                 f'name = "diffusers-vae"\nparams = {{ path = "{kl_folder}" }}'))
    out = tmp_path / "run"
    result = invoke_cli("run", str(recipe), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("reg/0-esm" in c for c in curves), curves[0]  # the ESM term was computed every logged step
    assert any(k.startswith("diag/") for k in curves[-1]), curves[-1]  # the training diagnostics ran on it
    analyzed = invoke_cli("analyze", str(out), "--images", "8")
    assert analyzed.exit_code == 0, analyzed.output
    assert json.loads((out / "analysis.json").read_text())["latent-spectrum"]["n"] == 8
    tuned = load_file(str(out / "autoencoder" / "model.safetensors"))
    start = load_file(str(kl_folder / "diffusion_pytorch_model.safetensors"))
    assert set(tuned) == {f"vae.{k}" for k in start}
    assert any(not torch.equal(tuned[f"vae.{k}"], start[k]) for k in start)  # it trained
    # the fine-tuned VAE leaves as a diffusers folder and comes back with the same outputs
    exported = tmp_path / "exported"
    assert invoke_cli("export", str(out), str(exported)).exit_code == 0
    back = diffusers.AutoencoderKL.from_pretrained(str(exported), local_files_only=True)
    assert back.config.scaling_factor == 0.5  # a diffusers VAE keeps its own scaling
    ours = DiffusersVAE(load_autoencoder_kl(kl_folder))
    load_state(ours, tuned, "test")
    same_outputs(back.eval(), ours.eval(), atol=1e-6)  # diffusers on both sides


def test_diffusers_vae_init_from_a_bare_diffusers_file_and_mismatch(kl_folder, tmp_path):
    ours = DiffusersVAE(load_autoencoder_kl(kl_folder))
    other = tiny_kl(seed=3).state_dict()
    ours_state = ours.adapt_state_dict(other)
    load_state(ours, ours_state, "test")
    same_outputs(tiny_kl(seed=3), ours, atol=0)
    other.pop("decoder.conv_in.bias")
    other["decoder.conv_out.weight"] = torch.zeros(1, 8, 3, 3)
    with pytest.raises(WeightsError) as info:
        load_state(ours, ours.adapt_state_dict(other), "the file")
    text = str(info.value)
    assert "missing (1): vae.decoder.conv_in.bias" in text
    assert "wrong shape (1): vae.decoder.conv_out.weight (1, 8, 3, 3) (the model has (3, 8, 3, 3))" in text


# -- SD-VAE weights in the built-in sdvae -------------------------------------------------------------------

def test_sdvae_loads_diffusers_weights():
    vae = tiny_kl()
    ours = SDVAE(**SDVAE_ARCH).eval()
    load_state(ours, ours.adapt_state_dict(vae.state_dict()), "test")
    same_outputs(vae, ours)


def test_sdvae_ldm_names_agree_with_diffusers_own_ldm_converter(kl_folder, tmp_path):
    """An LDM checkpoint written with our names loads in diffusers' converter (independent of our mapping)."""
    vae = tiny_kl(seed=7)
    ours = SDVAE(**SDVAE_ARCH).eval()
    load_state(ours, ours.adapt_state_dict(vae.state_dict()), "test")
    ldm = {"first_stage_model." + to_ldm_name(k, 2): v.contiguous() for k, v in ours.state_dict().items()}
    ldm["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)  # a full SD checkpoint's other parts
    file = tmp_path / "sd.safetensors"
    save_file(ldm, str(file))
    from_ldm = diffusers.AutoencoderKL.from_single_file(str(file), config=str(kl_folder), local_files_only=True)
    same_outputs(from_ldm.eval(), ours)
    again = SDVAE(**SDVAE_ARCH).eval()  # and our loader reads the same file
    load_state(again, again.adapt_state_dict(load_file(str(file))), "test")
    same_outputs(vae, again)


@pytest.mark.slow
def test_sdvae_export_and_reimport(tmp_path):
    """Train a tiny sdvae in the LDM layout, export it, re-import in diffusers and in specmatch: same outputs."""
    recipe = ae_recipe(tmp_path, "sd")
    recipe.write_text(recipe.read_text().replace('params = { preset = "micro-f2d4" }', f"params = {SDVAE_TOML}"))
    out = tmp_path / "run"
    assert invoke_cli("run", str(recipe), "--output-dir", str(out)).exit_code == 0
    exported = tmp_path / "exported"
    result = invoke_cli("export", str(out), str(exported))
    assert result.exit_code == 0, result.output
    back = diffusers.AutoencoderKL.from_pretrained(str(exported), local_files_only=True).eval()
    stats = load_file(str(out / "autoencoder" / "latent_stats.safetensors"))
    assert back.config.scaling_factor == pytest.approx(1 / float(stats["std"].double().mean()))
    ours = SDVAE(**SDVAE_ARCH).eval()
    load_state(ours, load_file(str(out / "autoencoder" / "model.safetensors")), "test")
    same_outputs(back, ours)
    # ... and the exported folder is an init for a new sdvae run (diffusers names, renamed on load)
    second = ae_recipe(tmp_path / "second", "again", steps=0, init=str(exported))
    second.write_text(second.read_text().replace('params = { preset = "micro-f2d4" }', f"params = {SDVAE_TOML}"))
    out2 = tmp_path / "run2"
    assert invoke_cli("run", str(second), "--output-dir", str(out2)).exit_code == 0
    again = SDVAE(**SDVAE_ARCH).eval()
    load_state(again, load_file(str(out2 / "autoencoder" / "model.safetensors")), "test")
    same_outputs(back, again)
    x = images()
    with torch.no_grad():  # specmatch -> diffusers folder -> specmatch: the very same network
        assert torch.allclose(again(x, sample=False)[0], ours(x, sample=False)[0], atol=1e-6, rtol=0)
    assert json.loads((out2 / "autoencoder" / "stage.json").read_text())["init_kind"] == "diffusers"


def test_export_refuses_what_diffusers_cannot_hold(tmp_path):
    recipe = ae_recipe(tmp_path, "sym")  # micro-f2d4: symmetric padding, 8 GroupNorm groups on 16 channels
    out = tmp_path / "run"
    assert invoke_cli("run", str(recipe), "--output-dir", str(out)).exit_code == 0
    result = invoke_cli("export", str(out), str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "downsample_padding = 'symmetric'" in result.output and "exportable: sdvae" in result.output
