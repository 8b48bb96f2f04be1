"""Peak memory of the streaming evaluation at N = 1 000 and N = 10 000: it must not grow with N.

Each N runs in a fresh process (peak RSS is per process) through ``engine.evaluation_stream``, the code the
evaluation stage runs: a reconstruction pass (N image pairs, PSNR, PSNR on 8-bit levels, SSIM, L1), a
reference pass (N images) and a generation pass (N samples of a tiny random convolutional generator, drawn
per chunk of indices), with partial statistics saved every ``--chunk`` images, then FID, KID and precision/
recall on the totals. Images are 3 x 32 x 32.

The feature network is a tiny random convolutional stand-in (64-d features) unless ``--inception`` is
given: the TF-Inception network needs about 0.1 s per image on 2 CPU cores, so 2 x 10 000 images would take
over an hour. The memory the stand-in saves is a constant (the Inception weights, its activations for one
batch, and d = 2048 moments instead of 64); none of it depends on N. The kept feature subset is set to
``--subset`` rows (default 500, below both N) so it is the same size at both N.

Run:  python benchmarks/evaluation.py [--sizes 1000,10000] [--batch 100] [--chunk 1000] [--inception]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDE = 32


class _Accelerator:
    """The single-process stand-in for accelerate's Accelerator the stream needs (no process group)."""

    num_processes, process_index, is_main_process, device = 1, 0, True, "cpu"

    def wait_for_everyone(self) -> None:
        pass


def _child(n: int, batch: int, chunk: int, subset: int, inception: bool) -> dict:
    import torch

    from specmatch.core.components import FeatureSet
    from specmatch.engine.evaluation_stream import EvaluationStream
    from specmatch.metrics.builtin import Frechet, KernelDistance, PerImage, PrecisionRecall, l1
    from specmatch.metrics.reconstruction import psnr, psnr_uint8, ssim

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if inception:
        from specmatch.metrics.inception import InceptionFeatures

        network, label = InceptionFeatures(), "TF-Inception (bundled)"
        dim = network.feature_dim
    else:
        dim = 64
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, stride=2), torch.nn.ReLU(),
                                  torch.nn.Conv2d(32, dim, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1)).eval()

        def network(images):
            with torch.no_grad():
                return net(images).flatten(1).double()

        label = "tiny random conv stand-in (64-d)"
    generator = torch.nn.Sequential(torch.nn.ConvTranspose2d(16, 32, 4, stride=4), torch.nn.ReLU(),
                                    torch.nn.ConvTranspose2d(32, 3, 4, stride=4), torch.nn.Tanh()).eval()

    def image(i: int) -> torch.Tensor:  # the "dataset": image i from its own seed
        return torch.rand(3, SIDE, SIDE, generator=torch.Generator().manual_seed(i)) * 2 - 1

    def reconstructions(start, stop):
        for s in range(start, stop, batch):
            items = list(range(s, min(stop, s + batch)))
            x = torch.stack([image(i) for i in items])
            yield items, {"real": x, "fake": (x + 0.05 * torch.randn_like(x)).clamp(-1, 1)}

    def reference(start, stop):
        for s in range(start, stop, batch):
            items = list(range(s, min(stop, s + batch)))
            yield items, {"real": torch.stack([image(10_000_000 + i) for i in items])}

    def samples(start, stop):  # one generator call per chunk of indices, as the stage's _generate_chunk
        with torch.no_grad():
            noise = torch.randn(stop - start, 16, 2, 2, generator=torch.Generator().manual_seed(start))
            chunk_images = generator(noise)
        for s in range(0, stop - start, batch):
            yield list(range(start + s, min(stop, start + s + batch))), {"fake": chunk_images[s:s + batch]}

    per_image = {"psnr": PerImage(psnr), "psnr-uint8": PerImage(psnr_uint8), "ssim": PerImage(ssim),
                 "l1": PerImage(l1)}
    stream = EvaluationStream(passes={"reconstruction": (n, ("real", "fake")), "reference": (n, ("real",)),
                                      "generation": (n, ("fake",))},
                              per_image=per_image, features=network, feature_dim=dim, subset=subset, seed=0,
                              image_shape=(3, SIDE, SIDE), grid=16)
    accelerator = _Accelerator()
    folder = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    for name, produce in (("reconstruction", reconstructions), ("reference", reference), ("generation", samples)):
        stream.run_pass(name, produce, chunk=chunk,
                        save=lambda: stream.save(folder / "statistics.safetensors", "bench", accelerator))
    total = stream.totals(accelerator)

    def summary(name, s):
        m = total.moments(name, s)
        mean, cov = m.mean_cov()
        return FeatureSet(n=m.n, mean=mean, cov=cov, features=total.subset(name, s).features())

    rec = [summary("reconstruction", s) for s in ("real", "fake")]
    gen = [summary("reference", "real"), summary("generation", "fake")]
    out = {"n": n, "network": label, "psnr": total.mean("reconstruction", "psnr"),
           "ssim": total.mean("reconstruction", "ssim")}
    for prefix, (real, fake) in (("r", rec), ("gen_", gen)):
        for metric in (Frechet(), KernelDistance(subset_size=100, num_subsets=10), PrecisionRecall(k=3)):
            out.update({f"{prefix}{k}": v for k, v in metric.compute(real, fake).items()})
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--subset", type=int, default=500)
    parser.add_argument("--inception", action="store_true", help="use the bundled TF-Inception network")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.batch, args.chunk, args.subset, args.inception)))
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n), "--batch", str(args.batch), "--chunk", str(args.chunk),
               "--subset", str(args.subset)] + (["--inception"] if args.inception else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"feature network: {results[0]['network']}; images 3x{SIDE}x{SIDE}; batch {args.batch}; "
          f"saved every {args.chunk}; kept feature subset {args.subset}")
    print(f"{'N':>7} {'peak RSS (MB)':>14} {'time (s)':>9} {'rFID':>8} {'gen FID':>8} {'PSNR':>7}")
    for r in results:
        print(f"{r['n']:>7} {r['peak_rss_mb']:>14.1f} {r['seconds']:>9.1f} {r['rfid']:>8.3f} {r['gen_fid']:>8.3f} "
              f"{r['psnr']:>7.2f}")
    if len(results) >= 2:
        ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        print(f"peak RSS ratio N={results[-1]['n']} / N={results[0]['n']}: {ratio:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
