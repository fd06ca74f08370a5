"""Recording and forking calls with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_media.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT RECORDED CALLEE \
        CONNECTION_ID OUT_DIR RX TX

The webhook server verifies every webhook with the SDK's `webhooks.unwrap` and acts on it from
a worker thread:
- a call to RECORDED: `answer`; on `call.answered` `start_recording` (wav, single, inbound
  track, with a beep) and prints RECORDING; the test then drives it through stdin: PAUSE
  (`pause_recording`, prints PAUSED), RESUME (`resume_recording`, prints RESUMED), STOP
  (`stop_recording`). A second `start_recording` while one runs, and `stop_recording` with no
  recording running, are refused (their codes are in the summary). On `call.recording.saved` it
  reads the recording with `recordings.retrieve`, downloads its wav and mp3 to OUT_DIR
  (inbound.wav, inbound.mp3) and prints SAVED; then forks the call (`start_forking`, rx=RX,
  tx=TX as udp:<ip>:<port>) and plays the 600 Hz WAV, prints FORKED; on UNFORK (stdin)
  `stop_forking` (twice: the second is refused) and prints UNFORKED; on SILENCE
  `start_recording` with `timeout_secs=1` (prints SILENCE-RECORDING) and, once that recording
  is saved without being stopped, keeps its duration, deletes it and prints SILENCED; on BYE
  hangs up;
- then dials CALLEE with `record="record-from-answer"` (mp3, dual), a 600 Hz WAV as
  `audio_url` and `send_silence_when_idle`, prints DIALED; on HANGUP (stdin) hangs the callee up; the recording's
  `call.recording.saved` comes after the `call.hangup`, and its mp3 is downloaded to
  OUT_DIR/dialed.mp3;
- then lists the recordings (page by page, filtered by connection and by call), deletes one
  with `recordings.delete` and the other with `recordings.actions.delete`, and lists again.
Prints one JSON summary last.
"""

import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, RECORDED, CALLEE, CONNECTION, OUT, RX, TX = sys.argv[1:11]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)


hooks = []
work = queue.Queue()
errors = {}
legs = {}
saved = {}
summary = {}


def download(url, name):
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(body)
        return r.headers.get("Content-Type")


def act(data):
    p = data["payload"]
    ccid = p["call_control_id"]
    kind = data["event_type"]
    if kind == "call.initiated" and p["direction"] == "incoming":
        legs["recorded"] = ccid
        client.calls.actions.answer(ccid)
    elif kind == "call.answered" and p["to"] == RECORDED:
        client.calls.actions.start_recording(
            ccid, format="wav", channels="single", recording_track="inbound", play_beep=True)
        try:
            client.calls.actions.start_recording(ccid, format="wav", channels="single")
        except telnyx.UnprocessableEntityError as e:
            errors["second_start"] = code_of(e)
        print("RECORDING", flush=True)
    elif kind == "call.recording.saved" and p["to"] == RECORDED and legs.get("silence"):
        # The recording that stopped on silence: kept in the summary, then deleted.
        rec = client.recordings.retrieve(p["recording_id"]).data
        saved["silence"] = {"event": p, "duration_millis": rec.duration_millis}
        client.recordings.delete(p["recording_id"])
        print("SILENCED", flush=True)
    elif kind == "call.recording.saved" and p["to"] == RECORDED:
        rec = client.recordings.retrieve(p["recording_id"]).data
        saved["inbound"] = {
            "event": p,
            "resource": rec.to_dict(),
            "wav_type": download(rec.download_urls.wav, "inbound.wav"),
            "mp3_type": download(rec.download_urls.mp3, "inbound.mp3"),
            "url_type": download(p["recording_urls"]["wav"], "inbound-url.wav"),
        }
        try:
            client.calls.actions.stop_recording(ccid)
        except telnyx.UnprocessableEntityError as e:
            errors["stop_unrecorded"] = code_of(e)
        print("SAVED", flush=True)
        client.calls.actions.start_forking(ccid, rx="udp:" + RX, tx="udp:" + TX)
        client.calls.actions.start_playback(ccid, audio_url="http://%s/tone.wav" % HOOKS)
        print("FORKED", flush=True)
    elif kind == "call.hangup" and p["to"] == RECORDED:
        r = client.calls.dial(
            connection_id=CONNECTION, to=CALLEE, from_=RECORDED,
            audio_url="http://%s/tone.wav" % HOOKS, record="record-from-answer",
            record_channels="dual", record_format="mp3", send_silence_when_idle=True)
        legs["callee"] = r.data.call_control_id
        summary["dial_recording_id"] = r.data.recording_id
        print("DIALED", flush=True)
    elif kind == "call.recording.saved" and p["to"] == CALLEE:
        saved["dialed"] = {
            "event": p,
            "mp3_type": download(p["recording_urls"]["mp3"], "dialed.mp3"),
        }
        finish()


def finish():
    """Lists, pages, filters and deletes the two recordings."""
    everything = client.recordings.list(page_size=1)
    summary["first_page"] = everything.to_dict()
    summary["all_ids"] = [r.id for r in client.recordings.list(page_size=1)]
    summary["of_connection"] = [r.id for r in client.recordings.list(filter={"connection_id": CONNECTION})]
    summary["of_other_connection"] = [r.id for r in client.recordings.list(filter={"connection_id": "42"})]
    summary["of_callee"] = [r.id for r in client.recordings.list(filter={"call_control_id": legs["callee"]})]
    summary["to_callee"] = [r.id for r in client.recordings.list(filter={"to": CALLEE})]
    inbound = saved["inbound"]["event"]["recording_id"]
    dialed = saved["dialed"]["event"]["recording_id"]
    summary["deleted"] = client.recordings.delete(inbound).data.id
    summary["bulk"] = client.recordings.actions.delete(ids=[dialed, "00000000-0000-0000-0000-000000000000"]).to_dict()
    summary["after_ids"] = [r.id for r in client.recordings.list()]
    try:
        client.recordings.retrieve(inbound)
    except telnyx.NotFoundError as e:
        errors["retrieve_deleted"] = code_of(e)
    try:
        urllib.request.urlopen(saved["inbound"]["resource"]["download_urls"]["wav"], timeout=10)
    except urllib.error.HTTPError as e:
        errors["download_deleted"] = e.code
    done.set()


def commands():
    for line in sys.stdin:
        line = line.strip()
        ccid = legs.get("recorded")
        if line == "PAUSE":
            client.calls.actions.pause_recording(ccid)
            print("PAUSED", flush=True)
        elif line == "RESUME":
            client.calls.actions.resume_recording(ccid)
            print("RESUMED", flush=True)
        elif line == "STOP":
            client.calls.actions.stop_recording(ccid)
        elif line == "UNFORK":
            client.calls.actions.stop_forking(ccid)
            try:
                client.calls.actions.stop_forking(ccid)
            except telnyx.UnprocessableEntityError as e:
                errors["stop_unforked"] = code_of(e)
            print("UNFORKED", flush=True)
        elif line == "SILENCE":
            legs["silence"] = True
            client.calls.actions.start_recording(
                ccid, format="wav", channels="single", recording_track="inbound", timeout_secs=1)
            print("SILENCE-RECORDING", flush=True)
        elif line == "BYE":
            client.calls.actions.hangup(ccid)
        elif line == "HANGUP":
            client.calls.actions.hangup(legs["callee"])


done = threading.Event()
serve(HOOKS, client, hooks, work)
act_on(work, act, errors, done.set)
threading.Thread(target=commands, daemon=True).start()
print("READY", flush=True)
done.wait(120)

print(json.dumps({
    "events": [(h["body"]["data"]["event_type"], h["body"]["data"]["payload"]) for h in list(hooks)],
    "verified": [h["verified"] for h in hooks],
    "saved": saved,
    "summary": summary,
    "errors": errors,
}, default=str))
