"""Base guidance (sampling.autoguide): a fine-tuned run guided away from the model it came from."""

import json

import pytest
import torch

from audiodiff.generate import generate
from audiodiff.pipeline import build_preset, load_pipeline, save_pipeline
from audiodiff.sampling.autoguide import BaseGuided, check_base_guidance
from audiodiff.sample import generate_long


def test_guided_output_is_base_plus_weight_times_the_difference_inside_its_window():
    good, base = build_preset("tiny", seed=1).unet.eval(), build_preset("tiny", seed=2).unet.eval()
    guided = BaseGuided(good, base, 2.0, num_train_timesteps=1000, window=(0.0, 0.5))
    x = torch.randn(2, 1, *good.config.sample_size) if isinstance(good.config.sample_size, (tuple, list)) \
        else torch.randn(2, 1, good.config.sample_size, good.config.sample_size)
    with torch.no_grad():
        for t, inside in ((torch.tensor(100), True), (torch.tensor(900), False)):
            g, b = good(x, t).sample, base(x, t).sample
            expected = b + 2.0 * (g - b) if inside else g
            torch.testing.assert_close(guided(x, t).sample, expected)
            assert not torch.allclose(g, b)  # the two models differ, so the check can fail
    assert guided.config is good.config and guided.dtype == good.dtype


@pytest.mark.parametrize("weight", [0.5, 0.99, 4.5, float("nan"), True, "2"])
def test_base_guidance_out_of_range_is_refused(weight):
    with pytest.raises(ValueError, match="base guidance"):
        check_base_guidance(weight)


def _run_from(tmp_path, base_folder, seed=5, preset="tiny"):
    run = tmp_path / f"run-{seed}"
    save_pipeline(build_preset(preset, seed=seed), run)
    (run / "training_config.json").write_text(json.dumps({"pretrained": str(base_folder)}))
    return run


def test_a_run_loads_with_its_base_and_guidance_changes_its_clips_only_when_on(tmp_path):
    base_folder = tmp_path / "base"
    save_pipeline(build_preset("tiny", seed=9), base_folder)
    run = _run_from(tmp_path, base_folder)
    pipe = load_pipeline(run)
    assert pipe.base_unet is not None and pipe.base_source == str(base_folder)

    plain = load_pipeline(run)
    plain.base_unet = None  # the run as it loaded before base guidance
    common = dict(seed=0, num_inference_steps=3, progress=False, tempo_hold=0.0)
    off = generate_long(pipe, 1.0, base_guidance=1.0, **common).audio
    assert torch.equal(off, generate_long(plain, 1.0, **common).audio)  # 1 is off: the same bytes
    on = generate_long(pipe, 1.0, base_guidance=2.0, **common).audio
    assert on.shape == off.shape and not torch.equal(on, off)


def test_no_base_is_attached_when_it_is_missing_or_does_not_fit(tmp_path):
    assert load_pipeline(_run_from(tmp_path, tmp_path / "gone", seed=6)).base_unet is None
    other = tmp_path / "other-size"
    save_pipeline(_other_size(), other)
    assert load_pipeline(_run_from(tmp_path, other, seed=7)).base_unet is None
    velocity = build_preset("tiny", seed=9)
    velocity.scheduler = type(velocity.scheduler).from_config(velocity.scheduler.config, prediction_type="v_prediction")
    save_pipeline(velocity, tmp_path / "other-target")
    assert load_pipeline(_run_from(tmp_path, tmp_path / "other-target", seed=10)).base_unet is None
    no_config = tmp_path / "no-config"
    save_pipeline(build_preset("tiny", seed=8), no_config)
    assert load_pipeline(no_config).base_unet is None


def _other_size():
    from dataclasses import replace

    pipe = build_preset("tiny", seed=9)
    return build_preset("tiny", seed=9, mel=replace(pipe.mel, x_res=pipe.mel.x_res * 2))


def test_the_clip_json_says_which_model_guided_it(tmp_path):
    base_folder = tmp_path / "base"
    save_pipeline(build_preset("tiny", seed=9), base_folder)
    run = _run_from(tmp_path, base_folder)
    out = tmp_path / "out"
    paths = generate(str(run), 1.0, output_dir=out, progress=False, steps=2, seed=1, device="cpu")
    record = json.loads(paths[0].with_suffix(".json").read_text())
    assert record["base_guidance"] == 1.5 and record["guided_away_from"] == str(base_folder)
    paths = generate(str(run), 1.0, output_dir=out, progress=False, steps=2, seed=1, device="cpu", base_guidance=1.0)
    record = json.loads(paths[0].with_suffix(".json").read_text())
    assert record["base_guidance"] == 1.0 and "guided_away_from" not in record


def test_place_moves_the_guiding_base_with_the_model_and_lays_both_out_for_the_cpu(tmp_path):
    from audiodiff.device import place
    from audiodiff.model import weights_sha256

    base = tmp_path / "base"
    save_pipeline(build_preset("tiny", seed=9), base)
    pipe = load_pipeline(_run_from(tmp_path, base))
    nets = (pipe.unet, pipe.base_unet)
    before = [weights_sha256(net) for net in nets]
    x, t = torch.randn(2, 1, pipe.mel.y_res, pipe.mel.x_res, generator=torch.Generator().manual_seed(0)), torch.tensor(500)
    with torch.no_grad():
        expected = [net(x, t).sample for net in nets]
        place(pipe, "cpu")
        got = [net(x, t).sample for net in nets]
    for net, want, out in zip(nets, expected, got):
        weight = net.conv_out.weight  # (1, C, 3, 3): its two layouts differ
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)  # the same model, laid out for oneDNN
    assert [weights_sha256(net) for net in nets] == before  # a run's fingerprint reads weights, not their layout
    place(pipe, "meta")  # the base goes wherever the model goes (on CUDA it had stayed on the CPU)
    assert pipe.unet.device.type == pipe.base_unet.device.type == "meta"
