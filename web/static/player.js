// EvidencePlayer plays a sentence's evidence on the page's single <audio>
// element: each span from its start to its end, in order, then stops.
//
// Span times are on the encounter's timeline; the recording starts at
// startMs on that timeline, so media time = (ms - startMs) / 1000. Stops
// are timed against audio.currentTime with short timers rather than the
// coarse timeupdate event, so playback ends within a few milliseconds of
// the span's end. A seek or pause made with the element's own controls
// hands control back to the user and ends the sequence.
//
// Events (on the player, an EventTarget):
//   "span"  {detail: {index, span}}     a span starts playing
//   "done"  {detail: {completed}}       the sequence ended or was stopped
//   "error" {detail: {message}}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class EvidencePlayer extends EventTarget {
  constructor(audio) {
    super();
    this.audio = audio;
    this.generation = 0;
    this.active = false;
    this.recording = null;
    // Pauses and seeks the player makes itself; each is consumed by the
    // event it causes, so only the user's own ones end a sequence.
    this.expectPause = 0;
    this.expectSeek = 0;
    this.abort = () => {};
    audio.addEventListener('pause', () => {
      if (this.expectPause > 0) this.expectPause--;
      else this.#takeover();
    });
    audio.addEventListener('seeking', () => {
      if (this.expectSeek > 0) this.expectSeek--;
      else this.#takeover();
    });
  }

  /** load points the element at a recording: {url, startMs, durationMs}. */
  load(recording) {
    this.stop();
    const same = this.recording && this.recording.url === recording.url;
    this.recording = recording;
    if (!same) {
      this.audio.src = recording.url;
      this.audio.load();
    }
  }

  /** mediaSeconds maps an encounter time to the recording's time. */
  mediaSeconds(ms) {
    return (ms - (this.recording ? this.recording.startMs : 0)) / 1000;
  }

  /**
   * play plays spans [{startMs, endMs}] in order. It resolves true when
   * the last span played to its end, and false when it was stopped or
   * replaced.
   */
  async play(spans) {
    const gen = this.#next();
    const cancelled = new Promise((resolve) => (this.abort = resolve));
    this.active = true;
    const audio = this.audio;
    const dur = this.recording && this.recording.durationMs ? this.recording.durationMs / 1000 : Infinity;
    try {
      for (let i = 0; i < spans.length; i++) {
        const start = Math.max(0, this.mediaSeconds(spans[i].startMs));
        const end = Math.min(dur, this.mediaSeconds(spans[i].endMs));
        if (!(end > start)) continue; // outside the recording
        await this.#seek(start, cancelled);
        if (gen !== this.generation) return false;
        this.dispatchEvent(new CustomEvent('span', { detail: { index: i, span: spans[i] } }));
        await audio.play();
        if (gen !== this.generation) return false;
        await this.#until(end, gen);
        if (gen !== this.generation) return false;
        this.#pause();
      }
      this.#finish(true);
      return true;
    } catch (err) {
      if (gen === this.generation) {
        this.#pause();
        this.#finish(false);
        if (err && err.name !== 'AbortError') {
          this.dispatchEvent(new CustomEvent('error', { detail: { message: playbackMessage(err) } }));
        }
      }
      return false;
    }
  }

  /** stop ends any sequence and pauses. */
  stop() {
    this.#next();
    this.#pause();
    this.#finish(false);
  }

  // #next cancels the running sequence, if any.
  #next() {
    this.abort();
    return ++this.generation;
  }

  #takeover() {
    if (!this.active) return;
    this.#next();
    this.#finish(false);
  }

  #finish(completed) {
    if (!this.active) return;
    this.active = false;
    this.dispatchEvent(new CustomEvent('done', { detail: { completed } }));
  }

  #pause() {
    if (this.audio.paused) return;
    this.expectPause++;
    this.audio.pause();
  }

  async #seek(t, cancelled) {
    const audio = this.audio;
    this.#pause();
    if (audio.readyState === HTMLMediaElement.HAVE_NOTHING) {
      // A seek before the metadata only sets the start position, and
      // fires no seeked event.
      const loaded = new Promise((resolve) => audio.addEventListener('loadedmetadata', resolve, { once: true }));
      await Promise.race([loaded, cancelled]);
    }
    if (Math.abs(audio.currentTime - t) < 0.001 && !audio.seeking) return;
    const seeked = new Promise((resolve) => audio.addEventListener('seeked', resolve, { once: true }));
    this.expectSeek++;
    audio.currentTime = t;
    await Promise.race([seeked, cancelled]);
  }

  // #until waits until the element's time reaches end: long sleeps while
  // far from it, then short ones, so the stop lands within a few ms.
  async #until(end, gen) {
    const audio = this.audio;
    for (;;) {
      if (gen !== this.generation || audio.ended) return;
      const left = (end - audio.currentTime) / (audio.playbackRate || 1);
      if (left <= 0.004) return;
      await sleep(Math.min(Math.max(left * 1000 - 25, 4), 250));
    }
  }
}

function playbackMessage(err) {
  if (err && err.name === 'NotAllowedError') return 'The browser blocked playback. Press play on the player to allow audio for this page.';
  if (err && err.name === 'NotSupportedError') return 'This browser cannot play the recording’s format.';
  return 'The recording could not be played.';
}
