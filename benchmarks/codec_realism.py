"""How far does the Mel codec alone move real music? The floor of the realism a model can reach.

    python benchmarks/codec_realism.py [--genre jazz] [--presets compact,compact-4s,compact-4s-hop512]

For each preset's Mel image, the genre's held-out built-in tracks are cut into slices, encoded,
decoded (Griffin-Lim, as generated clips are) and measured like a model's clips: the Fréchet
distance of their genre features to the original tracks over the distance between two halves of
the genre (`benchmarks/long_clip.py`'s realism). A model of that image can't do better than its
codec. Also the tempo spread of the round trip (audiodiff.metrics), 30 s per track: the codec
should not blur the pulse. Measured (session 4, 8 held-out jazz tracks): compact (hop 256)
0.47, compact-4s (hop 384) 0.29, compact-4s-hop512 1.63; tempo spread 0.4 % at hop 384 and
1.2 % at hop 512 (0.2 % before the round trip). Ends with one summary line of `name: value` pairs.
"""

from __future__ import annotations

import argparse

from audiodiff.evaluate import (
    AudioClip, ClipSet, HandcraftedFeatures, SplitSettings, Standardizer, cut_clips, describe_clips,
    frechet_distance, genre_clips, halves_distance, long_clip_report,
)
from audiodiff.mel import MelConfig, audio_to_images, images_to_audio
from audiodiff.pipeline import PRESETS

TEMPO_SECONDS = 30.0


def round_trip(clip: AudioClip, mel: MelConfig) -> AudioClip:
    """The clip's whole slices through the codec, joined again."""
    slices = clip.audio.float().numel() // mel.slice_samples
    pieces = clip.audio.float()[: slices * mel.slice_samples].reshape(slices, mel.slice_samples)
    return AudioClip(clip.name, images_to_audio(audio_to_images(pieces, mel), mel).reshape(-1), mel.sample_rate)


def codec_realism(genre: str, mel: MelConfig) -> dict:
    split = SplitSettings()
    extractor = HandcraftedFeatures()
    target, labels = genre_clips(genre, mel, dataset="synthetic", split=split)
    others = [genre_clips(label, mel, dataset="synthetic", split=split)[0] for label in labels if label != target.genre]
    for clips in (target, *others):
        describe_clips(clips, extractor)
    scaler = Standardizer.fit(target.features, *(o.features for o in others))
    halves, _ = halves_distance(target, scaler)
    decoded = describe_clips(ClipSet("round trip", [round_trip(c, mel) for c in target.clips]), extractor)
    distance = frechet_distance(scaler(decoded.features), scaler(target.features))
    tempo = long_clip_report([round_trip(c, mel) for c in cut_clips(target.clips, TEMPO_SECONDS)])
    return {"realism": distance / halves, "tempo_spread_percent": tempo["tempo_spread_percent_median"],
            "tracks": len(target.clips)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genre", default="jazz", help="a built-in genre (default: jazz)")
    parser.add_argument("--presets", default="compact,compact-4s,compact-4s-hop512",
                        help=f"comma-separated presets whose Mel images to measure, of: {', '.join(PRESETS)}")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.presets.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; the presets are: {', '.join(PRESETS)}")
    results = {}
    print(f"{'preset':<22}{'image':>10}{'hop':>6}{'codec realism':>15}{'tempo %':>9}")
    for name in names:
        mel = PRESETS[name].mel
        results[name] = row = codec_realism(args.genre, mel)
        print(f"{name:<22}{f'{mel.y_res}x{mel.x_res}':>10}{mel.hop_length:>6}{row['realism']:>15.2f}"
              f"{row['tempo_spread_percent']:>9.1f}", flush=True)
    print(", ".join(f"{name}_codec_realism: {row['realism']:.2f}" for name, row in results.items()))


if __name__ == "__main__":
    main()
