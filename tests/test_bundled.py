"""The bundled base model ships inside the package and works offline."""

import pytest
import torch

from audiodiff.pipeline import BUNDLED, BUNDLED_DIR, PRESETS, load_pipeline


def test_bundled_model_is_installed_small_and_loads_offline():
    weights = BUNDLED_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_file(), "run python scripts/make_bundled.py"
    assert weights.stat().st_size < 10 * 2**20  # "a few MB"
    pipe = load_pipeline(BUNDLED)
    assert pipe.source == BUNDLED
    assert pipe.mel == PRESETS["compact-4s"].mel
    assert 1.9e6 < sum(p.numel() for p in pipe.unet.parameters()) < 2.1e6
    from diffusers.pipelines.deprecated import AudioDiffusionPipeline

    theirs = AudioDiffusionPipeline.from_pretrained(BUNDLED_DIR)
    assert theirs.mel.config.sample_rate == pipe.mel.sample_rate


def test_bundled_model_denoises_better_than_random_weights():
    """A trained model predicts the noise added to built-in-genre images far better than the
    same architecture with random weights: the file holds a trained model, not a stub."""
    from audiodiff.mel import audio_to_images
    from audiodiff.pipeline import build_preset
    from audiodiff.synthetic import render
    from audiodiff.train import diffusion_loss

    pipe = load_pipeline(BUNDLED)
    mel = pipe.mel
    audio = torch.stack([torch.from_numpy(render(g, 999, mel.slice_seconds + 0.1, mel.sample_rate)[: mel.slice_samples])
                         for g in ("jazz", "rock", "electronic", "classical")])
    images = audio_to_images(audio, mel)
    timesteps = torch.tensor([100, 300, 500, 700])
    with torch.no_grad():
        trained, _, _ = diffusion_loss(pipe.unet, pipe.scheduler, images, torch.Generator().manual_seed(0), timesteps)
        random_pipe = build_preset("compact-4s", seed=0)
        untrained, _, _ = diffusion_loss(random_pipe.unet, random_pipe.scheduler, images,
                                         torch.Generator().manual_seed(0), timesteps)
    assert trained.item() < 0.3 * untrained.item(), (trained.item(), untrained.item())


def test_make_bundled_trains_two_stages_moves_the_weights_and_resumes(tmp_path):
    """The recipe's shape on a tiny model: stage 1 on one image, its weights moved to stage 2's
    wider image, stage 2 trained and installed; a resumed build keeps finished stages."""
    import dataclasses

    from audiodiff import bundle
    from audiodiff.mel import MelConfig
    from audiodiff.pipeline import MODEL_INDEX

    tiny = dataclasses.replace(bundle.COARSE, pretrained="tiny", synthetic_clips_per_genre=2, synthetic_seconds=4.0,
                               max_steps=2, batch_size=2, warmup_steps=0, checkpoint_every=1, validate_every=1,
                               sample_every=100, output_dir=str(tmp_path / "runs"))
    final = dataclasses.replace(tiny, run_name="base", lr=3e-4)
    wider = MelConfig(x_res=48, y_res=32, sample_rate=16000, n_fft=2048, hop_length=384)
    target = tmp_path / "installed"
    with pytest.raises(ValueError, match="nothing to resume in .*runs: no build was started there"):
        bundle.make_bundled(final, coarse=tiny, mel=wider, target=target, progress=False, resume=True)
    assert not (tmp_path / "runs").exists() and not target.exists()
    assert bundle.make_bundled(final, coarse=tiny, mel=wider, target=target, progress=False) == target
    installed = load_pipeline(target)
    assert installed.mel == wider and installed.unet.config.sample_size == [32, 48]
    coarse = load_pipeline(tmp_path / "runs" / "coarse")
    retimed = load_pipeline(tmp_path / "runs" / bundle.RETIMED)
    assert coarse.mel == PRESETS["tiny"].mel and retimed.mel == wider
    for name, weight in coarse.unet.state_dict().items():  # the same weights on the wider image
        assert torch.equal(weight, retimed.unet.state_dict()[name]), name
    stamp = (tmp_path / "runs" / "coarse" / MODEL_INDEX).stat().st_mtime_ns
    bundle.make_bundled(final, coarse=tiny, mel=wider, target=target, progress=False, resume=True)
    assert (tmp_path / "runs" / "coarse" / MODEL_INDEX).stat().st_mtime_ns == stamp  # stage 1 not redone
    assert not (tmp_path / "runs" / "coarse-2").exists() and not (tmp_path / "runs" / "base-2").exists()
