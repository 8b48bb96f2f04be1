"""Suite-wide settings: nothing may reach a model hub, and every test starts with fresh plugin discovery."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # each xdist worker gets one core: two workers x two threads on two cores thrash OpenMP's spin-waits
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_plugin_session():
    from specmatch.core.session import clear_cache

    clear_cache()
    yield
    clear_cache()
