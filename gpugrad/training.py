"""The training job behind `gpugrad train`: data, model, optimiser, schedule, loop, outputs.

One epoch is the unit of checkpointing: after every epoch the run writes `checkpoint.safetensors`
(model, optimiser, scheduler, epoch, RNG state, loader state) and `metrics.json`. `--resume`
continues from that checkpoint and, on the CPU, reproduces the uninterrupted run's losses.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import gpugrad as gg
from gpugrad import backend, optim
from gpugrad.data import DataLoader, get_dataset
from gpugrad.fileio import save_figure_atomic, write_json_atomic
from gpugrad.models import build_model
from gpugrad.nn import functional as F
from gpugrad.serialization import load, save

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"
CURVES = "curves.png"


@dataclass
class TrainConfig:
    dataset: str = "mnist-mini"
    data_dir: str | None = None
    model: str = "lenet"
    epochs: int | None = None  # None: the dataset's default (see DEFAULT_EPOCHS)
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimiser's default below
    weight_decay: float | None = None  # None: 1e-2 for adamw, else 0
    schedule: str = "onecycle"
    device: str = "cpu"
    seed: int = 0
    out: str = "runs/latest"
    resume: bool = False
    progress: bool = True
    limit_batches: int | None = None  # stop each epoch early (smoke tests)
    stop_after: int | None = None  # end the run after this epoch, as if killed (resume tests)
    extra: dict = field(default_factory=dict)


DEFAULT_EPOCHS = {"mnist-mini": 4, "mnist": 3, "fashion-mnist": 5}
DEFAULT_LR = {"adam": 3e-3, "adamw": 3e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2}
# The settings that shape a run: --resume refuses a checkpoint written with other values.
RESUME_KEYS = ("dataset", "model", "optimizer", "schedule", "epochs", "batch_size", "lr",
               "weight_decay", "seed", "limit_batches")


def resolved(config: dict) -> dict:
    """The config's settings with every None ("the default") replaced by its value."""
    out = dict(config)
    if out.get("epochs") is None:
        out["epochs"] = DEFAULT_EPOCHS.get(out["dataset"], 3)
    if out.get("lr") is None:
        out["lr"] = DEFAULT_LR.get(out["optimizer"], 1e-3)
    if out.get("weight_decay") is None:
        out["weight_decay"] = DEFAULT_WEIGHT_DECAY.get(out["optimizer"], 0.0)
    return out


def make_optimizer(name, params, lr, weight_decay):
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")


def make_scheduler(name, optimizer, lr, epochs, steps_per_epoch):
    if name == "onecycle":
        return optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                             steps_per_epoch=steps_per_epoch, pct_start=0.2)
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    if name == "none":
        return None
    raise ValueError(f"unknown schedule {name!r}; choose onecycle, cosine or none")


def _model_for(name, dataset):
    """The named model, shaped for the dataset's images (channels, side) and 10 classes."""
    image = dataset[0][0]
    return build_model(name, in_channels=image.shape[0], num_classes=10,
                       image_size=image.shape[-1])


def evaluate(model, loader, device) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` over `loader`, in eval mode without recording."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with gg.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == labels).sum().item())
            count += labels.shape[0]
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the test set is empty")
    return total_loss / count, correct / count


def _progress(iterable, total, enabled, desc):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def plot_curves(metrics: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    ax1.plot(epochs, [m["test_loss"] for m in metrics], "o-", label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax2.plot(epochs, [100 * m["test_accuracy"] for m in metrics], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy (%)")
    for ax in (ax1, ax2):
        ax.set_xticks(epochs)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def train(config: TrainConfig, log=print) -> dict:
    """Run the job; returns the summary (also printed) with the per-epoch metrics."""
    device = backend.as_device(config.device)
    settings = resolved(asdict(config))
    epochs, lr = settings["epochs"], settings["lr"]
    _check_settings(config, settings)
    out = _make_out_dir(config.out)

    train_set = get_dataset(config.dataset, config.data_dir, train=True)
    test_set = get_dataset(config.dataset, config.data_dir, train=False)
    gg.manual_seed(config.seed)
    model = _model_for(config.model, train_set).to(device)
    # The loader wants a seed >= 0; map a negative --seed as manual_seed does (mod 2**64).
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                              drop_last=True, seed=config.seed % 2**64)
    test_loader = DataLoader(test_set, batch_size=1000)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"--batch-size {config.batch_size} exceeds the {len(train_set)} training images of "
            f"{config.dataset}; with the last partial batch dropped an epoch has no steps"
        )
    if config.limit_batches is not None:
        steps_per_epoch = min(steps_per_epoch, config.limit_batches)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr,
                               settings["weight_decay"])
    scheduler = make_scheduler(config.schedule, optimizer, lr, epochs, steps_per_epoch)

    metrics: list[dict] = []
    start_epoch = 0
    if config.resume:
        start_epoch, metrics = _restore(out / CHECKPOINT, model, optimizer, scheduler, device,
                                        settings)
        log(f"resumed from {out / CHECKPOINT} after epoch {start_epoch}")

    for epoch in range(start_epoch, epochs):
        model.train()
        started = time.perf_counter()
        seen, loss_sum, losses = 0, 0.0, []
        batches = _progress(train_loader.iterate(epoch), steps_per_epoch, config.progress,
                            f"epoch {epoch + 1}/{epochs}")
        for step, (images, labels) in enumerate(batches):
            if step >= steps_per_epoch:
                break
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise _diverged(f"the training loss is {value} at epoch {epoch + 1}, step "
                                f"{step + 1}", lr, out)
            losses.append(value)
            loss_sum += value * labels.shape[0]
            seen += labels.shape[0]
            if config.progress and step % 10 == 0:
                rate = seen / max(time.perf_counter() - started, 1e-9)
                batches.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:.0f}")
        seconds = time.perf_counter() - started
        test_loss, test_acc = evaluate(model, test_loader, device)
        if not math.isfinite(test_loss):
            raise _diverged(f"the test loss is {test_loss} after epoch {epoch + 1}", lr, out)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "images_per_second": seen / seconds,
            "seconds": seconds,
            "lr": optimizer.param_groups[0]["lr"],
            "step_losses": losses,
        }
        metrics.append(record)
        log(f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f}  "
            f"test loss {test_loss:.4f}  test acc {100 * test_acc:.2f}%  "
            f"{record['images_per_second']:.0f} img/s  {seconds:.1f}s")
        _checkpoint(out / CHECKPOINT, model, optimizer, scheduler, epoch + 1, metrics, config)
        write_json_atomic(out / METRICS, {"config": asdict(config), "epochs": metrics})
        plot_curves(metrics, out / CURVES)
        if config.stop_after is not None and epoch + 1 >= config.stop_after:
            break

    summary = {
        "dataset": config.dataset,
        "model": config.model,
        "epochs": epochs,
        "test_accuracy": metrics[-1]["test_accuracy"] if metrics else None,
        "test_loss": metrics[-1]["test_loss"] if metrics else None,
        "images_per_second": float(np.mean([m["images_per_second"] for m in metrics]))
        if metrics else None,
        "checkpoint": str(out / CHECKPOINT),
        "metrics": str(out / METRICS),
        "curves": str(out / CURVES),
        "history": metrics,
    }
    if metrics:
        log(f"done: {config.model} on {config.dataset}, {epochs} epochs, test accuracy "
            f"{100 * summary['test_accuracy']:.2f}%; wrote {out / CHECKPOINT}, "
            f"{out / METRICS}, {out / CURVES}")
    return summary


def _check_settings(config: TrainConfig, settings: dict) -> None:
    """--epochs and --limit-batches >= 1 (0 would run nothing, silently); --lr and
    --weight-decay finite and >= 0 (named by flag, before the optimizer sees them)."""
    for flag, value in (("--epochs", settings["epochs"]), ("--limit-batches",
                                                          config.limit_batches)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--lr", settings["lr"]), ("--weight-decay", settings["weight_decay"])):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{flag} must be a finite number >= 0, got {value}")


def _make_out_dir(path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {path}: cannot create the output folder "
                         f"({e.strerror or e})") from None
    return out


def _diverged(what: str, lr, out: Path) -> RuntimeError:
    """The error that stops a run whose loss is NaN or Inf, before it writes a checkpoint."""
    kept = (f"the last good checkpoint, {out / CHECKPOINT}, is kept"
            if (out / CHECKPOINT).exists() else "no checkpoint was written")
    return RuntimeError(f"{what}: training diverged (lr {lr}); stopped, {kept}; try a "
                        "smaller --lr")


def _checkpoint(path, model, optimizer, scheduler, epoch, metrics, config):
    save({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "rng": json.dumps(backend.get_rng_state()),
        "metrics": json.dumps(metrics),
        "config": json.dumps(asdict(config)),
    }, path)


def _restore(path, model, optimizer, scheduler, device, settings):
    if not Path(path).exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; run without --resume first")
    state = load(path)
    _check_resume_config(path, state, settings)
    model.load_state_dict(state["model"])
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    backend.set_rng_state(json.loads(state["rng"]))
    return int(state["epoch"]), json.loads(state["metrics"])


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _check_resume_config(path, state, settings: dict) -> None:
    """Refuse to resume a run whose settings differ from the checkpoint's: the optimizer,
    scheduler and loader state would not fit (or would silently override the flags)."""
    if not isinstance(state, dict) or not isinstance(state.get("config"), str):
        raise ValueError(f"--resume: {path} is not a checkpoint written by gpugrad train "
                         "(no 'config' entry)")
    stored = resolved(json.loads(state["config"]))
    # The weight decay the run trained with is the optimizer's own (it is never scheduled):
    # checkpoints written before 2026-11-27 recorded 0.0 in their config for adamw's default
    # 0.01, and resuming them with the same flags must not be refused.
    groups = state.get("optimizer", {}).get("param_groups") \
        if isinstance(state.get("optimizer"), dict) else None
    if groups and isinstance(groups[0], dict) and "weight_decay" in groups[0]:
        stored["weight_decay"] = groups[0]["weight_decay"]
    keys = [k for k in RESUME_KEYS if not (k == "epochs" and settings["schedule"] == "none")]
    diffs = [f"{_flag(k)} {stored.get(k)!r} in the checkpoint, {settings[k]!r} given"
             for k in keys if stored.get(k) != settings[k]]
    if diffs:
        raise ValueError(f"--resume: {path} was written with other settings: "
                         + "; ".join(diffs) + " (rerun with the checkpoint's values, or "
                         "use another --out)")


def evaluate_checkpoint(path, dataset=None, data_dir=None, device="cpu", log=print) -> dict:
    """`gpugrad evaluate`: rebuild the checkpoint's model and score it on its test set."""
    state = load(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), str) \
            or "model" not in state:
        raise ValueError(f"{path} is not a checkpoint written by gpugrad train (it needs "
                         "'config' and 'model' entries)")
    config = json.loads(state["config"])
    dataset = dataset or config["dataset"]
    test_set = get_dataset(dataset, data_dir or config.get("data_dir"), train=False)
    model = _model_for(config["model"], test_set)
    model.load_state_dict(state["model"])
    dev = backend.as_device(device)
    model.to(dev)
    loss, acc = evaluate(model, DataLoader(test_set, batch_size=1000), dev)
    log(f"{path}: {config['model']} on {dataset} test set: loss {loss:.4f}, "
        f"accuracy {100 * acc:.2f}%")
    return {"test_loss": loss, "test_accuracy": acc}
