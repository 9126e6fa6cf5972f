"""zfviz.train: filter renormalisation, checkpoints (round trip, corruption, wrong architecture), resume."""
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import zfviz.train as zfviz_train
from zfviz.data import Preprocess, sha256_file
from zfviz.models import alexnet_single, zfnet
from zfviz.evolution import Fig4Snapshots
from zfviz.evolution import save_snapshots as _save_snapshots
from zfviz.train import CheckpointError, TrainConfig, load_checkpoint, pick_device, renormalize_filters_, save_checkpoint
from zfviz.train import train as _train


def train(cfg, **kwargs):
    """zfviz.train.train with the Fig. 4 recorder, as `python -m zfviz.train` runs it."""
    return _train(cfg, callbacks=[Fig4Snapshots()], **kwargs)

NAN, INF = float("nan"), float("inf")


def test_renormalize_filters_caps_rms_at_threshold():
    m = zfnet(num_classes=4, width=0.125, input_size=64)
    with torch.no_grad():
        m.conv1.weight.normal_(0, 0.3)          # RMS ~0.3: every filter is over the cap
        m.conv2.weight.normal_(0, 0.01)         # RMS ~0.01: none is
    before2 = m.conv2.weight.clone()
    n = renormalize_filters_(m, 0.1)
    rms1 = m.conv1.weight.pow(2).mean((1, 2, 3)).sqrt()
    assert n >= m.conv1.out_channels
    assert torch.allclose(rms1, torch.full_like(rms1, 0.1), atol=1e-6)
    assert torch.equal(m.conv2.weight, before2)
    assert renormalize_filters_(m, 0.1) == 0    # idempotent


def test_renormalisation_off_leaves_filters_alone():
    m = zfnet(num_classes=4, width=0.125, input_size=64)
    with torch.no_grad():
        m.conv1.weight.normal_(0, 0.3)
    before = m.conv1.weight.clone()
    assert renormalize_filters_(m, 0) == 0
    assert torch.equal(m.conv1.weight, before)
    with pytest.raises(ValueError, match="max_rms must be >= 0"):
        renormalize_filters_(m, -0.1)


def small_model():
    return zfnet(num_classes=3, width=0.125, input_size=64)


def test_checkpoint_round_trip(tmp_path):
    m = small_model()
    pre = Preprocess(torch.rand(3, 64, 64), torch.tensor([0.2, 0.3, 0.4]))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.rand(2, 3, 64, 64)).sum().backward()
    opt.step()
    digest = save_checkpoint(tmp_path / "c.pt", m, pre, opt, epoch=7, classes=["a", "b", "c"])
    assert (tmp_path / "c.pt.sha256").read_text().split()[0] == digest
    m2, pre2, state = load_checkpoint(tmp_path / "c.pt")
    assert m2.config == m.config and state["epoch"] == 7 and state["info"]["classes"] == ["a", "b", "c"]
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(2, 3, 64, 64)
    m.eval(), m2.eval()
    assert torch.equal(m(pre(x)), m2(pre2(x)))
    assert state["optimizer"]["state"][0]["momentum_buffer"].shape == m.conv1.weight.shape
    assert not list(tmp_path.glob("*.tmp"))     # the atomic write left nothing behind


def test_corrupt_checkpoint_is_detected(tmp_path):
    save_checkpoint(tmp_path / "c.pt", small_model())
    raw = bytearray((tmp_path / "c.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "c.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is corrupt: sha256"):
        load_checkpoint(tmp_path / "c.pt")
    # Without a recorded hash a flipped byte inside tensor data would go unnoticed (torch does not
    # check the zip's CRCs), which is why a checkpoint without one is refused unless asked for.
    (tmp_path / "c.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match=r"no recorded sha256 \(c\.pt\.sha256 is missing\).*allow_unverified=True"):
        load_checkpoint(tmp_path / "c.pt")
    load_checkpoint(tmp_path / "c.pt", allow_unverified=True)        # loads: the flip is in tensor data
    (tmp_path / "c.pt").write_bytes(bytes(raw[: len(raw) // 2]))      # a truncated file still fails
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "c.pt", allow_unverified=True)


@pytest.mark.parametrize("sidecar, allowed, match", [
    (None, True, r"no recorded sha256 \(c\.pt\.sha256 is missing\)"),
    ("", True, r"no recorded sha256 \(c\.pt\.sha256 is empty\)"),
    ("\n  \n\t\n", True, r"no recorded sha256 \(c\.pt\.sha256 is empty\)"),
    ("HASH  c.pt\n", False, None),                                        # as save_checkpoint writes it
    ("HASH *c.pt\n\n", False, None),                                     # sha256sum's binary mode
    ("HASH  runs/b/c.pt\n", False, None),                                 # sha256sum run from elsewhere
    ("garbage\n", False, r"c\.pt\.sha256 is malformed at line 1: 'garbage'.*'<64 hex digits>  c\.pt'"),
    ("HASH  c.pt\nnot a hash  c.pt\n", False, r"c\.pt\.sha256 is malformed at line 2"),
    ("abc123  c.pt\n", False, r"c\.pt\.sha256 is malformed at line 1"),
    ("HASH\n", False, r"c\.pt\.sha256 is malformed at line 1"),             # no file name
    ("HASH  other.pt\n", False, r"records, at line 1, the hash of 'other\.pt', not of 'c\.pt'"),
    ("HASH  c.pt\n\xff\n", False, r"c\.pt\.sha256 is malformed at line 2"),
])
def test_checkpoint_sidecar_must_establish_integrity(tmp_path, sidecar, allowed, match):
    """No sidecar, an empty or blank one: refused unless allow_unverified=True; a malformed one: always refused."""
    digest = save_checkpoint(tmp_path / "c.pt", small_model())
    side = tmp_path / "c.pt.sha256"
    if sidecar is None:
        side.unlink()
    else:
        side.write_text(sidecar.replace("HASH", digest))
    if match is None:
        load_checkpoint(tmp_path / "c.pt")
        return
    for allow in (False, True):
        if allow and allowed:
            load_checkpoint(tmp_path / "c.pt", allow_unverified=True)   # asked for explicitly: loads
        else:
            with pytest.raises(CheckpointError, match=match):
                load_checkpoint(tmp_path / "c.pt", allow_unverified=allow)
    # A known hash passed by the caller is used instead of the sidecar.
    load_checkpoint(tmp_path / "c.pt", expected_sha256=digest.upper())
    with pytest.raises(CheckpointError, match="is corrupt: sha256"):
        load_checkpoint(tmp_path / "c.pt", expected_sha256="f" * 64)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"expected_sha256": 123}, TypeError, "expected_sha256 must be a hex string"),
    ({"expected_sha256": "abc"}, ValueError, r"expected_sha256 must be 64 hex digits \(a sha256\), got 'abc'"),
    ({"expected_sha256": "g" * 64}, ValueError, "expected_sha256 must be 64 hex digits"),
    ({"allow_unverified": "yes"}, TypeError, "allow_unverified must be True or False"),
    ({"path": None}, TypeError, r"path must be a checkpoint file name \(str or pathlib\.Path\)"),
])
def test_load_checkpoint_bad_arguments(tmp_path, kwargs, exc, match):
    save_checkpoint(tmp_path / "c.pt", small_model())
    kwargs = {"path": tmp_path / "c.pt", **kwargs}
    with pytest.raises(exc, match=match):
        load_checkpoint(**kwargs)


@pytest.mark.parametrize("model, epoch, exc, match", [
    (nn.Linear(2, 2), 0, TypeError, r"model must be a network built by zfviz\.models"),
    (None, 0, TypeError, r"model must be a network built by zfviz\.models"),
    ("small", -1, ValueError, "epoch must be an int >= 0"),
    ("small", 1.5, ValueError, "epoch must be an int >= 0"),
    ("small", True, ValueError, "epoch must be an int >= 0"),
])
def test_save_checkpoint_bad_arguments(tmp_path, model, epoch, exc, match):
    with pytest.raises(exc, match=match):
        save_checkpoint(tmp_path / "c.pt", small_model() if model == "small" else model, epoch=epoch)
    assert not list(tmp_path.iterdir())                           # nothing written


def test_checkpoint_for_another_architecture(tmp_path):
    save_checkpoint(tmp_path / "zf.pt", small_model())
    with pytest.raises(CheckpointError, match="is for .*'arch': 'zfnet'.*but the model is .*alexnet_single"):
        load_checkpoint(tmp_path / "zf.pt", alexnet_single(num_classes=3, width=0.125, input_size=64))
    with pytest.raises(CheckpointError, match="but the model is"):
        load_checkpoint(tmp_path / "zf.pt", zfnet(num_classes=5, width=0.125, input_size=64))


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"format": "zfviz-checkpoint-1", "x": Boom()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "evil.pt", allow_unverified=True)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a zfviz checkpoint"):
        load_checkpoint(tmp_path / "other.pt", allow_unverified=True)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match=r"no Apple GPU \(mps\); use --device cpu"):
            pick_device("mps")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA GPU\\(s\\), numbered from 0"):
            pick_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name, exc, match", [
    ("gpu", ValueError, "device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got 'gpu'"),
    ("tpu", ValueError, "device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got 'tpu'"),
    (None, TypeError, "device must be a string"),
    (0, TypeError, "device must be a string"),
])
def test_pick_device_bad_names(name, exc, match):
    with pytest.raises(exc, match=match):
        pick_device(name)


@pytest.mark.parametrize("max_rms, count, exc, match", [
    (NAN, True, ValueError, r"max_rms must be >= 0 and finite.*got nan"),
    (-0.1, True, ValueError, r"max_rms must be >= 0 and finite.*got -0\.1"),
    (INF, True, ValueError, r"max_rms must be >= 0 and finite.*got inf"),
    (True, True, TypeError, "max_rms must be a number"),
    ("0.1", True, TypeError, "max_rms must be a number"),
    (None, True, TypeError, "max_rms must be a number"),
    (0.1, 1, TypeError, "count must be True or False"),
])
def test_renormalize_filters_bad_arguments(max_rms, count, exc, match):
    m = small_model()
    before = m.conv1.weight.clone()
    with pytest.raises(exc, match=match):
        renormalize_filters_(m, max_rms, count)
    assert torch.equal(m.conv1.weight, before)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        renormalize_filters_([m])


@pytest.mark.parametrize("spec, epochs, exc, match", [
    (None, 5, TypeError, "snapshot_epochs must be a string"),
    ("0", 5, ValueError, r"must lie in 1\.\.5"),
    ("6", 5, ValueError, r"must lie in 1\.\.5"),
    ("1,,2", 5, ValueError, "snapshot_epochs must be 'paper' or a list like '1,2,5'"),
    ("1.5", 5, ValueError, "snapshot_epochs must be 'paper' or a list like '1,2,5'"),
    ("Paper", 5, ValueError, "snapshot_epochs must be 'paper' or a list like '1,2,5'"),
    ("paper", 0, ValueError, "epochs must be a positive int"),
    ("paper", True, ValueError, "epochs must be a positive int"),
    ("1", 2.0, ValueError, "epochs must be a positive int"),
])
def test_snapshot_epochs_bad_specs(spec, epochs, exc, match):
    from zfviz.train import snapshot_epochs
    with pytest.raises(exc, match=match):
        snapshot_epochs(spec, epochs)


def test_snapshot_epochs_good_specs():
    from zfviz.train import snapshot_epochs
    assert snapshot_epochs("", 5) == snapshot_epochs("  ", 5) == []
    assert snapshot_epochs(" 3, 1,3", 5) == [1, 3]
    assert snapshot_epochs("paper", 1) == [1]


def _eval_inputs():
    m = small_model()
    pre = Preprocess(torch.rand(3, 64, 64), torch.tensor([0.2, 0.3, 0.4]))
    return m, pre, torch.rand(5, 3, 64, 64), torch.tensor([0, 1, 2, 0, 1])


@pytest.mark.parametrize("change, exc, match", [
    (lambda x, y: ((x * 255).byte(), y), TypeError, r"images must be float pixels in \[0, 1\].*images\.float\(\) / 255"),
    (lambda x, y: (x * 255, y), ValueError, r"images must be pixels in \[0, 1\].*got values in"),
    (lambda x, y: (x * NAN, y), ValueError, r"images must be pixels in \[0, 1\].*nan"),
    (lambda x, y: (x[0], y), ValueError, r"images must be \(N, 3, S, S\)"),
    (lambda x, y: (x, y[:3]), ValueError, "got 5 images, 3 labels"),
    (lambda x, y: (x[:0], y[:0]), ValueError, "got 0 images, 0 labels"),
    (lambda x, y: (x, y.float()), TypeError, "labels must be a 1-D tensor of class indices"),
    (lambda x, y: (x, y > 0), TypeError, "labels must be a 1-D tensor of class indices"),
    (lambda x, y: (x, y + 3), ValueError, r"labels must be class indices in 0\.\.2 \(the model has 3 outputs\), got values in 3\.\.5"),
    (lambda x, y: (x, y - 1), ValueError, r"labels must be class indices in 0\.\.2"),
    (lambda x, y: (x.numpy(), y), TypeError, "images and labels must be torch.Tensors"),
])
def test_evaluate_bad_inputs(change, exc, match):
    from zfviz.train import evaluate
    m, pre, x, y = _eval_inputs()
    with pytest.raises(exc, match=match):
        evaluate(m, pre, *change(x, y))


def test_evaluate_bad_batch_size_and_train_step_bad_amp():
    from zfviz.train import evaluate, train_step
    m, pre, x, y = _eval_inputs()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            evaluate(m, pre, x, y, batch_size=bad)
    r = evaluate(m, pre, x, y, batch_size=2)
    assert 0 <= r["accuracy"] <= 1 and r["loss"] > 0
    before = m.conv1.weight.clone()
    with pytest.raises(ValueError, match="amp must be 'none' or 'bf16', got 'fp16'"):
        train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), pre(x), y, amp="fp16")
    assert torch.equal(m.conv1.weight, before)                 # refused before any update


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"init": "xavier"}, ValueError, "init must be 'paper' or 'kaiming'"),
    ({"epochs": 0}, ValueError, "epochs must be a positive int"),
    ({"epochs": 2.0}, TypeError, r"epochs must be an int, got 2\.0 \(float\)"),
    ({"epochs": True}, TypeError, r"epochs must be an int, got True \(bool\)"),
    ({"batch_size": "64"}, TypeError, "batch_size must be an int"),
    ({"input_size": 0}, ValueError, "input_size must be a positive int"),
    ({"renders": -1}, ValueError, "renders must be a positive int"),
    ({"fc_units": 0}, ValueError, "fc_units must be a positive int"),
    ({"workers": -1}, ValueError, r"workers must be an int >= 0"),
    ({"lr_patience": -1}, ValueError, r"lr_patience must be an int >= 0"),
    ({"checkpoint_every": -1}, ValueError, r"checkpoint_every must be an int >= 0"),
    ({"seed": -1}, ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
    ({"seed": 2 ** 32}, ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
    ({"lr": 0}, ValueError, r"lr must be a finite number in \(0, inf\)"),
    ({"lr": -0.01}, ValueError, r"lr must be a finite number in \(0, inf\)"),
    ({"lr": NAN}, ValueError, r"lr must be a finite number in \(0, inf\).*got nan"),
    ({"lr": INF}, ValueError, r"lr must be a finite number in \(0, inf\).*got inf"),
    ({"lr": "0.01"}, TypeError, r"lr must be a number, got '0\.01' \(str\)"),
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\)"),
    ({"momentum": -0.1}, ValueError, r"momentum must be in \[0, 1\)"),
    ({"momentum": NAN}, ValueError, r"momentum must be in \[0, 1\).*got nan"),
    ({"weight_decay": -1e-4}, ValueError, r"weight_decay must be a finite number in \[0, inf\)"),
    ({"weight_decay": INF}, ValueError, r"weight_decay must be a finite number in \[0, inf\)"),
    ({"lr_factor": 1.0}, ValueError, r"lr_factor must be in \(0, 1\)"),
    ({"lr_factor": 0.0}, ValueError, r"lr_factor must be in \(0, 1\)"),
    ({"lr_factor": NAN}, ValueError, r"lr_factor must be in \(0, 1\)"),
    ({"min_lr": NAN}, ValueError, r"min_lr must be a finite number in \[0, inf\)"),
    ({"min_lr": 0.1}, ValueError, r"min_lr \(0\.1\) must not exceed lr \(0\.01\)"),
    ({"max_filter_rms": -1.0}, ValueError, "max_filter_rms must be a finite"),
    ({"max_filter_rms": INF}, ValueError, "0 turns renormalisation off"),
    ({"max_filter_rms": NAN}, ValueError, "max_filter_rms must be a finite.*got nan"),
    ({"max_filter_rms": True}, TypeError, "max_filter_rms must be a number"),
    ({"dropout": NAN}, ValueError, r"dropout must be in \[0, 1\).*got nan"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"dropout": -0.5}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"width": NAN}, ValueError, "width must be a finite number > 0"),
    ({"width": 0.001}, ValueError, r"width=0\.001 is too narrow.*smallest width"),
    ({"channels_last": 1}, TypeError, "channels_last must be True or False"),
    ({"compile": "yes"}, TypeError, "compile must be True or False"),
    ({"device": "gpu"}, ValueError, "device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got 'gpu'"),
    ({"device": 0}, TypeError, "device must be a string"),
    ({"dataset": "imagenet"}, ValueError, "dataset must be 'clipart' .* or 'imagefolder', got 'imagenet'"),
    ({"dataset": "imagefolder"}, ValueError, "needs --data-root"),
    ({"amp": "fp16"}, ValueError, "amp must be 'none' or 'bf16'"),
    ({"lr_steps": None}, TypeError, "lr_steps must be a string"),
    ({"lr_steps": "5,3", "epochs": 9}, ValueError, "lr_steps must be increasing"),
    ({"lr_steps": "70"}, ValueError, r"epochs in 1\.\.69"),
    ({"snapshot_epochs": "1,,2"}, ValueError, "snapshot_epochs must be 'paper' or a list"),
    ({"drop_layers": "5"}, ValueError, r"drop may hold the layers \(3, 4, 6, 7\)"),
])
def test_bad_config(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TrainConfig(**kwargs)


def test_train_validates_fields_set_after_construction(tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "x"))
    cfg.lr = NAN
    with pytest.raises(ValueError, match="lr must be a finite number"):
        train(cfg, progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match="cfg must be a zfviz.train.TrainConfig"):
        train({"lr": 0.01})


def tiny(tmp_path, name, epochs):
    return TrainConfig(width=0.0625, input_size=64, renders=1, epochs=epochs, batch_size=64,
                       out=str(tmp_path / name), seed=3)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = train(tiny(tmp_path, "a", 2), progress=False)
    train(tiny(tmp_path, "b", 1), progress=False)
    resumed = train(tiny(tmp_path, "b", 2), resume=tmp_path / "b" / "last.pt", progress=False)
    for (k, a), (_, b) in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][1]["train_loss"] == straight["history"][1]["train_loss"]
    # best.pt (real validation accuracies here) holds the first epoch of the best one, in both runs.
    accuracies = [h["val_accuracy"] for h in resumed["history"]]
    best_epoch = accuracies.index(max(accuracies)) + 1
    for run in ("a", "b"):
        best, _, state = load_checkpoint(tmp_path / run / "best.pt")
        assert state["epoch"] == best_epoch
    if best_epoch == 2:
        assert torch.equal(best.fc8.weight, resumed["model"].fc8.weight)
    # The recipe's invariant holds after training: no conv filter above RMS 0.1.
    for m in straight["model"].modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.pow(2).mean((1, 2, 3)).sqrt().max() <= 0.1 + 1e-6
    # The history records every layer-1 filter's RMS (Fig. 6a), here after the last epoch.
    w = straight["model"].conv1.weight
    assert straight["history"][-1]["conv1_rms"] == pytest.approx(w.pow(2).mean((1, 2, 3)).sqrt().tolist(), abs=1e-6)


def test_fixed_lr_schedule_and_a_size_ablation_train(tmp_path):
    cfg = TrainConfig(width=0.0625, input_size=64, renders=1, epochs=3, batch_size=64, out=str(tmp_path / "s"),
                      seed=3, lr_steps="1,2", drop_layers="3,4,6,7")
    run = train(cfg, progress=False)
    # lr 1e-2, divided by 10 after epochs 1 and 2 whatever the validation loss did.
    assert [h["lr"] for h in run["history"]] == pytest.approx([1e-3, 1e-4, 1e-4])
    assert [n for n, _ in run["model"].named_children() if n.startswith(("conv", "fc"))] == \
        ["conv1", "conv2", "conv5", "fc8"]
    model, _, _ = load_checkpoint(tmp_path / "s" / "last.pt")            # rebuilt from the stored options
    assert model.config["drop"] == [3, 4, 6, 7]


def test_sidecar_accepts_either_file_while_a_save_is_in_flight(tmp_path):
    """A kill between the checkpoint's rename and the sidecar's rewrite must leave a loadable pair."""
    old = save_checkpoint(tmp_path / "c.pt", small_model())
    (tmp_path / "c.pt").rename(tmp_path / "old.pt")
    new = save_checkpoint(tmp_path / "c.pt", small_model())
    assert new != old
    (tmp_path / "c.pt.sha256").write_text(f"{new}  c.pt\n{old}  c.pt\n")   # the in-flight state
    load_checkpoint(tmp_path / "c.pt")                                     # the new file verifies
    (tmp_path / "old.pt").replace(tmp_path / "c.pt")
    load_checkpoint(tmp_path / "c.pt")                                     # and so does the old one
    (tmp_path / "c.pt.sha256").write_text(f"{new}  c.pt\n")
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(tmp_path / "c.pt")


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """Kill training with SIGKILL inside the first epoch, resume from last.pt: same final weights."""
    cmd = [sys.executable, "-m", "zfviz.train", "--width", "0.0625", "--input-size", "64", "--renders", "1",
           "--epochs", "2", "--batch-size", "16", "--seed", "3", "--checkpoint-every", "3", "--threads", "1",
           "--no-progress"]
    subprocess.run(cmd + ["--out", str(tmp_path / "a")], check=True, capture_output=True)
    killed = tmp_path / "b" / "last.pt"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "b")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not killed.exists():
            assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, _, state = load_checkpoint(killed)
    assert state["epoch"] == 0 and state["info"]["step"] > 0              # it really died mid-epoch
    subprocess.run(cmd + ["--out", str(tmp_path / "b"), "--resume", str(killed)], check=True, capture_output=True)
    a, _, state_a = load_checkpoint(tmp_path / "a" / "last.pt")
    b, _, state_b = load_checkpoint(killed)
    assert state_a["epoch"] == state_b["epoch"] == 2
    for (k, wa), (_, wb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(wa, wb), k
    assert [round(h["train_loss"], 6) for h in state_a["info"]["history"]] == \
           [round(h["train_loss"], 6) for h in state_b["info"]["history"]]


def test_two_processes_with_torchrun_match_one_process(tmp_path):
    """DistributedDataParallel over 2 CPU processes (gloo), global batch 64 = 2 x 32, against one process
    with batch 64: the same parameters up to float rounding (dropout off, as its masks are random).

    Renormalisation off as well: it is a threshold (rescale a filter whose RMS exceeds 0.1), so a filter that
    lands within a rounding error of it is rescaled in one run and not in the other. Under PyTorch's plain
    kernels with SSE4.1 oneDNN that happened here within 12 steps and moved layer 1 by 7e-4 (2% of its largest
    weight); with renormalisation off the two runs agree to 1e-8 on every code path."""
    args = ["--width", "0.0625", "--input-size", "64", "--renders", "1", "--epochs", "2", "--batch-size", "64",
            "--seed", "5", "--dropout", "0", "--max-filter-rms", "0", "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "zfviz.train", *args, "--out", str(tmp_path / "one")],
                   check=True, capture_output=True, env=env)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", "-m", "zfviz.train", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "2 processes" in two.stdout
    one, _, s1 = load_checkpoint(tmp_path / "one" / "last.pt")
    ddp, _, s2 = load_checkpoint(tmp_path / "two" / "last.pt")
    for (k, a), (_, b) in zip(one.state_dict().items(), ddp.state_dict().items()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (k, (a - b).abs().max().item())
    h1, h2 = s1["info"]["history"], s2["info"]["history"]
    assert [h["train_accuracy"] for h in h1] == [h["train_accuracy"] for h in h2]   # all-reduced counts
    assert abs(h1[-1]["train_loss"] - h2[-1]["train_loss"]) < 1e-4


def test_train_step_bf16_and_channels_last_agree_with_fp32():
    """The tuned GPU path computes the same update as the plain one, up to bfloat16 rounding."""
    from zfviz.train import train_step
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(3, (8,))
    results = []
    for amp, channels_last in [("none", False), ("bf16", True)]:
        torch.manual_seed(1)
        m = small_model().eval()                     # eval: no dropout, so both see the same network
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        xx = x
        if channels_last:
            m, xx = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        loss, logits, n = train_step(m, opt, xx, y, amp=amp)
        results.append((loss, m.conv1.weight.detach().clone(), n))
    (l32, w32, n32), (l16, w16, n16) = results
    assert abs(l32.item() - l16.item()) < 2e-2 * abs(l32.item())
    assert torch.allclose(w32, w16, atol=1e-3) and n32 == n16
    assert train_step(m, opt, xx, y, count=False)[2] is None
    with pytest.raises(ValueError, match="amp must be 'none' or 'bf16'"):
        TrainConfig(amp="fp16")


def test_training_from_an_image_folder(tmp_path):
    """The ImageNet layout (root/train/<class>/*, root/val/<class>/*), random crops and flips, offline."""
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("val", 4)):
        for cls, colour in (("red", 0), ("blue", 2)):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(n):
                img = torch.rand(60, 80, 3, generator=g) * 0.3
                img[..., colour] += 0.7
                Image.fromarray((img * 255).byte().numpy()).save(tmp_path / "imgs" / split / cls / f"{i}.png")
    cfg = TrainConfig(dataset="imagefolder", data_root=str(tmp_path / "imgs"), width=0.0625, input_size=64,
                      epochs=3, batch_size=8, out=str(tmp_path / "run"), seed=0)
    result = train(cfg, progress=False)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    model, preprocess, state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert model.config["num_classes"] == 2 and state["info"]["classes"] == ["blue", "red"]
    assert preprocess.mean.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="needs --data-root"):
        train(TrainConfig(dataset="imagefolder", out=str(tmp_path / "x")), progress=False)


# --- A shared tiny run with snapshots and best.pt, and the resume checks that read it ---------------------------

_REAL_DATASETS, _REAL_EVALUATE = zfviz_train._datasets, zfviz_train._evaluate_set
_DATASETS = {}


def _cache_datasets(mp):
    """Build each clip-art set once for this module (the composites depend only on seed and epoch; a run
    leaves the training set at its last epoch, and fits its preprocessing to epoch 0's, hence the reset)."""
    def cached(cfg):
        key = (cfg.dataset, cfg.data_root, cfg.input_size, cfg.renders, cfg.seed)
        if key not in _DATASETS:
            _DATASETS[key] = _REAL_DATASETS(cfg)
        train_set, val_set = _DATASETS[key]
        train_set.set_epoch(0)
        return train_set, val_set
    mp.setattr(zfviz_train, "_datasets", cached)


def _fake_accuracies(mp, accuracies):
    """The validation accuracy of successive epochs, as given (the real loss still drives the schedule)."""
    left = list(accuracies)
    mp.setattr(zfviz_train, "_evaluate_set", lambda *a, **k: {**_REAL_EVALUATE(*a, **k), "accuracy": left.pop(0)})


def snap_cfg(out, **changes):
    return TrainConfig(**{"width": 0.0625, "input_size": 64, "renders": 1, "epochs": 2, "batch_size": 64,
                          "out": str(out), "seed": 3, "snapshot_epochs": "1,2", **changes})


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A tiny 2-epoch run with Fig. 4 snapshots after both epochs; validation accuracy made 0.5, then 0.25,
    so that best.pt holds epoch 1 while last.pt holds epoch 2. Returns (its folder, train's result)."""
    out = tmp_path_factory.mktemp("run2") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _cache_datasets(mp)
        _fake_accuracies(mp, [0.5, 0.25])
        result = train(snap_cfg(out), progress=False)
    return out, result


def test_snapshots_record_the_strongest_projection_at_the_chosen_epochs(run2):
    """Fig. 4 data: after epochs 1 and 2, four maps per layer, strongest activation over fixed images."""
    from zfviz.data import ClipArt
    from zfviz.deconv import strongest_projections
    from zfviz.train import snapshot_epochs
    folder, result = run2
    snaps = torch.load(folder / "snapshots.pt", weights_only=True)
    assert snaps["epochs"] == [1, 2] and sorted(snaps["layers"]) == [1, 2, 3, 4, 5]
    images = result["preprocess"](ClipArt("val", input_size=64, seed=3).tensors()[0][:64])
    model = result["model"].eval()
    for layer, entry in snaps["layers"].items():
        assert entry["channels"].shape == (4,) and len(entry["projections"]) == 2
        top, projections = strongest_projections(model, images, layer, entry["channels"].tolist())
        assert torch.equal(entry["indices"][-1], top.indices[:, 0])           # recomputed independently
        assert torch.allclose(entry["projections"][-1].float(), projections, rtol=1e-2, atol=1e-3)
    # Every conv layer's weights and biases at each snapshot epoch; the last are the run's final weights.
    assert len(snaps["convs"]) == 2
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    for layer, conv in enumerate(convs, start=1):
        assert torch.equal(snaps["convs"][-1][f"{layer}.weight"], conv.weight.detach())
        assert torch.equal(snaps["convs"][-1][f"{layer}.bias"], conv.bias.detach())
        assert not torch.equal(snaps["convs"][0][f"{layer}.weight"], conv.weight.detach())   # epoch 1 differs
    assert snapshot_epochs("paper", 70) == [1, 2, 5, 10, 20, 30, 40, 64]
    assert snapshot_epochs("paper", 100) == [1, 3, 7, 14, 29, 43, 57, 91]
    with pytest.raises(ValueError, match=r"must lie in 1\.\.2"):
        TrainConfig(epochs=2, snapshot_epochs="1,5")


def test_history_records_layer_1_statistics(run2):
    """Each epoch's row holds layer 1's neighbour correlation and how far it moved from its random start,
    recomputed here from the start (rebuilt from the seed) and the final weights."""
    from zfviz.features import neighbour_correlation
    from zfviz.models import build_model, init_kaiming_, init_paper_
    folder, result = run2
    last = result["history"][-1]
    conv1 = result["model"].conv1.weight.detach()
    torch.manual_seed(3)
    start = init_paper_(init_kaiming_(build_model("zfnet", 10, 0.0625, 64)).conv1, 0.01).weight.detach()   # conv1_std
    assert last["conv1_neighbour_correlation"] == pytest.approx(neighbour_correlation(conv1).mean().item(), abs=1e-4)
    assert last["conv1_moved"] == pytest.approx(((conv1 - start).norm() / start.norm()).item(), abs=1e-4)
    assert last["conv1_moved"] > 0


def test_conv1_std_and_input_scale(tmp_path, monkeypatch):
    """--conv1-std starts layer 1 alone at N(0, std^2) (the rest as --init); --input-scale multiplies the
    network's input by dividing the preprocessing's std."""
    _cache_datasets(monkeypatch)
    seen = {}
    real_step = zfviz_train.train_step

    def spy(model, opt, x, *a, **k):
        if "x" not in seen:
            seen["x"], seen["conv1"] = x.clone(), model.conv1.weight.detach().clone()
            seen["conv2"] = model.conv2.weight.detach().clone()
        return real_step(model, opt, x, *a, **k)
    monkeypatch.setattr(zfviz_train, "train_step", spy)
    plain = train(snap_cfg(tmp_path / "a", epochs=1, snapshot_epochs=""), progress=False)
    x_plain, conv2_plain = seen.pop("x"), seen.pop("conv2")
    seen.clear()
    scaled = train(snap_cfg(tmp_path / "b", epochs=1, snapshot_epochs="", conv1_std=0.01, input_scale=8.0),
                   progress=False)
    assert torch.allclose(seen["x"], 8 * x_plain, rtol=1e-5, atol=1e-5)
    assert torch.allclose(scaled["preprocess"].std, plain["preprocess"].std / 8)
    assert abs(seen["conv1"].std().item() - 0.01) < 0.002          # 648 weights of N(0, 0.01^2)
    assert torch.equal(seen["conv2"], conv2_plain)                     # the other layers start as before
    with pytest.raises(ValueError, match="conv1_std must be"):
        TrainConfig(conv1_std=-0.01)
    with pytest.raises(ValueError, match="input_scale must be"):
        TrainConfig(input_scale=0.0)


def test_best_pt_holds_the_epoch_of_best_validation_accuracy(run2):
    folder, result = run2
    best_model, best_pre, best = load_checkpoint(folder / "best.pt")     # verified by its own .sha256
    _, _, last = load_checkpoint(folder / "last.pt")
    assert [h["val_accuracy"] for h in last["info"]["history"]] == [0.5, 0.25]
    assert best["epoch"] == 1 and last["epoch"] == 2
    assert best["info"]["history"] == last["info"]["history"][:1]
    assert best["optimizer"] is None and best_pre is not None          # for reading, not for resuming
    assert not torch.equal(best_model.conv1.weight, result["model"].conv1.weight)


def _same_snapshots(a: Path, b: Path) -> None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa["epochs"] == sb["epochs"]
    for layer, entry in sa["layers"].items():
        for key in ("values", "indices", "projections"):
            assert len(entry[key]) == len(sb["layers"][layer][key])
            for x, y in zip(entry[key], sb["layers"][layer][key]):
                assert torch.equal(x, y), (layer, key)


def _cli_args(out, **changes):
    args = {"width": 0.0625, "input-size": 64, "renders": 1, "epochs": 2, "batch-size": 64, "seed": 3,
            "snapshot-epochs": "1,2", "out": out, **changes}
    return [a for k, v in args.items() for a in (f"--{k}", str(v))] + ["--no-progress"]


@pytest.mark.parametrize("changes, match", [
    ({"lr": 0.5, "seed": 9, "renders": 2},
     r"renders 1 -> 2, lr 0\.01 -> 0\.5, seed 3 -> 9 \(checkpoint -> now\).*\(--renders 1 --lr 0\.01 --seed 3\)"),
    ({"batch_size": 32}, "batch_size 64 -> 32"),
    ({"momentum": 0.5}, r"momentum 0\.9 -> 0\.5"),
    ({"width": 0.125}, r"width 0\.0625 -> 0\.125"),
    ({"input_size": 72}, "input_size 64 -> 72"),
    ({"dropout": 0.0}, r"dropout 0\.5 -> 0\.0"),
    ({"max_filter_rms": 0.0}, r"max_filter_rms 0\.1 -> 0\.0"),
    ({"lr_steps": "1"}, "lr_steps '' -> '1'"),
    ({"amp": "bf16"}, "amp 'none' -> 'bf16'"),
    ({"init": "paper"}, "init 'kaiming' -> 'paper'"),
    ({"drop_layers": "7"}, "drop_layers '' -> '7'"),
    ({"epochs": 1, "snapshot_epochs": "1"}, r"has trained 2 epoch\(s\); epochs=1 would end the run before that. "
                                            r"Pass --epochs 3 or more"),
])
def test_resume_refuses_other_settings(run2, changes, match):
    """A resume must continue the same run: changed hyper-parameters are named, old and new, before any work."""
    folder, _ = run2
    before = (folder / "last.pt.sha256").read_text()
    with pytest.raises(ValueError, match=match):
        train(snap_cfg(folder, **changes), resume=folder / "last.pt", progress=False)
    assert (folder / "last.pt.sha256").read_text() == before


def test_resume_on_the_command_line_refuses_other_settings_and_a_reading_checkpoint(run2):
    from zfviz.cli import train_main as main
    folder, _ = run2
    with pytest.raises(ValueError, match=r"lr 0\.01 -> 0\.5, seed 3 -> 9.*Only epochs, out, workers"):
        main(_cli_args(folder, lr=0.5, seed=9) + ["--resume", str(folder / "last.pt")])
    with pytest.raises(CheckpointError, match="holds no optimiser state.*resume from the run's last.pt"):
        train(snap_cfg(folder), resume=folder / "best.pt", progress=False)


def test_resume_needs_a_verified_checkpoint(run2, tmp_path):
    """A flipped byte in a checkpoint without its .sha256 must not be trained on (the CLI's --resume)."""
    import shutil

    from zfviz.cli import train_main as main
    folder, _ = run2
    raw = bytearray((folder / "last.pt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "last.pt").write_bytes(bytes(raw))
    cli = _cli_args(tmp_path) + ["--resume", str(tmp_path / "last.pt")]
    with pytest.raises(CheckpointError, match=r"no recorded sha256 \(last\.pt\.sha256 is missing\).*--allow-unverified"):
        main(cli)
    shutil.copy(folder / "last.pt.sha256", tmp_path / "last.pt.sha256")
    with pytest.raises(CheckpointError, match="last.pt is corrupt: sha256"):
        main(cli)
    with pytest.raises(SystemExit):
        main(_cli_args(tmp_path) + ["--allow-unverified"])            # without --resume: a usage error


def _keep_snapshot_epochs(path: Path, keep) -> None:
    state = torch.load(path, weights_only=True)
    idx = [i for i, e in enumerate(state["epochs"]) if e in keep]
    state["epochs"] = [state["epochs"][i] for i in idx]
    for entry in state["layers"].values():
        for key in ("values", "indices", "projections"):
            entry[key] = [entry[key][i] for i in idx]
    _save_snapshots(path, state)          # as training writes it, with its sha256


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _replace_best_by_last(folder: Path) -> None:
    digest = save_checkpoint(folder / "best.pt", load_checkpoint(folder / "last.pt")[0])
    assert (folder / "best.pt.sha256").read_text().startswith(digest)


@pytest.mark.parametrize("damage, match", [
    (lambda f: _keep_snapshot_epochs(f / "snapshots.pt", [1]), None),     # killed before the epoch-2 snapshot
    (lambda f: (f / "snapshots.pt").unlink(), r"snapshots\.pt lacks the Fig\. 4 snapshot\(s\) of epoch\(s\) \[1, 2\]"),
    (lambda f: _keep_snapshot_epochs(f / "snapshots.pt", [2]), r"lacks the Fig\. 4 snapshot\(s\) of epoch\(s\) \[1\].*"
                                                             r"those weights are gone"),
    (lambda f: (f / "best.pt").unlink(), r"best\.pt should hold epoch 1 \(validation accuracy 0\.5000.*it is missing"),
    (_replace_best_by_last, r"best\.pt should hold epoch 1 .*it holds another"),
    (lambda f: (f / "best.pt.sha256").unlink(), r"best\.pt has no recorded sha256"),
    (lambda f: _flip_last_byte(f / "snapshots.pt"), r"snapshot file .*snapshots\.pt is corrupt: sha256"),
    (lambda f: (f / "snapshots.pt.sha256").unlink(), r"snapshot file .*snapshots\.pt has no recorded sha256"),
])
def test_resume_restores_or_refuses_what_the_run_folder_lacks(run2, tmp_path, monkeypatch, damage, match):
    """On resume the Fig. 4 snapshots and best.pt must be complete up to the checkpoint: the snapshot of the
    checkpoint's own epoch is recorded again from its weights; anything older that is missing is refused."""
    import shutil
    folder, _ = run2
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    damage(copy)
    _cache_datasets(monkeypatch)
    if match is None:
        result = train(snap_cfg(copy), resume=copy / "last.pt", progress=False)   # nothing left to train
        assert [h["epoch"] for h in result["history"]] == [1, 2]
        _same_snapshots(copy / "snapshots.pt", folder / "snapshots.pt")
    else:
        with pytest.raises(ValueError, match=match):
            train(snap_cfg(copy), resume=copy / "last.pt", progress=False)


def test_resume_into_a_new_folder_takes_the_snapshots_and_best_pt_along(run2, tmp_path, monkeypatch):
    folder, _ = run2
    _cache_datasets(monkeypatch)
    train(snap_cfg(tmp_path / "new"), resume=folder / "last.pt", progress=False)
    _same_snapshots(tmp_path / "new" / "snapshots.pt", folder / "snapshots.pt")
    assert (tmp_path / "new" / "best.pt").read_bytes() == (folder / "best.pt").read_bytes()
    assert load_checkpoint(tmp_path / "new" / "best.pt")[2]["epoch"] == 1


def test_a_kill_between_the_snapshot_and_the_checkpoint_loses_nothing(run2, tmp_path, monkeypatch):
    """Killed after epoch 2's snapshot (and best.pt) but before its last.pt: the resume redoes epoch 2 and ends
    with the uninterrupted run's weights and snapshots, none lost or doubled."""
    folder, straight = run2
    _cache_datasets(monkeypatch)
    _fake_accuracies(monkeypatch, [0.5, 0.25])
    real_save = zfviz_train.save_checkpoint

    class Killed(Exception):
        pass

    def save(path, model, preprocess=None, optimizer=None, scheduler=None, epoch=0, **info):
        if Path(path).name == "last.pt" and epoch == 2:
            raise Killed
        return real_save(path, model, preprocess, optimizer, scheduler, epoch, **info)

    monkeypatch.setattr(zfviz_train, "save_checkpoint", save)
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        train(snap_cfg(out), progress=False)
    assert torch.load(out / "snapshots.pt", weights_only=True)["epochs"] == [1, 2]   # written before the kill
    epoch1, _, state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1
    best, _, _ = load_checkpoint(folder / "best.pt")          # the uninterrupted run's epoch 1: the same weights
    for (k, a), (_, b) in zip(epoch1.state_dict().items(), best.state_dict().items()):
        assert torch.equal(a, b), k
    monkeypatch.setattr(zfviz_train, "save_checkpoint", real_save)
    _fake_accuracies(monkeypatch, [0.25])
    resumed = train(snap_cfg(out), resume=out / "last.pt", progress=False)
    for (k, a), (_, b) in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), k
    _same_snapshots(out / "snapshots.pt", folder / "snapshots.pt")
    assert (out / "best.pt").read_bytes() != b"" and load_checkpoint(out / "best.pt")[2]["epoch"] == 1


def test_a_non_finite_loss_stops_training_naming_the_epoch_and_step(tmp_path, monkeypatch):
    _cache_datasets(monkeypatch)
    real_step, calls = zfviz_train.train_step, []

    def step(*args, **kwargs):
        loss, logits, n = real_step(*args, **kwargs)
        calls.append(1)
        return (torch.tensor(NAN) if len(calls) == 3 else loss), logits, n

    monkeypatch.setattr(zfviz_train, "train_step", step)
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss is nan at epoch 1, step 3 of 6 "
                                                 r"\(lr 0\.01\).*--lr 0\.001"):
        train(tiny(tmp_path, "nan", 1), progress=False)
    assert len(calls) == 3 and not (tmp_path / "nan" / "last.pt").exists()


def test_every_command_line_option_explains_itself(monkeypatch):
    import contextlib
    import io
    from dataclasses import fields

    from zfviz.cli import train_main as main
    from zfviz.train import TrainConfig
    monkeypatch.setenv("COLUMNS", "2000")          # no line wrapping (it may break at hyphens)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(out.getvalue().split())
    for f in fields(TrainConfig):
        help = " ".join(f.metadata["help"].split())
        assert len(help) > 5 and help in text, f"--{f.name.replace('_', '-')} has no help"
    assert "(default: 0.1)" in text and "--resume" in text
    resume_help = text[text.index("--resume LAST_PT"):]
    assert all(f"--{name.replace('_', '-')}" in resume_help for name in zfviz_train.RESUME_CHANGEABLE)
    assert "Anything else is refused" in resume_help and "--allow-unverified" in text
    assert "best.pt, the epoch of best validation accuracy" in text


@pytest.mark.parametrize("rel", ["weights/renorm_ablation", "weights/renorm_paper_scale"])
def test_shipped_renormalisation_runs_agree_with_their_records(rel):
    """The Fig. 6(a) runs the training chapter reads: the weights match the recorded filter RMS, the
    renormalised arm never exceeds the radius, and the record's sha256 is the manifest's."""
    import json

    from zfviz import data
    shipped = torch.load(data.data_path(rel + ".pt"), weights_only=True)
    record = json.loads(data.data_path(rel + ".json").read_text())
    assert record["sha256"] == data._manifest(data.DATA_DIR)[rel + ".pt"]
    assert set(shipped["arms"]) == {"renormalised", "not renormalised"}
    for name, arm in shipped["arms"].items():
        assert len(arm["history"]) == shipped["epochs"]
        weight = arm["conv1.weight"]
        last = weight[shipped["epochs"]] if isinstance(weight, dict) else weight   # epoch -> weights, or final
        rms = last.pow(2).mean(dim=(1, 2, 3)).sqrt()
        assert torch.allclose(rms, torch.tensor(arm["history"][-1]["conv1_rms"]), atol=1e-4)
        if arm["max_filter_rms"]:
            assert rms.max() <= arm["max_filter_rms"] * (1 + 1e-5)
        else:
            assert name == "not renormalised"


def test_snapshot_epochs_without_the_fig4_recorder_are_refused(tmp_path):
    """Training does not know the deconvnet: Fig. 4 snapshots come from a callback, and asking for them without
    one is an error, not a run that silently records nothing."""
    cfg = TrainConfig(width=0.0625, input_size=64, renders=1, epochs=2, out=str(tmp_path), snapshot_epochs="1")
    with pytest.raises(ValueError, match=r"snapshot_epochs='1' asks for Fig\. 4 snapshots: pass "
                                         r"callbacks=\[zfviz\.evolution\.Fig4Snapshots\(\)\]"):
        _train(cfg, progress=False)
    assert not any(tmp_path.iterdir())                  # refused before any data or file was made



def test_train_config_takes_the_old_name_image_size_with_a_warning():
    """Issue 17: the input side is input_size everywhere; image_size= (the old field) still works, deprecated."""
    with pytest.warns(DeprecationWarning, match="image_size= is deprecated: pass input_size="):
        old = TrainConfig(width=0.0625, image_size=64)
    assert old == TrainConfig(width=0.0625, input_size=64)
    with pytest.warns(DeprecationWarning, match=r"\.image_size is deprecated: read \.input_size"):
        assert old.image_size == 64
    with pytest.raises(TypeError, match="got both input_size= and its old name image_size="):
        TrainConfig(input_size=64, image_size=64)
    assert "image_size" not in [f.name for f in dataclasses.fields(TrainConfig)]


def _as_before_issue_17(path: Path) -> None:
    """Rewrite a checkpoint as runs before issue 17 stored it: train_config's input_size called image_size."""
    state = torch.load(path, weights_only=True)
    state["info"]["train_config"] = {("image_size" if k == "input_size" else k): v
                                     for k, v in state["info"]["train_config"].items()}
    torch.save(state, path)
    (path.parent / f"{path.name}.sha256").write_text(f"{sha256_file(path)}  {path.name}\n")


def test_an_old_checkpoint_with_image_size_loads_and_resumes_and_a_new_one_stores_input_size(run2, tmp_path,
                                                                                             monkeypatch):
    import shutil
    folder, _ = run2
    stored = torch.load(folder / "last.pt", weights_only=True)["info"]["train_config"]     # as written, unread
    assert stored["input_size"] == 64 and "image_size" not in stored
    copy = tmp_path / "old"
    shutil.copytree(folder, copy)
    _as_before_issue_17(copy / "last.pt")
    assert "image_size" in torch.load(copy / "last.pt", weights_only=True)["info"]["train_config"]
    _, _, state = load_checkpoint(copy / "last.pt")                     # read under today's name
    assert list(state["info"]["train_config"]) == list(stored) and state["info"]["train_config"] == stored
    with pytest.raises(ValueError, match="input_size 64 -> 72"):       # compared under today's name
        train(snap_cfg(copy, input_size=72), resume=copy / "last.pt", progress=False)
    _cache_datasets(monkeypatch)
    result = train(snap_cfg(copy), resume=copy / "last.pt", progress=False)    # the same run: accepted
    assert [h["epoch"] for h in result["history"]] == [1, 2]


def test_the_shipped_checkpoints_of_before_issue_17_read_as_input_size():
    from zfviz.checkpoints import load_shipped_checkpoint, upgrade_train_config
    model, _, state = load_shipped_checkpoint("weights/zfnet_teaching.pt")
    config = state["info"]["train_config"]
    assert "image_size" not in config and config["input_size"] == model.config["input_size"]
    assert upgrade_train_config({"width": 0.25, "image_size": 192, "seed": 0}) == \
        {"width": 0.25, "input_size": 192, "seed": 0}
    with pytest.raises(CheckpointError, match="both input_size and its old name image_size"):
        upgrade_train_config({"image_size": 192, "input_size": 192})


@pytest.mark.parametrize("flag", ["--input-size", "--image-size"])
def test_the_command_line_takes_input_size_and_its_old_spelling(run2, tmp_path, monkeypatch, flag):
    """--input-size is the option; --image-size, its name before issue 17, sets the same field."""
    from zfviz.cli import train_main as main
    folder, _ = run2

    def cli(out, size):
        args = _cli_args(out, **{"input-size": size})
        args[args.index("--input-size")] = flag
        return args + ["--resume", str(folder / "last.pt")]
    with pytest.raises(ValueError, match=r"input_size 64 -> 72 \(checkpoint -> now\).*\(--input-size 64\)"):
        main(cli(folder, 72))
    _cache_datasets(monkeypatch)
    main(cli(tmp_path / "new", 64))                                      # the checkpoint's size: it resumes
    assert load_checkpoint(tmp_path / "new" / "best.pt")[2]["epoch"] == 1
