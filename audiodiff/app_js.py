"""The app's look and its few behaviours that live in the browser: the page's CSS and the JavaScript
gradio runs on the page (`js=`), kept apart from the page's Python (audiodiff.app).

What runs in the browser, and why there: listening is the browser's business. Pausing one player
when another starts, switching between this clip and the previous one at the same position (A/B),
looping the players, a new seed from the dice and scrolling to a clip need no round trip to the
server, so a quick click can never be overtaken by a slow one.
"""

from __future__ import annotations

# The row with Generate, Stop and the progress stays at the top of the window while the page
# scrolls (on an 800-pixel screen the clips are below it); spectrograms fill their column (they are
# drawn at display resolution, audiodiff.display).
CSS = """
.gradio-container { overflow: clip !important; }  /* hidden would make it a scroll box, and sticky would not stick */
/* z-index: above gradio's labels (40) and image buttons, which else show through the sticky row; below toasts */
#actions { position: sticky; top: 0; z-index: 100; background: var(--background-fill-primary);
           padding: 6px 0; align-items: center; }
#status { min-height: 44px; }
@media (max-width: 640px) {  /* a phone: the progress gets a row of its own under Generate and Stop */
  #actions { flex-wrap: wrap; }
  #actions > #status { flex: 1 1 100% !important; min-width: 100% !important; min-height: 0; }
  #status .wrap:not(.hide) { position: static !important; padding: 0; }  /* the row grows to hold it */
  #status .progress-text { display: none; }  /* "25/150 steps": the description says it, and the bar shows it */
  #status .progress-bar-wrap { width: 100%; }
}
.spectrogram button:has(> .image-frame), .spectrogram .image-frame { width: 100%; }
.spectrogram .image-frame img { width: 100%; height: auto; object-fit: contain; }
.spectrogram .icon-button-wrapper.top-panel { position: static; width: fit-content; margin-left: auto; }  /* off the plot */
#download .filename .stem { white-space: normal; overflow-wrap: anywhere; }  /* whole names, not "bundled-s… .wav" */
#download .download { min-width: 5rem; }
/* Generate's focus is seen from across the room (issue 26): a keyboard user sees where Enter goes */
#generate:focus-visible { outline: 3px solid var(--color-accent, #f97316); outline-offset: 3px; }
#done { white-space: normal; text-align: left; }  /* "done: NAME.wav (30 s, 92 bpm)": the whole name */
#seed-row { align-items: end; }
#dice { max-width: 5rem; }
"""

# After a job, what it left (the message, else the new clip's player) is brought into view when it
# is not (issue 26): an error raised while scrolled down to bpm showed above the window, and on a
# phone the clip lands below all the settings. Its top goes just under the sticky row; nothing moves
# when it is already in view.
SHOW_RESULT_JS = """() => {
  const shown = (element) => element && element.offsetParent !== null;
  const show = () => {
    const message = document.querySelector('#message');
    const said = shown(message) && message.innerText.trim();
    const seen = said ? message : document.querySelector('#clip');
    if (!shown(seen)) return;
    const bar = document.querySelector('#actions').getBoundingClientRect().bottom;
    const box = seen.getBoundingClientRect();
    if (box.top >= bar && box.bottom <= window.innerHeight) return;
    const top = (said ? message : document.querySelector('#this-clip')).getBoundingClientRect().top;
    window.scrollBy(0, top - bar - 8);
  };
  show();
  [300, 1000].forEach((ms) => setTimeout(show, ms));  // again once the spectrogram has loaded and pushed it down
}"""

# The sticky "done: NAME.wav (...)" line: a click brings this clip's column to just under the sticky row.
SCROLL_TO_CLIP_JS = """() => {
  const bar = document.querySelector('#actions').getBoundingClientRect().bottom;
  window.scrollBy(0, document.querySelector('#this-clip').getBoundingClientRect().top - bar - 8);
}"""

# Run once when the page loads: the players' behaviour for the whole page, whatever players come later.
# - One player at a time (issue 26): when any player starts, every other one on the page pauses, so
#   this clip and the previous one can be compared without playing over each other. 'play' does not
#   bubble; a capturing listener on the document still hears it from every <audio>.
# - The player started last is remembered, for the A/B toggle when nothing plays.
# - "loop playback" holds for every player, those made after it was ticked too.
# - Every player and spectrogram is named for a screen reader (issue 26: "named players"): an <audio>
#   gets its block's label ("this clip: NAME.wav, 30 s, 92 bpm"); gradio's players have none.
PAGE_JS = """() => {
  window.audiodiff = {last: null, loop: false};
  document.addEventListener('play', (event) => {
    window.audiodiff.last = event.target;
    event.target.loop = window.audiodiff.loop;
    document.querySelectorAll('audio').forEach((other) => {
      if (other !== event.target && !other.paused) other.pause();
    });
  }, true);
  const name = () => {
    document.querySelectorAll('audio').forEach((audio) => {
      const block = audio.closest('.block');
      const label = block && block.querySelector('[data-testid="block-label"], label');
      const text = (label && label.innerText.trim()) || (block && block.getAttribute('aria-label')) || 'audio player';
      if (audio.getAttribute('aria-label') !== text) audio.setAttribute('aria-label', text);
      audio.loop = window.audiodiff.loop;
    });
  };
  new MutationObserver(name).observe(document.body, {childList: true, subtree: true, characterData: true});
  name();
}"""

# "loop playback" ticked or unticked: every player on the page now, and every one made later (PAGE_JS).
LOOP_PLAYBACK_JS = """(on) => {
  window.audiodiff.loop = on;
  document.querySelectorAll('audio').forEach((audio) => { audio.loop = on; });
}"""

# A/B: switch between this clip and the previous one at the same position. The one playing (else
# the one played last, else this clip) pauses; the other jumps to its position (or its own end,
# when shorter) and plays.
AB_JS = """() => {
  const a = document.querySelector('#clip audio'), b = document.querySelector('#previous-clip audio');
  if (!a || !b) return;
  const from = !a.paused ? a : !b.paused ? b : (window.audiodiff.last === b ? b : a);
  const to = from === a ? b : a;
  const at = from.currentTime;
  from.pause();
  to.currentTime = Number.isFinite(to.duration) ? Math.min(at, to.duration) : at;
  to.play();
}"""

# The dice next to the seed: a new seed from the whole range, without a round trip.
DICE_JS = "() => Math.floor(Math.random() * 4294967296)"
