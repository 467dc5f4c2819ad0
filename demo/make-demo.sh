#!/usr/bin/env bash
# make-demo.sh builds the committed demo visit in demo/visit/ from one PriMock57
# consultation: a synthesized two-voice Ogg/Opus recording on the consultation's
# real timeline, the markup-stripped transcript, the clinician's real note split
# into sentences, three clinician edits and the attribution file.
#
# Users never run this: its output is committed. It is kept so the demo can be
# rebuilt and audited. Given the same tool versions the output is byte-identical
# (espeak-ng 1.51, SoX 14.4.2, opus-tools 0.2 with libopus 1.3.1, FFmpeg 5.1 on
# Debian 12 when this was written).
#
# Needs: bash, python3 (standard library only), espeak-ng, sox, opusenc/opusdec
# (opus-tools), ffprobe (ffmpeg). On Debian:
#   apt-get install -y espeak-ng sox opus-tools ffmpeg
#
# Environment:
#   PRIMOCK57_DIR  folder with segments.jsonl, notes.jsonl and LICENSE.md
#                  (default /work/shared/data/primock57)
#   DEMO_OUT       output folder (default: visit/ beside this script)
#
# Timing policy (see demo/README.md): each utterance starts at its start_ms. Its
# espeak-ng rate is chosen so the synthesized speech fills end_ms - start_ms,
# clamped to RATE_MIN..RATE_MAX words per minute. Speech still too long at
# RATE_MAX runs on past end_ms, but never past the start of the same speaker's
# next utterance (or the end of the recording); beyond that it is cut with a
# 40 ms fade-out. So one voice never overlaps itself, while clinician and
# patient may overlap each other exactly as in the transcript.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${PRIMOCK57_DIR:-/work/shared/data/primock57}"
out="${DEMO_OUT:-$here/visit}"

# The consultation and the edits below belong together; change both or neither.
encounter="day1_consultation01"

# Voices. The patient in this consultation is a man (addressed as "sir", with a
# wife and children), so he gets a low male US voice; the clinician gets a
# British female variant, so the two are told apart by accent, timbre and pitch.
# Voices are named by file (gmw/en is British English): espeak-ng 1.51 silently
# ignores the variant in "en-gb+f3", so the script checks that each variant
# really changes the output.
clinician_voice="gmw/en+f3"
clinician_pitch=55
patient_voice="gmw/en-US+m3"
patient_pitch=30

# Speaking rate in words per minute (espeak-ng -s; its default is 175).
RATE_BASE=165
RATE_MIN=140
RATE_MAX=300

sample_rate=48000
fade_samples=1920 # 40 ms at 48 kHz
opus_kbps=24
opus_serial=57001 # fixed Ogg stream serial number: opusenc picks a random one otherwise

for tool in python3 espeak-ng sox soxi opusenc opusdec ffprobe; do
  command -v "$tool" >/dev/null || { echo "make-demo: $tool not found (apt-get install -y espeak-ng sox opus-tools ffmpeg)" >&2; exit 1; }
done
for f in segments.jsonl notes.jsonl LICENSE.md; do
  [[ -r "$src/$f" ]] || { echo "make-demo: $src/$f not readable (set PRIMOCK57_DIR)" >&2; exit 1; }
done

for v in "$clinician_voice" "$patient_voice"; do
  if [[ "$(espeak-ng -v "$v" --stdout "variant probe" | sha256sum)" == "$(espeak-ng -v "${v%%+*}" --stdout "variant probe" | sha256sum)" ]]; then
    echo "make-demo: espeak-ng ignores the variant in voice $v" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/utt"

echo "make-demo: $encounter from $src"
echo "make-demo: $(espeak-ng --version | head -1)"
echo "make-demo: $(sox --version 2>&1 | head -1 | sed 's/^ *//')"
echo "make-demo: $(opusenc --version | head -1)"

# ---------------------------------------------------------------------------
# 1. Transcript and note: strip markup, write segments.json, clinician_note.json
#    and the per-utterance plan (plan.tsv, one text file per utterance).
# ---------------------------------------------------------------------------
python3 - "$src" "$encounter" "$out" "$work" "$sample_rate" <<'PY'
import json, os, re, sys

src, encounter, out, work, rate = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def find(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if obj["encounter_id"] == encounter:
                return obj
    sys.exit(f"make-demo: {encounter} not in {path}")

raw = find(os.path.join(src, "segments.jsonl"))["segments"]
note = find(os.path.join(src, "notes.jsonl"))

def strip_markup(text):
    # <UNSURE>x</UNSURE> -> x; <UNIN/> and <INAUDIBLE_SPEECH/> dropped.
    text = re.sub(r"</?UNSURE>", "", text)
    text = re.sub(r"<UNIN/>|<INAUDIBLE_SPEECH/>", "", text)
    if "<" in text or ">" in text:
        sys.exit(f"make-demo: unknown markup left in {text!r}")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r" +([,.?!;:])", r"\1", text)  # "your , your" -> "your, your"
    text = re.sub(r"^[,.;:]+ *", "", text)        # leading punctuation left by a dropped tag
    return text

segments, skipped = [], []
for s in raw:
    text = strip_markup(s["text"])
    if not re.search(r"[A-Za-z0-9]", text):
        skipped.append(s["segment_id"])
        continue
    if s["speaker"] not in ("clinician", "patient"):
        sys.exit(f"make-demo: unexpected speaker {s['speaker']!r}")
    segments.append({"segment_id": s["segment_id"], "speaker": s["speaker"],
                     "start_ms": s["start_ms"], "end_ms": s["end_ms"], "text": text})
segments.sort(key=lambda s: (s["start_ms"], s["segment_id"]))

# The recording lasts as long as the transcript's timeline, tag-only segments included.
duration_ms = max(s["end_ms"] for s in raw)

title = f"Mock GP consultation: {note['presenting_complaint'].strip()} (PriMock57 {encounter})"
doc = {"encounter_id": encounter, "title": title,
       "audio": {"codec": "opus", "container": "ogg", "sample_rate_hz": rate,
                 "channels": 1, "duration_ms": duration_ms},
       "segments": segments}
with open(os.path.join(out, "segments.json"), "w", encoding="utf-8") as f:
    json.dump(doc, f, ensure_ascii=False, indent=2)
    f.write("\n")

# Note sentences. Rules (documented in demo/README.md):
#  - lines are split on newlines; blank lines are paragraph breaks and dropped;
#  - runs of spaces and tabs collapse to one space;
#  - a line that is only a heading ending in ":" (e.g. "Plan:") is joined to the next line;
#  - within a line, a sentence ends at ".", "!" or "?" followed by whitespace and an
#    upper-case letter, digit or "(";
#  - a fragment that is only a list number ("1.") is joined to what follows;
#  - nothing else is changed: shorthand, spelling and case are the clinician's.
lines = [re.sub(r"[ \t]+", " ", l).strip() for l in note["note"].replace("\r\n", "\n").split("\n")]
lines = [l for l in lines if l]
joined, carry = [], ""
for l in lines:
    if re.fullmatch(r"[A-Za-z][A-Za-z /&]*:", l):
        carry = (carry + " " + l).strip()
        continue
    joined.append((carry + " " + l).strip())
    carry = ""
if carry:
    joined.append(carry)
sentences = []
for l in joined:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", l)
    merged = []
    for p in parts:
        if merged and re.fullmatch(r"\d+[.)]", merged[-1]):
            merged[-1] = merged[-1] + " " + p
        else:
            merged.append(p)
    sentences.extend(p.strip() for p in merged if p.strip())
with open(os.path.join(out, "clinician_note.json"), "w", encoding="utf-8") as f:
    json.dump({"presenting_complaint": note["presenting_complaint"].strip(),
               "sentences": [{"text": s} for s in sentences]}, f, ensure_ascii=False, indent=2)
    f.write("\n")

# Plan: limit_ms is how far an utterance may run on (next start of the same
# speaker, or the end of the recording).
with open(os.path.join(work, "plan.tsv"), "w", encoding="utf-8") as plan:
    for i, s in enumerate(segments):
        nxt = [t["start_ms"] for t in segments[i + 1:] if t["speaker"] == s["speaker"] and t["start_ms"] > s["start_ms"]]
        limit = min(nxt[0], duration_ms) if nxt else duration_ms
        target_end = min(s["end_ms"], limit)
        txt = os.path.join(work, "utt", f"{i:04d}.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write(s["text"] + "\n")
        plan.write(f"{i:04d}\t{s['segment_id']}\t{s['speaker']}\t{s['start_ms']}\t{target_end}\t{limit}\n")
with open(os.path.join(work, "duration_ms"), "w") as f:
    f.write(f"{duration_ms}\n")
print(f"make-demo: {len(segments)} segments kept, {len(skipped)} tag-only skipped ({', '.join(skipped)}); "
      f"timeline {duration_ms} ms; note split into {len(sentences)} sentences")
PY

duration_ms="$(cat "$work/duration_ms")"

# ---------------------------------------------------------------------------
# 2. Synthesize each utterance at 48 kHz with its leading/trailing silence
#    trimmed, fitting the rate to the interval as described above.
# ---------------------------------------------------------------------------
synth() { # synth TEXTFILE VOICE PITCH RATE OUT.wav -> prints sample count
  espeak-ng -v "$2" -p "$3" -s "$4" -f "$1" -w "$work/raw.wav"
  # 3 dB of headroom keeps the resampler from clipping espeak-ng's peaks.
  sox -R -D "$work/raw.wav" "$5" silence 1 0.01 -50d reverse silence 1 0.01 -50d reverse gain -3 rate -v "$sample_rate"
  soxi -s "$5"
}
clamp() { local v=$1; ((v < RATE_MIN)) && v=$RATE_MIN; ((v > RATE_MAX)) && v=$RATE_MAX; echo "$v"; }

: >"$work/render.tsv"
while IFS=$'\t' read -r idx seg speaker start_ms target_end limit_ms; do
  if [[ $speaker == clinician ]]; then voice=$clinician_voice pitch=$clinician_pitch; else voice=$patient_voice pitch=$patient_pitch; fi
  wav="$work/utt/$idx.wav"
  target=$(((target_end - start_ms) * sample_rate / 1000))
  allowed=$(((limit_ms - start_ms) * sample_rate / 1000))
  ((target > 0)) || target=1
  rate=$RATE_BASE
  n=$(synth "$work/utt/$idx.txt" "$voice" "$pitch" "$rate" "$wav")
  natural=$n
  # espeak-ng's duration is only roughly inverse to -s, hence the second loop:
  # slow down once to fill a roomy interval, then speed up in steps of at least
  # 3 wpm until the speech fits or the rate reaches RATE_MAX.
  if ((n < target)); then
    want=$(clamp $((rate * n / target)))
    if ((want < rate)); then
      rate=$want
      n=$(synth "$work/utt/$idx.txt" "$voice" "$pitch" "$rate" "$wav")
    fi
  fi
  for _ in 1 2 3 4 5 6 7 8; do
    ((n > target && rate < RATE_MAX)) || break
    want=$(((rate * n + target - 1) / target))
    ((want >= rate + 3)) || want=$((rate + 3))
    rate=$(clamp "$want")
    n=$(synth "$work/utt/$idx.txt" "$voice" "$pitch" "$rate" "$wav")
  done
  action=fit
  if ((n > target)); then
    if ((n <= allowed)); then
      action=overrun
    else
      echo "make-demo: trimmed $seg: $((n * 1000 / sample_rate)) ms of speech at $rate wpm, $((allowed * 1000 / sample_rate)) ms kept (interval $((target_end - start_ms)) ms)"
      sox -R -D "$wav" "$work/cut.wav" trim 0 "${allowed}s" fade t 0 "${allowed}s" "${fade_samples}s"
      mv "$work/cut.wav" "$wav"
      n=$allowed action=trimmed
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$idx" "$seg" "$speaker" "$start_ms" "$target_end" "$rate" "$((natural * 1000 / sample_rate))" "$((start_ms + n * 1000 / sample_rate))" >>"$work/render.tsv"
  printf '%s\n' "$action" >>"$work/actions"
done <"$work/plan.tsv"

echo "make-demo: utterances by timing outcome: $(sort "$work/actions" | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
for spk in clinician patient; do
  awk -F'\t' -v s="$spk" '$3 == s {print $6}' "$work/render.tsv" | sort -n |
    awk -v s="$spk" '{a[NR]=$1} END {printf "make-demo: %s rate wpm: min %d, median %d, max %d over %d utterances\n", s, a[1], a[int((NR+1)/2)], a[NR], NR}'
done

# ---------------------------------------------------------------------------
# 3. Place utterances on one track per speaker, mix, normalize, encode.
# ---------------------------------------------------------------------------
python3 - "$work" "$duration_ms" "$sample_rate" <<'PY'
import array, os, sys, wave

work, duration_ms, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = duration_ms * rate // 1000
tracks = {"clinician": array.array("h", bytes(2 * total)), "patient": array.array("h", bytes(2 * total))}
ends = {"clinician": 0, "patient": 0}
with open(os.path.join(work, "render.tsv")) as f:
    for line in f:
        idx, seg, speaker, start_ms = line.split("\t")[:4]
        with wave.open(os.path.join(work, "utt", idx + ".wav")) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == rate, seg
            pcm = array.array("h", w.readframes(w.getnframes()))
        if sys.byteorder != "little":
            pcm.byteswap()
        at = int(start_ms) * rate // 1000
        assert at >= ends[speaker], f"{seg}: overlaps the same speaker's previous utterance"
        pcm = pcm[: max(0, total - at)]
        tracks[speaker][at : at + len(pcm)] = pcm
        ends[speaker] = at + len(pcm)
for speaker, track in tracks.items():
    with wave.open(os.path.join(work, speaker + ".wav"), "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
        if sys.byteorder != "little":
            track.byteswap()
        w.writeframes(track.tobytes())
PY

# sox mixes in 32-bit, so the overlap cannot clip before "gain -n" brings the
# peak to -1 dBFS.
sox -R -D -m -v 1 "$work/clinician.wav" -v 1 "$work/patient.wav" "$work/mix.wav" gain -n -1
opusenc --quiet --bitrate "$opus_kbps" --vbr --speech --comp 10 --framesize 20 --serial "$opus_serial" \
  --title "PriMock57 $encounter (synthesized voices)" \
  --artist "PriMock57 (Papadopoulos Korfiatis et al., ACL 2022); speech synthesized with espeak-ng" \
  --comment "LICENSE=CC BY 4.0 https://creativecommons.org/licenses/by/4.0/" \
  --comment "SOURCE=https://github.com/babylonhealth/primock57" \
  "$work/mix.wav" "$out/audio.opus"

# ---------------------------------------------------------------------------
# 4. Edits and attribution.
# ---------------------------------------------------------------------------
# Three corrections a GP would make to an AI draft of this visit, each taken from
# the clinician's real note (sentence quoted in the comment), spelled out where
# the note is shorthand.
cat >"$out/edits.json" <<'JSON'
[
  {
    "section": "Subjective",
    "action": "replace",
    "match": "diarrh",
    "text": "3-day history of diarrhea, mainly watery, opening bowels 6 times a day.",
    "reason": "Added duration and frequency from history"
  },
  {
    "section": "Subjective",
    "action": "add",
    "text": "Takeaway from a Chinese restaurant 4 days ago; wife and children also unwell with vomiting, but no diarrhea.",
    "reason": "Added likely source and unwell contacts"
  },
  {
    "section": "Plan",
    "action": "replace",
    "match": "follow-up",
    "text": "To review in 3-5 days if symptoms not improving, and to be seen earlier if feeling more unwell.",
    "reason": "Clarified review interval and safety-netting"
  }
]
JSON
# Source sentences in the note: "3/7 hx of diarrhea, mainly watery." + "Opening bowels x6/day.";
# "Takeaway 4/7 ago - Chinese restaurant." + "Wife and children also unwell with vomiting, but no diarrhea.";
# "To review in 3-5d if symptoms not improving." + "To see earlier if feeling more unwell."

opus_bytes=$(stat -c %s "$out/audio.opus")
cat >"$out/ATTRIBUTION.md" <<EOF
# Attribution

The demo visit in this folder is adapted from **PriMock57**, consultation
\`$encounter\`.

- Source: PriMock57, <https://github.com/babylonhealth/primock57>: 57 mock primary-care
  consultations held by Babylon clinicians with Babylon employees acting as patients from
  case cards, with manual utterance-level transcripts and the consulting clinician's notes.
- Authors: Alex Papadopoulos Korfiatis, Francesco Moramarco, Radmila Sarac and Aleksandar
  Savkov. "PriMock57: A Dataset Of Primary Care Mock Consultations", Proceedings of the
  60th Annual Meeting of the Association for Computational Linguistics (ACL 2022).
- Licence: Creative Commons Attribution 4.0 International (CC BY 4.0),
  <https://creativecommons.org/licenses/by/4.0/>. The licence text is in the dataset
  repository.

## Licence notice

PriMock57 is licensed under CC BY 4.0
(<https://creativecommons.org/licenses/by/4.0/>). The files in this folder are adapted
material: they were changed by the Evidence Ledger project as listed below, and the
PriMock57 authors do not endorse them. The licensed material is provided as-is, without
warranties of any kind; see sections 5 and 6 of the licence (disclaimer of warranties and
limitation of liability). The consultations are role-played: no real patient is described.

## Changes made

- **Audio is synthetic.** The original recordings are not used. \`audio.opus\` was
  synthesized from the transcript with espeak-ng: clinician voice \`$clinician_voice\` at
  pitch $clinician_pitch, patient voice \`$patient_voice\` at pitch $patient_pitch. Each
  utterance starts at its transcript start time; its speaking rate ($RATE_MIN-$RATE_MAX words
  per minute, $RATE_BASE nominal) was chosen to fill its transcript interval; speech still too long
  runs on until the same speaker's next utterance and is otherwise cut with a 40 ms fade.
  Both voices are mixed onto one mono track (overlaps kept), normalized to -1 dBFS peak and
  encoded as Ogg/Opus, 48 kHz, ${opus_kbps} kbit/s VBR ($opus_bytes bytes). Timing, voice and
  prosody therefore differ from the real consultation.
- **Transcript.** The doctor and patient tiers were merged on their shared time axis
  (segment ids \`<consultation>-d<N>\` and \`-p<N>\` keep the TextGrid interval numbers).
  Transcriber markup was stripped: \`<UNSURE>x</UNSURE>\` became x, \`<UNIN/>\` and
  \`<INAUDIBLE_SPEECH/>\` were dropped, whitespace was collapsed, and segments left with
  no words were omitted. Start and end times are unchanged.
- **Clinician note.** The note text is the clinician's, unchanged except for whitespace;
  it was split into sentences at line breaks and at sentence-final punctuation, with a
  bare heading such as "Plan:" joined to the line after it.
- **Edits.** \`edits.json\` holds three edits written for this demo. Their sentences are
  taken from the clinician's note, with shorthand spelled out (e.g. "3/7 hx" as
  "3-day history"), and joined where two note sentences make one edit.
- **Metadata.** \`segments.json\` adds a title and the audio's technical description.
- **A second note draft was written by hand.** \`llm_reply.json\` (kept by hand, not made by this script) is not from PriMock57 and not
  from any model: it was written for this demo from the transcript, in the form of a language
  model's SOAP draft, with two deliberate errors (the pain's side, and an allergy status that
  was never discussed) for the claim checker to flag.

Generated by \`demo/make-demo.sh\`.
EOF

# ---------------------------------------------------------------------------
# 5. Checks: duration, size, speech energy in segments, silence in gaps.
# ---------------------------------------------------------------------------
probe_s=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$out/audio.opus")
probe_info=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,channels,sample_rate -of csv=p=0 "$out/audio.opus")
python3 - "$probe_s" "$duration_ms" "$opus_bytes" "$probe_info" <<'PY'
import sys
probe_s, duration_ms, size, info = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
diff = probe_s - duration_ms / 1000
print(f"check: ffprobe duration {probe_s:.3f} s, transcript timeline {duration_ms / 1000:.3f} s, difference {diff:+.3f} s (limit +-1 s)")
print(f"check: ffprobe stream {info}; audio.opus {size} bytes (limit 3 MB)")
if abs(diff) > 1: sys.exit("check FAILED: duration")
if info != "opus,48000,1": sys.exit("check FAILED: stream is not mono 48 kHz opus")
if size >= 3_000_000: sys.exit("check FAILED: size")
PY

opusdec --quiet --rate "$sample_rate" --no-dither "$out/audio.opus" "$work/decoded.wav"
rms_db() { # rms_db START_MS END_MS -> RMS level in dBFS of the decoded audio
  sox "$work/decoded.wav" -n trim "$(($1 * sample_rate / 1000))s" "=$(($2 * sample_rate / 1000))s" stats 2>&1 |
    awk '/^RMS lev dB/ {print $4}'
}
# Speech: the two longest segments of each speaker plus the first and the last,
# measured over the part that was actually rendered.
python3 - "$work" <<'PY' >"$work/speech_checks.tsv"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1] + "/render.tsv")]
pick = {rows[0][1], rows[-1][1]}
for spk in ("clinician", "patient"):
    mine = sorted((r for r in rows if r[2] == spk), key=lambda r: (int(r[3]) - int(r[4]), r[1]))
    pick.update(r[1] for r in mine[:2])
for r in rows:
    if r[1] in pick:
        end = min(int(r[4]), int(r[7]))
        print(f"{r[1]}\t{r[2]}\t{r[3]}\t{end}")
PY
# Gaps: stretches of at least 400 ms where no transcript segment and no rendered
# speech is active (50 ms margins), measured whole.
python3 - "$work" "$duration_ms" <<'PY' >"$work/gap_checks.tsv"
import sys
work, duration_ms = sys.argv[1], int(sys.argv[2])
busy = []
for l in open(work + "/render.tsv"):
    r = l.rstrip("\n").split("\t")
    busy.append((int(r[3]), max(int(r[4]), int(r[7]))))
busy.sort()
cursor = 0
for s, e in busy + [(duration_ms, duration_ms)]:
    if s - cursor >= 400:
        print(f"{cursor + 50}\t{s - 50}")
    cursor = max(cursor, e)
PY
fail=0
while IFS=$'\t' read -r seg spk s e; do
  db=$(rms_db "$s" "$e")
  ok=$(awk -v d="$db" 'BEGIN {print (d > -35) ? "ok" : "LOW"}')
  [[ $ok == ok ]] || fail=1
  printf 'check: speech %-28s %-9s %7d-%7d ms  RMS %6s dBFS  %s\n' "$seg" "$spk" "$s" "$e" "$db" "$ok"
done <"$work/speech_checks.tsv"
ngaps=$(wc -l <"$work/gap_checks.tsv")
while IFS=$'\t' read -r s e; do
  db=$(rms_db "$s" "$e")
  ok=$(awk -v d="$db" 'BEGIN {print (d == "-inf" || d < -55) ? "ok" : "LOUD"}')
  [[ $ok == ok ]] || fail=1
  printf 'check: gap    %7d-%7d ms  RMS %6s dBFS  %s\n' "$s" "$e" "$db" "$ok"
done <"$work/gap_checks.tsv"
echo "check: $ngaps silent gaps of >= 400 ms measured"

# Voices: median fundamental frequency over the speech-check segments of each
# speaker (autocorrelation on 8 kHz audio, frames of 40 ms with speech energy).
sox -R -D "$work/decoded.wav" "$work/decoded8k.wav" rate -v 8000
python3 - "$work" <<'PY' || fail=1
import array, statistics, sys, wave
work = sys.argv[1]
with wave.open(work + "/decoded8k.wav") as w:
    sr = w.getframerate()
    x = array.array("h", w.readframes(w.getnframes()))
if sys.byteorder != "little":
    x.byteswap()
lo, hi = sr // 400, sr // 60  # 60-400 Hz
frame = sr * 40 // 1000
f0 = {"clinician": [], "patient": []}
for line in open(work + "/speech_checks.tsv"):
    seg, spk, s, e = line.split("\t")
    for at in range(int(s) * sr // 1000, int(e) * sr // 1000 - frame, frame):
        fr = x[at:at + frame]
        if sum(v * v for v in fr) / frame < 1e6:  # below about -30 dBFS: pause
            continue
        ac = [sum(fr[i] * fr[i + lag] for i in range(frame - lag)) / (frame - lag) for lag in range(lo, hi + 1)]
        peak = max(ac)
        # Shortest lag whose autocorrelation is a local peak near the maximum:
        # avoids picking a multiple of the period (an octave too low).
        for k in range(1, len(ac) - 1):
            if ac[k] >= 0.85 * peak and ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1]:
                f0[spk].append(sr / (lo + k))
                break
c, p = statistics.median(f0["clinician"]), statistics.median(f0["patient"])
ok = c > 1.5 * p
print(f"check: median F0 clinician {c:.0f} Hz ({len(f0['clinician'])} frames), patient {p:.0f} Hz "
      f"({len(f0['patient'])} frames), ratio {c / p:.2f} (want > 1.5)  {'ok' if ok else 'TOO CLOSE'}")
sys.exit(0 if ok else 1)
PY
((fail == 0)) || { echo "check FAILED: speech/silence levels or voices" >&2; exit 1; }

echo "make-demo: wrote $(cd "$out" && ls | tr '\n' ' ')"
(cd "$out" && sha256sum audio.opus segments.json clinician_note.json edits.json ATTRIBUTION.md)
