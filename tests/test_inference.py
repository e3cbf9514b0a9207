"""``npe.init_model`` / ``npe.inference``: real models built from the kit's smoke config, NPE-LA applied at
the asked s, every kind of image input; and a notebook-style run that prints nothing (issue 19)."""
from __future__ import annotations

import math
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch

import npe
from npe.errors import ConfigError, DataError, RunError

SMOKE = "npe::smoke_unet.py"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder of three 64x64 images (and a file that is not an image, which a folder read skips)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        mmcv.imwrite(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), str(folder / f"im{i}.png"))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def npe_model(tmp_path_factory):
    """An NPE model (1 PEM, trained s = 2) from a dumped NPE config, with PEM weights large enough that
    the adjustment moves the logits visibly (the reference init draws them at std 0.001)."""
    config = tmp_path_factory.mktemp("cfg") / "npe_smoke.py"
    npe.apply_npe(SMOKE, num_pem=1, scale_factor=2).dump(str(config))
    model = npe.init_model(config, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.decode_head.pems.parameters():
            param.normal_(0.0, 0.5)
    return model


def _logits(sample) -> torch.Tensor:
    return sample.seg_logits.data.double()


def test_npe_la_is_applied_at_the_asked_s(npe_model, images):
    """The adjustment is ``z + c / s``: the logits at s = 1, 2 and inf lie on one line in 1/s, the default
    is the trained s (2), and every prediction is the argmax of its logits."""
    image = images / "im0.png"
    at = {s: npe.inference(npe_model, image, scale_factor=s) for s in (1, 2, math.inf)}
    z = _logits(at[math.inf])
    step1, step2 = _logits(at[1]) - z, _logits(at[2]) - z
    assert step2.abs().max() > 1e-3   # the PEMs do move the logits
    torch.testing.assert_close(step1, 2 * step2, rtol=1e-4, atol=1e-5)
    default = npe.inference(npe_model, image)
    assert default.metainfo["npe_scale_factor"] == 2.0
    assert torch.equal(default.seg_logits.data, at[2].seg_logits.data)
    for sample in at.values():
        assert torch.equal(sample.pred_sem_seg.data[0], sample.seg_logits.data.argmax(0))
    assert npe_model.decode_head.eval_blocks is None   # the model is left as it was


def test_every_kind_of_image_input(npe_model, images):
    folder = npe.inference(npe_model, images, scale_factor=1)
    assert [s.img_path for s in folder] == [str(images / f"im{i}.png") for i in range(3)]
    array = mmcv.imread(str(images / "im1.png"))
    mixed = npe.inference(npe_model, [array, images / "im1.png"], scale_factor=1)
    assert len(mixed) == 2 and mixed[0].pred_sem_seg.data.shape == (1, 64, 64)
    torch.testing.assert_close(mixed[0].seg_logits.data, mixed[1].seg_logits.data)
    torch.testing.assert_close(mixed[1].seg_logits.data, folder[1].seg_logits.data)
    # an array before a path: MMSeg's pipeline edit for arrays does not stick to the model's config
    assert npe.inference(npe_model, images / "im2.png", scale_factor=1).img_path == str(images / "im2.png")


def test_a_plain_mmseg_model_predicts_with_its_head_alone(images):
    model = npe.init_model(SMOKE, device="cpu")
    assert type(model.decode_head).__name__ == "FCNHead"
    sample = npe.inference(model, images / "im0.png")
    assert sample.pred_sem_seg.data.shape == (1, 64, 64) and sample.metainfo["npe_scale_factor"] is None
    assert npe.inference(model, images / "im0.png", scale_factor=math.inf).pred_sem_seg.data.shape == (1, 64, 64)
    with pytest.raises(ConfigError, match="plain MMSeg model .* give scale_factor=None"):
        npe.inference(model, images / "im0.png", scale_factor=2)


def test_bad_input_is_one_line_naming_the_argument(npe_model, images, tmp_path):
    cases = [
        (lambda: npe.inference(npe_model, tmp_path / "missing.png"), DataError, "image .*missing.png does not exist"),
        (lambda: npe.inference(npe_model, tmp_path), DataError, "holds no image"),
        (lambda: npe.inference(npe_model, images / "im0.png", scale_factor=0), ConfigError, "scale"),
        (lambda: npe.inference(npe_model, images / "im0.png", scale_factor="2"), ConfigError, "scale_factor"),
        (lambda: npe.inference("model", images), ConfigError, "npe.inference: model: expected a model"),
        (lambda: npe.inference(npe_model, [images]), DataError, "images item"),
        (lambda: npe.init_model(tmp_path / "no.py"), ConfigError, "does not exist"),
        (lambda: npe.init_model(SMOKE, checkpoint=tmp_path / "no.pth"), RunError, "checkpoint=.*pth"),
        (lambda: npe.init_model(tmp_path), RunError, "no training config"),
        (lambda: npe.init_model(SMOKE, device="gpu"), ConfigError, "npe.init_model: device"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match) as exc:
            call()
        assert "\n" not in str(exc.value)


def test_init_model_reads_the_checkpoint_once_for_weights_and_class_names(tmp_path, monkeypatch):
    """One torch.load serves load_weights and the class names of the checkpoint's meta; a file that is
    no checkpoint keeps load_weights' one-line error."""
    model = npe.init_model(SMOKE, device="cpu")
    names = tuple(f"kind{i}" for i in range(model.decode_head.num_classes))
    ckpt = tmp_path / "weights.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": {"classes": names}}}, ckpt)
    real_load, reads = torch.load, []

    def counting_load(*args, **kwargs):
        reads.append(args[0] if args else kwargs.get("f"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    loaded = npe.init_model(SMOKE, checkpoint=ckpt, device="cpu")
    assert loaded.dataset_meta["classes"] == names   # from the checkpoint, not the dataset class
    assert [Path(r) for r in reads] == [ckpt]
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=r"checkpoint .*bad.pth cannot be read: ") as exc:
        npe.init_model(SMOKE, checkpoint=bad, device="cpu")
    assert "\n" not in str(exc.value)


def test_cuda_where_present_else_refused_not_run_on_the_cpu(images):
    """One test for both machines (no skip): with CUDA the model and its predictions are on the GPU;
    without, ``device='cuda'`` is one error, never a silent CPU run."""
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda', but no CUDA device works here.*device='cpu'"):
            npe.init_model(SMOKE, device="cuda")
        assert next(npe.init_model(SMOKE).parameters()).device.type == "cpu"   # None: the CPU here
        return
    model = npe.init_model(SMOKE, device="cuda")
    assert next(model.parameters()).is_cuda and next(npe.init_model(SMOKE).parameters()).is_cuda
    assert npe.inference(model, images / "im0.png").pred_sem_seg.data.is_cuda


@pytest.mark.integration
def test_a_notebook_session_prints_nothing_and_inference_matches_evaluate(tmp_path, monkeypatch, capfd):
    """Issue 19: ``npe.train`` and ``npe.evaluate`` printed about 1,000 MMEngine lines for a few
    iterations. Captured at the file descriptors (C-level writes included), a train, an evaluation and
    an inference print nothing; the prediction at s is the one ``npe.evaluate`` scores at s."""
    from npe import datasets

    monkeypatch.setenv("NPE_DATA_ROOT", str(tmp_path / "data"))
    smoke = datasets.get("smoke").prepare(tmp_path / "data")
    capfd.readouterr()
    run = npe.train(SMOKE, num_pem=1, seed=0, work_dir=tmp_path / "run", scale_factor=2,
                    cfg_options={"train_cfg.max_iters": 2, "train_cfg.val_interval": 2})
    rows = npe.evaluate(run["work_dir"], scale_factors=[2], keep_predictions=["va00000"])
    model = npe.init_model(run["work_dir"], device="cpu")
    sample = npe.inference(model, smoke / "images" / "validation" / "va00000.png")
    assert capfd.readouterr() == ("", "")
    assert np.array_equal(sample.pred_sem_seg.data[0].numpy(), rows[0]["predictions"]["va00000"])
    assert model.dataset_meta["classes"] == ("background", "blob", "box")
    log_dir = Path(run["log_dir"])
    assert "Iter(train)" in (log_dir / f"{log_dir.name}.log").read_text()   # MMEngine's log: in its file
