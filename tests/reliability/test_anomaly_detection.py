"""gg.autograd.detect_anomaly(): the first op to produce NaN/Inf raises, naming the op and the
user's line that created it; ops that make -inf on purpose and normal training stay quiet."""

import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.autograd import AnomalyError, Function, detect_anomaly
from gpugrad.nn import functional as F

HERE = __file__


def line_of(marker: str) -> int:
    """The line of this file that holds `marker` in a trailing comment."""
    with open(HERE) as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(f"marker {marker!r} not found")


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class LogModel(nn.Module):
    """A small model whose log sees a zero after the ReLU."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        h = self.fc(x).relu()
        return gg.log(h)  # anomaly: log


def test_forward_names_log_and_the_user_line():
    model = LogModel()
    with gg.no_grad():
        model.fc.weight.fill_(0.0)
        model.fc.bias.copy_(gg.tensor([1.0, -1.0, 2.0, 0.5]))  # relu -> a zero -> log(0)
    x = gg.randn(2, 3)
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            out = model(x)  # anomaly: model call
            out.sum()
    msg = str(info.value)
    assert "Log" in msg and "forward" in msg
    assert f'{HERE}", line {line_of("anomaly: log")}' in msg, msg
    assert f'line {line_of("anomaly: model call")}' in msg, msg
    assert isinstance(info.value, RuntimeError)


def test_forward_reports_the_first_op_not_a_later_one():
    x = gg.tensor([0.0, 1.0])
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            y = x * 2.0
            z = 1.0 / y  # anomaly: first inf
            (z * 0.0).sum()  # inf * 0 would be the first NaN
    msg = str(info.value)
    assert "Div" in msg and f"line {line_of('anomaly: first inf')}" in msg, msg


def test_backward_names_sqrt_and_where_it_was_created():
    x = gg.tensor([0.0, 1.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = gg.sqrt(x)  # anomaly: sqrt
        loss = (y * 3.0).sum()
        assert np.isfinite(loss.item())
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    msg = str(info.value)
    assert "backward" in msg and "Sqrt" in msg
    assert f'{HERE}", line {line_of("anomaly: sqrt")}' in msg, msg


def test_backward_through_a_model_names_the_op():
    w = gg.tensor([[1.0], [0.0]], requires_grad=True)
    x = gg.tensor([[1.0, 2.0]])
    with detect_anomaly():
        h = x @ w
        r = (h - 1.0).abs()
        y = r ** 0.5  # anomaly: pow at zero
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert "Pow" in msg and f"line {line_of('anomaly: pow at zero')}" in msg, msg


def test_no_false_positive_for_max_pool_padding():
    # max_pool2d pads with -inf inside im2col on purpose; that is not an anomaly.
    x = gg.randn(2, 3, 7, 7, requires_grad=True)
    with detect_anomaly():
        y = F.max_pool2d(x, 3, stride=2, padding=1)
        y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()


def test_no_false_positive_for_masked_softmax():
    # Attention-style masking: -inf logits are an input here, not produced by an op.
    x = gg.randn(2, 4, requires_grad=True)
    mask = gg.tensor([[True, True, False, False], [True, False, True, True]])
    with detect_anomaly():
        p = x.masked_fill(~mask, float("-inf")).softmax(dim=1)
        (p * gg.randn(2, 4)).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_no_false_positive_in_normal_training(one_kernel_thread):
    gg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2, padding=1),
        nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 5 * 5, 10),
    )
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, t = gg.randn(8, 1, 8, 8), gg.randint(0, 10, (8,))
    losses = []
    with detect_anomaly():
        for _ in range(3):
            loss = F.cross_entropy(model(x), t, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_outside_the_context_nothing_is_checked():
    with detect_anomaly():
        pass
    y = gg.log(gg.zeros(2))  # -inf, as in PyTorch
    assert np.isneginf(y.numpy()).all()
    x = gg.zeros(2, requires_grad=True)
    gg.sqrt(x).sum().backward()
    assert np.isposinf(x.grad.numpy()).all()


def test_still_armed_after_an_error_inside_a_backward_formula():
    # A backward that raises (here a custom Function) must not leave the detector thinking a
    # backward is still running: that would silence every later forward check in the block.
    class Boom(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            raise ValueError("boom")

    x = gg.randn(3, requires_grad=True)
    with detect_anomaly():
        with pytest.raises(ValueError, match="boom"):
            Boom.apply(x).sum().backward()
        with pytest.raises(AnomalyError, match="Log"):
            gg.log(gg.zeros(2))


def test_still_armed_after_an_anomaly_was_caught():
    with detect_anomaly():
        x = gg.zeros(2, requires_grad=True)
        with pytest.raises(AnomalyError, match="Sqrt"):
            gg.sqrt(x).sum().backward()
        with pytest.raises(AnomalyError, match="Log"):
            gg.log(gg.zeros(2))
