"""A voice-AI app on Telnyx's Call Control and ConversationRelay, built the way public apps on
Telnyx are (a library's assistant that answers and ends the call when the caller is done), on
the official SDKs: telnyx (4.189.0) verifies every webhook (`webhooks.unwrap`, Ed25519),
answers the call and starts the session (`calls.actions.start_conversation_relay`) and hangs up;
`websockets` is its relay socket; openai (3.57.0, `AsyncOpenAI`) streams the model's answer into
`text` tokens as they arrive. The model is a stand-in reached through OPENAI_BASE_URL: nothing
here knows Switchboard.

    python telnyx_relay_app.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT RELAY_HOST:PORT

The conversation, as such apps keep it: the caller's prompts and digits are the user's turns;
an `interrupt` stops the model's stream and rewrites the agent's last turn to what the caller
heard; the model's `end_call` function ends the session with `handoffData` (a summary), and on
`call.conversation.ended` the app hangs up.

Prints READY once listening, then a JSON line for each thing a test checks: {"relay": message}
for each message from the relay, {"webhook": event_type, "payload": …, "verified": bool} for
each webhook, {"command": name, "result": …} for each command the SDK sent, and {"error": text}
for anything that went wrong.
"""

import asyncio
import base64
import json
import queue
import sys
import threading

import openai
import telnyx
import websockets
from telnyx_app import serve

BASE, KEY, PUBLIC_KEY, HOOKS, RELAY = sys.argv[1:6]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)
# The SDK imports its resources on first use: done before READY (see telnyx_inbound.py).
client.calls.actions
model = openai.AsyncOpenAI(api_key="sk-test")
GREETING = "Hello, you have reached the county library information desk. How can I help?"
SYSTEM = ("You are the voice assistant of the county library. Answer in short spoken sentences. "
          "When the caller is done, end the call with a one-line summary.")
TOOLS = [{
    "type": "function",
    "function": {
        "name": "end_call",
        "description": "Ends the call once the caller has what they need.",
        "parameters": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
        },
    },
}]
STATE = base64.b64encode(b"library-assistant").decode()
out = threading.Lock()


def show(o):
    with out:
        print(json.dumps(o), flush=True)


def act(data):
    """One verified webhook: answer, start the session once answered, hang up once it ended."""
    p = data["payload"]
    ccid = p.get("call_control_id")
    kind = data["event_type"]
    try:
        if kind == "call.initiated" and p["direction"] == "incoming":
            client.calls.actions.answer(ccid, client_state=STATE)
            show({"command": "answer", "result": "ok"})
        elif kind == "call.answered":
            started = client.calls.actions.start_conversation_relay(
                ccid,
                url=f"ws://{RELAY}/relay",
                greeting=GREETING,
                interruptible="any",
                dtmf_detection=True,
                language="en-US",
                transcription_engine="Deepgram",
                custom_parameters={"member_id": "M-1001"},
            )
            show({"command": "conversation_relay_start", "result": started.to_dict()})
        elif kind == "call.conversation.ended":
            client.calls.actions.hangup(ccid)
            show({"command": "hangup", "result": "ok"})
    except telnyx.APIError as e:
        show({"error": f"{kind}: {e}"})


def webhooks(work):
    while True:
        data = work.get()
        act(data)


class Session:
    """One relay socket: the conversation so far and the model's answer being streamed."""

    def __init__(self, ws):
        self.ws = ws
        self.messages = [{"role": "system", "content": SYSTEM}]
        self.current = None

    async def send(self, message):
        await self.ws.send(json.dumps(message))

    async def respond(self):
        try:
            await self.stream_answer()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the model failed: the app says so in its log
            show({"error": f"the model: {e}"})

    async def stream_answer(self):
        said, calls = "", {}
        stream = await model.chat.completions.create(
            model="gpt-4o-mini", messages=self.messages, tools=TOOLS, stream=True)
        async for chunk in stream:
            delta = chunk.choices[0].delta
            if delta.content:
                said += delta.content
                await self.send({"type": "text", "token": delta.content, "last": False})
            for call in delta.tool_calls or []:
                c = calls.setdefault(call.index, {"name": "", "arguments": ""})
                c["name"] += (call.function and call.function.name) or ""
                c["arguments"] += (call.function and call.function.arguments) or ""
        if said:
            await self.send({"type": "text", "token": "", "last": True})
            self.messages.append({"role": "assistant", "content": said})
        for c in calls.values():
            if c["name"] == "end_call":
                summary = json.loads(c["arguments"] or "{}").get("summary")
                await self.send({"type": "end", "handoffData": json.dumps({"summary": summary})})

    def answer(self):
        """Starts the model's answer, cancelling one still streaming."""
        if self.current and not self.current.done():
            self.current.cancel()
        self.current = asyncio.ensure_future(self.respond())

    async def on(self, message):
        kind = message.get("type")
        if kind == "setup":
            member = (message.get("customParameters") or {}).get("member_id")
            self.messages[0]["content"] += f" The caller's member id is {member}."
            self.messages.append({"role": "assistant", "content": GREETING})
        elif kind == "prompt" and message.get("last", True):
            self.messages.append({"role": "user", "content": message["voicePrompt"]})
            self.answer()
        elif kind == "dtmf":
            self.messages.append({"role": "user", "content": f"The caller pressed {message['digit']}."})
            self.answer()
        elif kind == "interrupt":
            # What the caller heard is the agent's turn, whether the model is still streaming
            # it or has finished and only the voice was still speaking.
            heard = message.get("utteranceUntilInterrupt", "")
            if self.current and not self.current.done():
                self.current.cancel()
                self.messages.append({"role": "assistant", "content": heard})
            else:
                for m in reversed(self.messages):
                    if m["role"] == "assistant":
                        m["content"] = heard
                        break
        elif kind == "error":
            show({"error": message.get("description")})


async def relay(ws):
    session = Session(ws)
    try:
        async for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                show({"error": f"not JSON: {raw}"})
                continue
            show({"relay": message})
            await session.on(message)
    except websockets.ConnectionClosed:
        pass


async def main():
    work = queue.Queue()

    class Shown(list):
        def append(self, hook):
            super().append(hook)
            show({"webhook": hook["body"]["data"]["event_type"],
                  "payload": hook["body"]["data"]["payload"], "verified": hook["verified"]})

    hooks = Shown()
    serve(HOOKS, client, hooks, work)
    threading.Thread(target=webhooks, args=(work,), daemon=True).start()
    host, port = RELAY.rsplit(":", 1)
    async with websockets.serve(relay, host, int(port)):
        with out:
            print("READY", flush=True)
        await asyncio.Future()


asyncio.run(main())
