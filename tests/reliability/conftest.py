"""Shared helpers of the reliability suite: stand-in CUDA tensors and quiet, one-thread kernels."""

import numba
import pytest

import gpugrad as gg


@pytest.fixture
def on_fake_cuda():
    """Tag a CPU tensor as living on cuda:0 (device checks compare only the tag)."""

    def tag(t):
        t.device = gg.device("cuda", 0)
        return t

    return tag


@pytest.fixture
def one_kernel_thread():
    """Run Numba's parallel CPU kernels on one thread, so tiny steps cost ~1 ms on a busy
    machine (thread wake-ups dominate tiny kernels when the cores are oversubscribed)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


# The training job of `gpugrad train`, shrunk for tests: 2 batches of 8 per epoch, a 32-image
# test set and no PNG of the curves (matplotlib costs more than the training), so a 2-epoch run
# takes seconds. Child processes that get killed mid-save apply the same patch
# (CHILD_SMALL_DATASETS) before they train.
TRAIN_KWARGS = dict(dataset="mnist-mini", batch_size=8, limit_batches=2, progress=False,
                    seed=3)
TEST_IMAGES = 32

CHILD_SMALL_DATASETS = f"""
from gpugrad import training
from gpugrad.data import Subset
real_get_dataset = training.get_dataset

def small_get_dataset(name, data_dir=None, train=True):
    dataset = real_get_dataset(name, data_dir, train=train)
    return dataset if train else Subset(dataset, list(range({TEST_IMAGES})))

training.get_dataset = small_get_dataset
training.plot_curves = lambda metrics, path: None
"""


@pytest.fixture(scope="session")
def run_training():
    """run_training(out, epochs, resume=False, **config) -> the records of metrics.json."""
    import json

    from gpugrad import training
    from gpugrad.data import Subset

    real_get_dataset, real_plot_curves = training.get_dataset, training.plot_curves

    def small_get_dataset(name, data_dir=None, train=True):
        dataset = real_get_dataset(name, data_dir, train=train)
        return dataset if train else Subset(dataset, list(range(TEST_IMAGES)))

    def run(out, epochs, resume=False, **overrides):
        kwargs = dict(TRAIN_KWARGS, **overrides)
        config = training.TrainConfig(out=str(out), epochs=epochs, resume=resume, **kwargs)
        training.get_dataset = small_get_dataset
        training.plot_curves = lambda metrics, path: None
        try:
            training.train(config, log=lambda *args: None)
        finally:
            training.get_dataset, training.plot_curves = real_get_dataset, real_plot_curves
        with open(out / training.METRICS) as f:
            return json.load(f)["epochs"]

    return run


@pytest.fixture(scope="session")
def uninterrupted_run(run_training, tmp_path_factory):
    """The per-epoch records of a 2-epoch run that nothing interrupts (the reference)."""
    return run_training(tmp_path_factory.mktemp("uninterrupted"), epochs=2)


@pytest.fixture(scope="session")
def train_kwargs():
    return dict(TRAIN_KWARGS)


@pytest.fixture(scope="session")
def child_small_datasets():
    return CHILD_SMALL_DATASETS
