import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The app shows dataset images only from allowed roots (app/checkpoints.py data_roots); the tests' data folders
# live under the temporary directory, and servers the tests start inherit this.
os.environ.setdefault("VITRM_DATA_ROOTS", tempfile.gettempdir())
SHARED_CIFAR10 = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"

# Two cores: keep each test process from fighting itself (and a background training run).
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def shared_cifar10():
    if not SHARED_CIFAR10.is_dir():
        pytest.skip(f"{SHARED_CIFAR10} is absent; the shared CIFAR-10 JPEG copy is needed")
    return SHARED_CIFAR10
