"""Training and sampling throughput of every registered denoiser family and of the autoencoder step, eager
against ``torch.compile`` (what ``run.compile = true`` does), in one run on whatever device it runs on.

    python benchmarks/throughput.py [--device cpu|cuda] [--batch 16] [--steps 10] [--sample-steps 10]
                                    [--latent 4x8x8] [--resolution 32] [--autoencoder-preset micro-f2d4]
                                    [--only dit,autoencoder] [--no-compile]

Each denoiser is built through the registry with its smallest preset (a ``preset`` choice containing "micro",
else "tiny"; other params at their defaults, a patch size of 2 where the latent allows). Training: the
flow-matching loss, backward and an AdamW step on random latents (latents/s). Sampling: Euler steps through the
sampling context, guidance off (latents/s; one network evaluation per step). Autoencoder: encode, posterior
sample, decode, L1 + KL, backward and AdamW on random images (images/s). Timings exclude a warm-up call (the
compilation, reported separately) and take the fastest of ``--repeats`` runs of ``--steps`` steps.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch


def fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def smallest_params(spec, latent_shape):
    """The spec's params with its smallest preset and a patch size of 2 where it divides the latent side."""
    import attrs

    from specmatch.core.structure import structure

    cls = spec.params_class()
    table = {}
    if cls is not None:
        fields = attrs.fields_dict(cls)
        choices = (fields["preset"].metadata.get("choices") or ()) if "preset" in fields else ()
        for word in ("micro", "tiny"):
            picks = [c for c in choices if word in c]
            if picks:
                table["preset"] = picks[0]
                break
        if "patch_size" in fields and latent_shape[1] % 2 == 0:
            table["patch_size"] = 2
    params, problems = structure(table, cls, "denoiser.params") if cls is not None else (None, [])
    if problems:
        raise SystemExit(f"{spec.name}: {[p.render() for p in problems]}")
    return params, table


def build_denoiser(spec, latent_shape, num_classes):
    from specmatch.core.specs import BuildContext

    params, table = smallest_params(spec, latent_shape)
    torch.manual_seed(0)
    ctx = BuildContext(recipe_dir=Path("."), upstream={"latent_shape": latent_shape, "num_classes": num_classes},
                       seed=0)
    return spec.factory_callable()(params, ctx), table


def denoiser_rates(model, args, device, latent_shape) -> dict[str, float]:
    from specmatch.diffusion.flow_matching import FlowMatching
    from specmatch.diffusion.samplers import EulerSampler
    from specmatch.engine.sampling import SamplingContext

    objective = FlowMatching()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(args.batch, *latent_shape, device=device)
    gen = torch.Generator(device=device).manual_seed(0)

    def train(steps):
        model.train()
        for _ in range(steps):
            loss, _ = objective.loss(model, x0, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        synchronize(device)

    sampler = EulerSampler(steps=args.sample_steps)
    start = torch.randn(args.batch, *latent_shape, device=device)

    def sample():
        model.eval()
        ctx = SamplingContext(denoiser=model, objective=objective, noise=lambda k: start, shape=start.shape,
                              device=device)
        sampler(ctx)
        synchronize(device)

    warm = time.perf_counter()
    train(1)
    sample()
    warm = time.perf_counter() - warm
    train_time = fastest(lambda: train(args.steps), args.repeats)
    sample_time = fastest(sample, args.repeats)
    return {"train": args.batch * args.steps / train_time, "sample": args.batch / sample_time, "warmup_s": warm}


def autoencoder_rate(model, args, device) -> dict[str, float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1

    def train(steps):
        model.train()
        for _ in range(steps):
            posterior = model.encode(x)
            loss = (model.decode(posterior.sample()) - x).abs().mean() + 1e-6 * posterior.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        synchronize(device)

    warm = time.perf_counter()
    train(1)
    warm = time.perf_counter() - warm
    return {"train": args.batch * args.steps / fastest(lambda: train(args.steps), args.repeats), "warmup_s": warm}


def report(name: str, eager: dict, compiled: dict | None, unit: str) -> None:
    for key in ("train", "sample"):
        if key not in eager:
            continue
        line = f"{name:<38} {key:<7} eager {eager[key]:9.1f} {unit}/s"
        if compiled is not None:
            line += (f"   compiled {compiled[key]:9.1f} {unit}/s   ratio {compiled[key] / eager[key]:5.2f}"
                     f"   (compile warm-up {compiled['warmup_s']:.1f} s)")
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed repeat")
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latent", default="4x8x8", help="C x h x w of the denoisers' latents")
    parser.add_argument("--resolution", type=int, default=32, help="image side for the autoencoder step")
    parser.add_argument("--autoencoder-preset", default="micro-f2d4")
    parser.add_argument("--only", default="", help="comma-separated denoiser names and/or 'autoencoder'")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    args = parser.parse_args()

    from specmatch.core.plugins import load_plugins
    from specmatch.core.registry import Registry

    device = torch.device(args.device)
    latent_shape = tuple(int(v) for v in args.latent.split("x"))
    only = {name for name in args.only.split(",") if name}
    registry = Registry.build(load_plugins(autoload=True))
    print(f"device {device}, torch {torch.__version__}, batch {args.batch}, {args.steps} training steps x "
          f"{args.repeats} repeats (fastest), {args.sample_steps} Euler steps, latent {args.latent}", flush=True)
    for spec in registry.of_kind("denoiser"):
        if only and spec.name not in only:
            continue
        model, table = build_denoiser(spec, latent_shape, num_classes=0)
        model = model.to(device)
        name = f"{spec.name} {table.get('preset', '')}".strip()
        eager = denoiser_rates(model, args, device, latent_shape)
        compiled = None
        if not args.no_compile:
            twin = copy.deepcopy(model)
            twin.compile()
            compiled = denoiser_rates(twin, args, device, latent_shape)
        report(f"denoiser {name}", eager, compiled, "latents")
    if not only or "autoencoder" in only:
        from specmatch.nn.autoencoder import build_sdvae

        torch.manual_seed(0)
        model = build_sdvae(args.autoencoder_preset).to(device)
        eager = autoencoder_rate(model, args, device)
        compiled = None
        if not args.no_compile:
            twin = copy.deepcopy(model)
            twin.compile()
            compiled = autoencoder_rate(twin, args, device)
        report(f"autoencoder {args.autoencoder_preset}", eager, compiled, "images")


if __name__ == "__main__":
    main()
