"""zfviz.train: filter renormalisation, checkpoints (round trip, corruption, wrong architecture), resume."""
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from zfviz.data import Preprocess
from zfviz.models import alexnet_single, zfnet
from zfviz.train import (CheckpointError, TrainConfig, load_checkpoint, pick_device, renormalize_filters_,
                         save_checkpoint, train)


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
    # Without a recorded hash a flipped byte inside tensor data goes unnoticed (torch does not
    # check the zip's CRCs), which is why checkpoints carry a sha256; a truncated file still fails.
    (tmp_path / "c.pt.sha256").unlink()
    (tmp_path / "c.pt").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "c.pt")


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
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a zfviz checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


@pytest.mark.parametrize("kwargs, match", [({"init": "xavier"}, "init must be 'paper' or 'kaiming'"),
                                           ({"epochs": 0}, "epochs must be a positive int"),
                                           ({"lr": 0}, "lr must be > 0"),
                                           ({"max_filter_rms": -1.0}, "max_filter_rms must be a finite"),
                                           ({"max_filter_rms": float("inf")}, "0 turns renormalisation off"),
                                           ({"lr_steps": "5,3", "epochs": 9}, "lr_steps must be increasing"),
                                           ({"lr_steps": "30"}, r"epochs in 1\.\.29"),
                                           ({"drop_layers": "5"}, r"drop may hold the layers \(3, 4, 6, 7\)")])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def tiny(tmp_path, name, epochs):
    return TrainConfig(width=0.0625, image_size=64, renders=1, epochs=epochs, batch_size=64,
                       out=str(tmp_path / name), seed=3)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = train(tiny(tmp_path, "a", 2), progress=False)
    train(tiny(tmp_path, "b", 1), progress=False)
    resumed = train(tiny(tmp_path, "b", 2), resume=tmp_path / "b" / "last.pt", progress=False)
    for (k, a), (_, b) in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][1]["train_loss"] == straight["history"][1]["train_loss"]
    # The recipe's invariant holds after training: no conv filter above RMS 0.1.
    for m in straight["model"].modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.pow(2).mean((1, 2, 3)).sqrt().max() <= 0.1 + 1e-6
    # The history records every layer-1 filter's RMS (Fig. 6a), here after the last epoch.
    w = straight["model"].conv1.weight
    assert straight["history"][-1]["conv1_rms"] == pytest.approx(w.pow(2).mean((1, 2, 3)).sqrt().tolist(), abs=1e-6)


def test_fixed_lr_schedule_and_a_size_ablation_train(tmp_path):
    cfg = TrainConfig(width=0.0625, image_size=64, renders=1, epochs=3, batch_size=64, out=str(tmp_path / "s"),
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
    cmd = [sys.executable, "-m", "zfviz.train", "--width", "0.0625", "--image-size", "64", "--renders", "1",
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
    with batch 64: the same parameters up to float rounding (dropout off, as its masks are random)."""
    args = ["--width", "0.0625", "--image-size", "64", "--renders", "1", "--epochs", "2", "--batch-size", "64",
            "--seed", "5", "--dropout", "0", "--threads", "1", "--no-progress"]
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
    cfg = TrainConfig(dataset="imagefolder", data_root=str(tmp_path / "imgs"), width=0.0625, image_size=64,
                      epochs=3, batch_size=8, out=str(tmp_path / "run"), seed=0)
    result = train(cfg, progress=False)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    model, preprocess, state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert model.config["num_classes"] == 2 and state["info"]["classes"] == ["blue", "red"]
    assert preprocess.mean.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="needs --data-root"):
        train(TrainConfig(dataset="imagefolder", out=str(tmp_path / "x")), progress=False)


def test_snapshots_record_the_strongest_projection_at_the_chosen_epochs(tmp_path):
    """Fig. 4 data: after epochs 1 and 2, four maps per layer, strongest activation over fixed images."""
    from zfviz.data import ClipArt
    from zfviz.deconv import strongest_projections
    from zfviz.train import snapshot_epochs
    cfg = tiny(tmp_path, "snap", 2)
    cfg.snapshot_epochs = "1,2"
    result = train(cfg, progress=False)
    snaps = torch.load(tmp_path / "snap" / "snapshots.pt", weights_only=True)
    assert snaps["epochs"] == [1, 2] and sorted(snaps["layers"]) == [1, 2, 3, 4, 5]
    images = result["preprocess"](ClipArt("val", image_size=64, seed=3).tensors()[0][:64])
    model = result["model"].eval()
    for layer, entry in snaps["layers"].items():
        assert entry["channels"].shape == (4,) and len(entry["projections"]) == 2
        top, projections = strongest_projections(model, images, layer, entry["channels"].tolist())
        assert torch.equal(entry["indices"][-1], top.indices[:, 0])           # recomputed independently
        assert torch.allclose(entry["projections"][-1].float(), projections, rtol=1e-2, atol=1e-3)
    assert snapshot_epochs("paper", 70) == [1, 2, 5, 10, 20, 30, 40, 64]
    assert snapshot_epochs("paper", 100) == [1, 3, 7, 14, 29, 43, 57, 91]
    with pytest.raises(ValueError, match=r"must lie in 1\.\.2"):
        TrainConfig(epochs=2, snapshot_epochs="1,5")


def test_every_command_line_option_explains_itself(monkeypatch):
    import contextlib
    import io
    from dataclasses import fields

    from zfviz.train import TrainConfig, main
    monkeypatch.setenv("COLUMNS", "2000")          # no line wrapping (it may break at hyphens)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(out.getvalue().split())
    for f in fields(TrainConfig):
        help = " ".join(f.metadata["help"].split())
        assert len(help) > 5 and help in text, f"--{f.name.replace('_', '-')} has no help"
    assert "(default: 0.1)" in text and "--resume" in text


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
