"""The same training loop through gpugrad and PyTorch: same initial weights, same batches,
the losses agree within float32 tolerance for the first 20 steps."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.data import DataLoader, mnist_mini
from gpugrad.models import LeNet

torch = pytest.importorskip("torch")


def _torch_lenet():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def _copy_weights(model, tmodel):
    params = [p for _, p in model.named_parameters()]
    tparams = list(tmodel.parameters())
    assert [tuple(p.shape) for p in params] == [tuple(p.shape) for p in tparams]
    with torch.no_grad():
        for p, tp in zip(params, tparams):
            tp.copy_(torch.from_numpy(p.numpy().copy()))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_first_20_losses_match_pytorch(optimizer):
    gg.manual_seed(0)
    torch.manual_seed(0)
    model = LeNet()
    tmodel = _torch_lenet()
    _copy_weights(model, tmodel)
    if optimizer == "sgd":
        opt = gg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = gg.optim.Adam(model.parameters(), lr=1e-3)
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    loader = DataLoader(mnist_mini(train=True), batch_size=64, shuffle=True, seed=1)
    losses, tlosses = [], []
    for step, (images, labels) in enumerate(loader):
        if step == 20:
            break
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())

        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(images.numpy())),
                                                  torch.from_numpy(labels.numpy()))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        tlosses.append(tloss.item())
    assert len(losses) == 20
    np.testing.assert_allclose(losses, tlosses, rtol=2e-4, atol=1e-5)
    assert losses[-1] < losses[0]  # it learns
