"""The sampling wing: everything that turns noise (or given audio) into a clip.

    schedulers.py  scheduler names and kinds; the x0 adapter (model output <-> predicted clean image)
    options.py     SamplingOptions, checked when made, resolved against the pipeline once (SamplingSetup)
    progress.py    JobProgress: one count of a job's UNet calls, fed by the plan's total; stopping
    loop.py        `sample`: the denoising loop with masks and RePaint, around one Denoiser
    steering.py    guides around the model's prediction: level hold, tempo hold; candidates; join pull
    tonal.py       candidates chosen by tonality (the image's band flatness), near the clip's level
    plan.py        the long-clip planner: every job's slices and their UNet calls, before the first one
    longclip.py    LongClip, the slice loop (`extend_image`), `generate_long`
    finish.py      the decode epilogue (decode, NaNs, gain, peaks) and a clip's finish (fade, loudness)
    edits.py       on one timeline: continue, fill a gap, loop
    inversion.py   DDIM inversion, variations, interpolation

Data flows one way: options -> SamplingSetup -> plan -> slices (loop, steered) -> image -> finish -> audio.
`audiodiff.sample` and `audiodiff.edits` re-export these names for older imports.
"""
