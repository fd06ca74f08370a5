// A voice bot in Node built the way Twilio's media-streams samples build one (their
// `connect-basic` echo): an HTTP server answering TwiML made with Twilio's Node SDK
// (`new VoiceResponse().connect().stream(...)`), and a WebSocket server made with the
// `websocket` package, the samples' library. The bot echoes the caller: every 50 inbound
// media messages it sends their audio back as one media message followed by a mark, and
// after REPEATS echoes it closes the socket; the call then goes on with the TwiML after
// <Connect>.
//
//     node media_streams_echo.js BIND_IP REPEATS
//
// It prints "listening PORT" first, then one JSON line per thing it saw.
const http = require("http");
const WebSocketServer = require("websocket").server;
const VoiceResponse = require("twilio").twiml.VoiceResponse;

const [BIND_IP, REPEATS] = [process.argv[2], Number(process.argv[3])];
const say = (what) => console.log(JSON.stringify(what));

const server = http.createServer((req, res) => {
  say({ http: req.method + " " + req.url });
  const twiml = new VoiceResponse();
  twiml.say("Echo test.");
  const connect = twiml.connect();
  const stream = connect.stream({ url: `ws://${req.headers.host}/media` });
  stream.parameter({ name: "bot", value: "echo" });
  twiml.say("Goodbye.");
  res.writeHead(200, { "Content-Type": "text/xml" });
  res.end(twiml.toString());
});

const media = new WebSocketServer({ httpServer: server, autoAcceptConnections: true });
media.on("connect", (connection) => {
  let frames = [];
  let repeats = 0;
  connection.on("message", (message) => {
    if (message.type !== "utf8") return;
    const data = JSON.parse(message.utf8Data);
    if (data.event === "connected" || data.event === "start" || data.event === "stop") {
      say(data);
    } else if (data.event === "mark") {
      say({ mark: data.mark.name, streamSid: data.streamSid });
    } else if (data.event === "media") {
      frames.push(data);
      if (frames.length >= 50) {
        const streamSid = frames[0].streamSid;
        const payload = Buffer.concat(frames.map((m) => Buffer.from(m.media.payload, "base64")));
        frames = [];
        connection.sendUTF(JSON.stringify({ event: "media", streamSid, media: { payload: payload.toString("base64") } }));
        connection.sendUTF(JSON.stringify({ event: "mark", streamSid, mark: { name: `Repeat message ${repeats}` } }));
        say({ echoed: repeats, bytes: payload.length });
        repeats++;
        if (repeats === REPEATS) {
          connection.close(1000, `Repeated ${repeats} times`);
        }
      }
    }
  });
  connection.on("close", () => say({ closed: true }));
});

server.listen(0, BIND_IP, () => console.log("listening " + server.address().port));
