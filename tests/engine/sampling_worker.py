"""Run under accelerate's launcher by test_sampling.py: generate one index range and save it (main process)."""

import sys

import torch
from accelerate import Accelerator


def main(out: str) -> None:
    from tests.engine.test_sampling import generate_range

    accelerator = Accelerator(cpu=True)
    samples = generate_range(accelerator, range(3, 14), batch_size=2)
    if accelerator.is_main_process:
        torch.save({"samples": samples, "processes": accelerator.num_processes}, out)


if __name__ == "__main__":
    main(sys.argv[1])
