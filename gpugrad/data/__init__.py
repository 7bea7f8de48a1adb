"""Data loading: datasets, the DataLoader, and MNIST / Fashion-MNIST readers (torch.utils.data
and torchvision.datasets semantics, NumPy underneath)."""

from gpugrad.data.dataloader import DataLoader, default_collate
from gpugrad.data.dataset import ArrayDataset, Dataset, Subset, TensorDataset, random_split
from gpugrad.data.datasets import (
    DATASETS,
    MNIST,
    FashionMNIST,
    MNISTMini,
    get_dataset,
    mnist_mini,
)
from gpugrad.data.download import DownloadError
from gpugrad.data.idx import IDXError, read_idx, read_idx_images, read_idx_labels

__all__ = [
    "ArrayDataset",
    "DATASETS",
    "DataLoader",
    "Dataset",
    "DownloadError",
    "FashionMNIST",
    "IDXError",
    "MNIST",
    "MNISTMini",
    "Subset",
    "TensorDataset",
    "default_collate",
    "get_dataset",
    "mnist_mini",
    "random_split",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
]
