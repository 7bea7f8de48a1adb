"""Ready-made convnets for 28x28 and 32x32 images: LeNet-style and small ResNets."""

from __future__ import annotations

from gpugrad import nn


class LeNet(nn.Module):
    """conv 32 -> conv 64 -> fc 128 -> classes, each conv 3x3 (pad 1) + ReLU + 2x2 max-pool."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        if image_size < 4:
            # Two 2x2 pools would leave no pixel: a Linear(0, 128) whose output is a constant.
            raise ValueError(f"LeNet: image_size must be at least 4 (two 2x2 max-pools), got "
                             f"{image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: a 3x3 stem (no max-pool), stages of BasicBlocks, global average."""

    def __init__(self, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(),
        )
        layers, channels = [], widths[0]
        for i, (count, width) in enumerate(zip(blocks, widths)):
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


def resnet18(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """ResNet-18 for 32x32 inputs (the CIFAR variant: 3x3 stem, no max-pool)."""
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), in_channels, num_classes)


def resnet_small(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """A ResNet-8 (three stages of one block, 16/32/64 channels) that trains fast on MNIST."""
    return ResNet((1, 1, 1), (16, 32, 64), in_channels, num_classes)


MODELS = {
    "lenet": lambda in_channels, num_classes, image_size: LeNet(in_channels, num_classes,
                                                                image_size),
    "resnet": lambda in_channels, num_classes, image_size: resnet_small(in_channels, num_classes),
    "resnet18": lambda in_channels, num_classes, image_size: resnet18(in_channels, num_classes),
}


def build_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](in_channels, num_classes, image_size)
