"""``optim.TensorBoardCallback``: what a fit writes, with a recording writer and (where installed) TensorBoard."""

import sys
import types

import pytest
import torch

from lumigrad.optim import Fit, ParamGroup, TensorBoardCallback


class RecordingWriter:
    """Stands in for ``SummaryWriter``: keeps every call."""

    def __init__(self, log_dir=None, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars, self.images, self.flushes, self.closed = [], [], 0, 0

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_image(self, tag, image, step, dataformats="CHW"):
        self.images.append((tag, image.clone(), step, dataformats))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed += 1


def quadratic_fit(callback, steps=7):
    x = torch.tensor([3.0, -2.0], requires_grad=True)

    def loss_fn(step):
        loss = (x ** 2).sum()
        return loss, {"x0": float(x[0].detach()), "error/x": float(x.detach().abs().max())}

    return x, Fit(loss_fn, {"x": ParamGroup([x], lr=0.2)}, steps=steps, callbacks=[callback], clip_spikes=None)


def test_scalars_every_step_and_images_at_the_first_every_k_and_last_step():
    writer = RecordingWriter()
    seen = []

    def images(step):
        seen.append(step)
        assert not torch.is_grad_enabled()
        return {"preview": torch.full((2, 3, 3), step / 10.0), "mask": torch.full((2, 3, 1), 2.0)}

    with TensorBoardCallback(writer=writer, images=images, image_every=3) as tb:
        _, fit = quadratic_fit(tb)
        result = fit.run()
    assert not result.stopped_early and result.steps_done == 7
    totals = [(v, s) for tag, v, s in writer.scalars if tag == "loss/total"]
    assert totals == [(loss, step) for step, loss in enumerate(result.losses)]
    for key in ("x0", "error/x", "lr/x"):  # the loss function's log and the fit's own entries, by name
        got = [(v, s) for tag, v, s in writer.scalars if tag == key]
        assert got == [(log[key], step) for step, log in enumerate(result.logs)], key
    assert seen == [0, 3, 6]  # first step, every 3rd; the last (6) already written, so close adds none
    tags = [(tag, step) for tag, _, step, _ in writer.images]
    assert tags == [("preview", 0), ("mask", 0), ("preview", 3), ("mask", 3), ("preview", 6), ("mask", 6)]
    image = writer.images[2][1]
    assert writer.images[2][3] == "HWC" and image.shape == (2, 3, 3) and torch.allclose(image, torch.full_like(image, 0.3))
    assert float(writer.images[1][1].max()) == 1.0  # clamped to display values
    assert writer.closed == 1 and writer.flushes >= 3


def test_close_writes_the_last_step_images_once():
    writer = RecordingWriter()
    tb = TensorBoardCallback(writer=writer, images=lambda step: {"p": torch.zeros(1, 1, 3)}, image_every=4)
    _, fit = quadratic_fit(tb, steps=6)
    fit.run()
    tb.close()
    tb.close()
    assert [step for _, _, step, _ in writer.images] == [0, 4, 5] and writer.closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        tb(6, 1.0, {})


def test_bad_arguments_are_named(monkeypatch):
    with pytest.raises(ValueError, match="image_every"):
        TensorBoardCallback(writer=RecordingWriter(), image_every=0)
    with pytest.raises(TypeError, match="images must be callable"):
        TensorBoardCallback(writer=RecordingWriter(), images={"a": 1})
    with pytest.raises(TypeError, match=r"writer must have the SummaryWriter methods \['add_image', 'flush'"):
        TensorBoardCallback(writer=types.SimpleNamespace(add_scalar=print))
    with pytest.raises(ValueError, match="needs log_dir"):
        TensorBoardCallback()
    tb = TensorBoardCallback(writer=RecordingWriter(), images=lambda step: {"nchw": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ValueError, match=r"images\(0\)\['nchw'\] must be a \[H, W, C\] tensor"):
        tb(0, 1.0, {})
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as without the tensorboard package
    with pytest.raises(ImportError, match=r"needs the tensorboard package: pip install 'lumigrad\[tensorboard\]'"):
        TensorBoardCallback("runs/x")


def read_events(folder):
    """Scalars ``{tag: [(step, value)]}`` and images ``{tag: [(step, width, height)]}`` of an event folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags["scalars"]}
    images = {t: [(e.step, e.width, e.height) for e in events.Images(t)] for t in tags["images"]}
    return scalars, images


def test_real_summary_writer_event_file_reads_back(tmp_path):
    pytest.importorskip("tensorboard")
    with TensorBoardCallback(tmp_path / "tb", images=lambda step: {"p": torch.rand(4, 5, 3)}, image_every=5) as tb:
        _, fit = quadratic_fit(tb, steps=6)
        result = fit.run()
    scalars, images = read_events(tmp_path / "tb")
    assert [s for s, _ in scalars["loss/total"]] == list(range(6))
    assert [v for _, v in scalars["loss/total"]] == pytest.approx(result.losses, rel=1e-6)  # stored as float32
    assert [v for _, v in scalars["x0"]] == pytest.approx([log["x0"] for log in result.logs], rel=1e-6)
    assert images["p"] == [(0, 5, 4), (5, 5, 4)]
