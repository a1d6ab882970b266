"""Inversion through a latent model's VAE (issue 27): inverting a clip and sampling it back lands
within the VAE's own round-trip error (split from test_latent.py)."""

import torch

from audiodiff.pipeline import load_pipeline
from test_latent import _tones  # test_latent's helper (tests/ is on sys.path)


# ---- inversion through the VAE ------------------------------------------------------------------
def _trained_tiny_latent():
    """tiny-latent trained for a few steps on four tones: the VAE as an autoencoder (80 steps, its
    round trip ~0.04 from random ~1), then the UNet on its latents (120 steps). ~8 s on one core."""
    from audiodiff.sampling.inversion import image_of

    torch.manual_seed(0)
    pipe = load_pipeline("tiny-latent")
    clips = _tones(pipe.mel.sample_rate)
    images = torch.cat([image_of(clip, pipe.mel)[0][..., :64] for clip in clips])
    vae = pipe.vqvae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=5e-3)
    for _ in range(80):
        posterior = vae.encode(images).latent_dist
        loss = torch.nn.functional.mse_loss(vae.decode(posterior.sample()).sample, images) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vae.eval()
    latents = pipe.encode(images)
    unet, scheduler = pipe.unet.train(), pipe.scheduler
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    for _ in range(120):
        timesteps = torch.randint(0, 1000, (latents.shape[0],))
        noise = torch.randn_like(latents)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(latents, noise, timesteps), timesteps).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unet.eval()
    return pipe, clips


def test_inverting_through_the_vae_and_sampling_back_is_within_the_vaes_own_round_trip():
    from audiodiff.sampling.inversion import image_of
    from audiodiff.sampling.latent import latents_of
    from audiodiff.sampling.latent_edits import vary_latent

    pipe, clips = _trained_tiny_latent()
    given = clips[1]
    image, _ = image_of(given, pipe.mel)  # (1, 1, 64, 95): 12 latent columns, two slices blended where they meet
    round_trip = pipe.decode(latents_of(pipe, image))[..., : image.shape[-1]]
    vae_error = (round_trip - image).abs().mean()
    assert vae_error < 0.1  # the VAE learnt something: a random one is ~1 away
    back = vary_latent(pipe, given, 1.0, num_inference_steps=20, invert_audio=True, eta=0.0, progress=False)
    assert back.audio.shape == (1, given.numel()) and back.image.shape == image.shape
    # encode -> invert -> sample back -> decode: the VAE's round trip, up to a fraction of its error
    assert (back.image - image).abs().mean() <= 1.1 * vae_error
    assert (back.image - round_trip).abs().mean() < 0.25 * vae_error
    # the variation (eta 1) keeps the outline and redraws the detail: further away than the round trip
    variation = vary_latent(pipe, given, 1.0, num_inference_steps=20, invert_audio=True, progress=False)
    assert (variation.image - image).abs().mean() > 1.5 * vae_error
