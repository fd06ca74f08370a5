//! The messages of a media stream, with no IO: what Switchboard sends an application over
//! the socket, in the wire format of the provider whose API started the stream, and what it
//! makes of the application's messages.
//!
//! - Twilio Media Streams (and SignalWire's, which copy them): camelCase, `streamSid`, every
//!   counter a string, `sequenceNumber` one counter per stream from "1" on `start`, `chunk` one
//!   counter per track from "1", `timestamp` in ms since the stream started.
//! - Telnyx: snake_case, `stream_id` at the top, the same counters as strings, `dtmf` with
//!   `occurred_at`, `error` frames with Telnyx's codes.

use super::audio::Encoding;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write;
use switchboard_media::TapTracks;
use switchboard_media::record::Track;

/// The longest mark name taken from an application.
pub const MAX_MARK_NAME: usize = 1024;

/// Whose wire format, and the identities its messages carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    Twilio {
        account_sid: String,
        call_sid: String,
        /// SignalWire's variant: its protocol version, `dtmf` with a duration.
        signalwire: bool,
    },
    Telnyx {
        call_control_id: String,
        call_session_id: String,
        /// The Telnyx account (`user_id`).
        user_id: String,
        from: String,
        to: String,
        client_state: Option<String>,
        /// `stream_auth_token`: repeated in the `connected` frame.
        auth_token: Option<String>,
    },
}

impl Wire {
    /// The User-Agent of the provider's stream client on the handshake: applications test it
    /// to know who is calling their socket (`startsWith("Twilio.TmeWs")`, a User-Agent naming
    /// Telnyx). Twilio's is captured from real handshakes (tests/fixtures/real/README.md);
    /// for Telnyx no capture of a stream handshake is public, so it is the User-Agent Telnyx
    /// documents for its platform's requests to applications. SignalWire's is not known and
    /// none is claimed.
    pub fn user_agent(&self) -> Option<&'static str> {
        match self {
            Self::Twilio {
                signalwire: false, ..
            } => Some("Twilio.TmeWs/1.0"),
            Self::Twilio {
                signalwire: true, ..
            } => None,
            Self::Telnyx { .. } => Some(TELNYX_USER_AGENT),
        }
    }
}

/// The User-Agent of Telnyx's requests to applications (its webhooks, its streams).
pub const TELNYX_USER_AGENT: &str = "telnyx-webhooks";

/// What the application sent, as far as the stream is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Audio in the stream's encoding.
    Audio(Vec<u8>),
    /// A whole MP3 file to play (Telnyx's `mp3` mode).
    Mp3(Vec<u8>),
    Mark(String),
    Clear,
    /// The application's own `connected` message: some Telnyx applications greet the stream
    /// with one (mirroring the provider's first message); it asks for nothing.
    Greeting,
}

/// Why an application's message was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a text frame of JSON (a binary frame, say).
    Malformed(String),
    /// JSON that does not follow the protocol: an unknown event, a missing field, another
    /// stream's id, audio on a stream that takes none.
    Invalid(String),
}

/// Telnyx's error codes for the `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelnyxError {
    MalformedFrame,
    InvalidMedia,
    RateLimit,
}

impl TelnyxError {
    fn code_title(self) -> (u32, &'static str) {
        match self {
            Self::MalformedFrame => (100003, "malformed_frame"),
            Self::InvalidMedia => (100004, "invalid_media"),
            Self::RateLimit => (100005, "rate_limit_reached"),
        }
    }
}

/// One stream's outgoing messages: its counters and identities.
pub struct Messages {
    wire: Wire,
    stream_id: String,
    /// The last `sequenceNumber` used; `start` is 1.
    seq: u64,
    /// Media messages sent per track (inbound, outbound).
    chunks: [u64; 2],
    /// Samples in 20 ms of the stream's encoding, set by `start`: Telnyx counts a media
    /// message's `timestamp` in the audio's sample clock (+160 per 20 ms of PCMU, as a real
    /// capture shows); Twilio in milliseconds. Both by the frame's place in its track, not by
    /// when it came, so that N frames always span N - 1 frames of time.
    samples_per_frame: u64,
}

impl Messages {
    pub fn new(wire: Wire, stream_id: String) -> Self {
        Self {
            wire,
            stream_id,
            seq: 0,
            chunks: [0; 2],
            samples_per_frame: 160,
        }
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    fn telnyx(&self) -> bool {
        matches!(self.wire, Wire::Telnyx { .. })
    }

    /// Adds the stream id and sequence number the way the format puts them.
    fn envelope(&mut self, event: &str, mut body: serde_json::Map<String, Value>) -> String {
        let seq = self.next_seq();
        body.insert("event".into(), event.into());
        if self.telnyx() {
            body.insert("sequence_number".into(), seq.into());
            body.insert("stream_id".into(), self.stream_id.clone().into());
        } else {
            body.insert("sequenceNumber".into(), seq.into());
            body.insert("streamSid".into(), self.stream_id.clone().into());
        }
        Value::Object(body).to_string()
    }

    /// The first message, before `start`; it has no sequence number.
    pub fn connected(&self) -> String {
        match &self.wire {
            Wire::Twilio { signalwire, .. } => json!({
                "event": "connected",
                "protocol": "Call",
                "version": if *signalwire { "0.2.0" } else { "1.0.0" },
            }),
            Wire::Telnyx { auth_token, .. } => {
                let mut v = json!({"event": "connected", "version": "1.0.0"});
                if let Some(token) = auth_token {
                    v["connected"] = json!({"x-telnyx-streaming-auth-token": token});
                }
                v
            }
        }
        .to_string()
    }

    pub fn start(
        &mut self,
        tracks: TapTracks,
        parameters: &[(String, String)],
        encoding: Encoding,
    ) -> String {
        self.samples_per_frame = u64::from(encoding.rate() / 50);
        let custom: serde_json::Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let start = match &self.wire {
            Wire::Twilio {
                account_sid,
                call_sid,
                ..
            } => {
                let names: &[&str] = match tracks {
                    TapTracks::Inbound => &["inbound"],
                    TapTracks::Outbound => &["outbound"],
                    TapTracks::Both => &["inbound", "outbound"],
                };
                json!({
                    "accountSid": account_sid,
                    "streamSid": self.stream_id,
                    "callSid": call_sid,
                    "tracks": names,
                    "customParameters": custom,
                    "mediaFormat": {
                        "encoding": twilio_encoding(encoding),
                        "sampleRate": encoding.rate(),
                        "channels": 1,
                    },
                })
            }
            Wire::Telnyx {
                call_control_id,
                call_session_id,
                user_id,
                from,
                to,
                client_state,
                ..
            } => {
                let mut start = json!({
                    "user_id": user_id,
                    "call_control_id": call_control_id,
                    "call_session_id": call_session_id,
                    "from": from,
                    "to": to,
                    "custom_parameters": custom,
                    "media_format": {
                        "encoding": telnyx_encoding(encoding),
                        "sample_rate": encoding.rate(),
                        "channels": 1,
                    },
                });
                if let Some(state) = client_state {
                    start["client_state"] = state.clone().into();
                }
                start
            }
        };
        let mut body = serde_json::Map::new();
        body.insert("start".into(), start);
        self.envelope("start", body)
    }

    /// One media message. Built by hand: it is the one sent 50 or 100 times a second per
    /// stream, and every field but the payload is a known-safe token.
    /// `position` is the frame's place in its track (frames before it, silence included).
    pub fn media(&mut self, track: Track, position: u64, payload: &[u8]) -> String {
        let (index, name) = match track {
            Track::Inbound => (0, "inbound"),
            Track::Outbound => (1, "outbound"),
        };
        self.chunks[index] += 1;
        self.seq += 1;
        // Sized for the envelope and the payload's base64, so it is written without growing.
        let mut buf =
            String::with_capacity(160 + self.stream_id.len() + payload.len().div_ceil(3) * 4);
        let (seq_key, id_key, timestamp) = if self.telnyx() {
            let samples = position.saturating_mul(self.samples_per_frame);
            ("sequence_number", "stream_id", samples)
        } else {
            ("sequenceNumber", "streamSid", position.saturating_mul(20))
        };
        let _ = write!(
            &mut buf,
            r#"{{"event":"media","{seq_key}":"{}","media":{{"track":"{name}","chunk":"{}","timestamp":"{timestamp}","payload":""#,
            self.seq, self.chunks[index]
        );
        BASE64.encode_string(payload, &mut buf);
        let _ = write!(buf, r#""}},"{id_key}":"{}"}}"#, self.stream_id);
        buf
    }

    /// A digit the far end pressed.
    pub fn dtmf(&mut self, digit: char, duration_ms: u32, occurred_at: &str) -> String {
        let mut body = serde_json::Map::new();
        let dtmf = match &self.wire {
            Wire::Twilio {
                signalwire: false, ..
            } => json!({"track": "inbound_track", "digit": digit.to_string()}),
            Wire::Twilio {
                signalwire: true, ..
            } => json!({"duration": duration_ms, "digit": digit.to_string()}),
            Wire::Telnyx { .. } => {
                body.insert("occurred_at".into(), occurred_at.into());
                json!({"digit": digit.to_string()})
            }
        };
        body.insert("dtmf".into(), dtmf);
        self.envelope("dtmf", body)
    }

    /// A transcript of a streamed track (Switchboard's extension): interim while the party
    /// speaks, then final for each utterance.
    pub fn transcription(
        &mut self,
        track: &str,
        text: &str,
        confidence: f32,
        is_final: bool,
    ) -> String {
        let mut body = serde_json::Map::new();
        let t = if self.telnyx() {
            json!({"track": track, "transcript": text, "confidence": confidence, "is_final": is_final})
        } else {
            json!({"track": track, "transcript": text, "confidence": confidence, "final": is_final})
        };
        body.insert("transcription".into(), t);
        self.envelope("transcription", body)
    }

    /// The echo of an application's mark, once the audio before it has played.
    pub fn mark(&mut self, name: &str) -> String {
        let mut body = serde_json::Map::new();
        body.insert("mark".into(), json!({ "name": name }));
        self.envelope("mark", body)
    }

    /// Telnyx tells the application what was wrong with its message; Twilio's format has no
    /// such message (its warnings go to the debugger).
    pub fn error(&mut self, error: TelnyxError, detail: &str) -> Option<String> {
        if !self.telnyx() {
            return None;
        }
        let (code, title) = error.code_title();
        let mut body = serde_json::Map::new();
        body.insert(
            "payload".into(),
            json!({"code": code, "title": title, "detail": detail}),
        );
        Some(self.envelope("error", body))
    }

    /// The last message.
    pub fn stop(&mut self) -> String {
        let stop = match &self.wire {
            Wire::Twilio {
                account_sid,
                call_sid,
                ..
            } => json!({"accountSid": account_sid, "callSid": call_sid}),
            Wire::Telnyx {
                user_id,
                call_control_id,
                ..
            } => json!({"user_id": user_id, "call_control_id": call_control_id}),
        };
        let mut body = serde_json::Map::new();
        body.insert("stop".into(), stop);
        self.envelope("stop", body)
    }

    /// Reads an application's text message. `mp3` is Telnyx's mode where each media payload
    /// is a whole MP3 file. Fields the protocol does not name (a `track`, a `stream_id` some
    /// clients add) are ignored; a stream id that names another stream is refused.
    pub fn parse(&self, text: &str, mp3: bool) -> Result<Incoming, Refusal> {
        #[derive(Deserialize)]
        struct Message {
            event: Option<String>,
            #[serde(rename = "streamSid")]
            stream_sid: Option<String>,
            stream_id: Option<String>,
            media: Option<Media>,
            mark: Option<Mark>,
        }
        #[derive(Deserialize)]
        struct Media {
            payload: Option<String>,
        }
        #[derive(Deserialize)]
        struct Mark {
            name: Option<Value>,
        }
        let invalid = |why: &str| Err(Refusal::Invalid(why.to_owned()));
        let message: Message = serde_json::from_str(text).map_err(|e| {
            Refusal::Invalid(format!("the message is not JSON of the protocol: {e}"))
        })?;
        let named = message
            .stream_sid
            .as_deref()
            .or(message.stream_id.as_deref());
        if let Some(id) = named
            && id != self.stream_id
        {
            return invalid(&format!(
                "the message names stream {id:?}, not {:?}",
                self.stream_id
            ));
        }
        match message.event.as_deref() {
            Some("media") => {
                let Some(payload) = message.media.and_then(|m| m.payload) else {
                    return invalid("a media message needs media.payload");
                };
                let bytes = BASE64
                    .decode(payload.as_bytes())
                    .map_err(|e| Refusal::Invalid(format!("media.payload is not base64: {e}")))?;
                Ok(if mp3 {
                    Incoming::Mp3(bytes)
                } else {
                    Incoming::Audio(bytes)
                })
            }
            Some("mark") => {
                let name = match message.mark.and_then(|m| m.name) {
                    Some(Value::String(name)) => name,
                    Some(other) => other.to_string(),
                    None => return invalid("a mark message needs mark.name"),
                };
                // Marks wait until their audio has played, thousands of them: their names
                // are kept short.
                if name.len() > MAX_MARK_NAME {
                    return invalid(&format!("a mark name over {MAX_MARK_NAME} bytes"));
                }
                Ok(Incoming::Mark(name))
            }
            Some("clear") => Ok(Incoming::Clear),
            Some("connected") => Ok(Incoming::Greeting),
            Some(other) => invalid(&format!("unknown event {other:?}")),
            None => invalid("the message has no event"),
        }
    }
}

fn twilio_encoding(e: Encoding) -> &'static str {
    match e {
        Encoding::Pcmu => "audio/x-mulaw",
        Encoding::Pcma => "audio/x-alaw",
        Encoding::L16 { .. } => "audio/x-L16",
    }
}

fn telnyx_encoding(e: Encoding) -> &'static str {
    match e {
        Encoding::Pcmu => "PCMU",
        Encoding::Pcma => "PCMA",
        Encoding::L16 { .. } => "L16",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twilio() -> Messages {
        Messages::new(
            Wire::Twilio {
                account_sid: "AC1".into(),
                call_sid: "CA1".into(),
                signalwire: false,
            },
            "MZ1".into(),
        )
    }

    fn telnyx() -> Messages {
        Messages::new(
            Wire::Telnyx {
                call_control_id: "v3:abc".into(),
                call_session_id: "sess".into(),
                user_id: "user".into(),
                from: "+1555".into(),
                to: "+1666".into(),
                client_state: Some("c3RhdGU=".into()),
                auth_token: Some("tok".into()),
            },
            "3f1c".into(),
        )
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn twilio_messages_have_twilio_fields_and_string_counters() {
        let mut m = twilio();
        assert_eq!(
            parse(&m.connected()),
            json!({"event":"connected","protocol":"Call","version":"1.0.0"})
        );
        let start = parse(&m.start(
            TapTracks::Both,
            &[("FirstName".into(), "Jane".into())],
            Encoding::Pcmu,
        ));
        assert_eq!(
            start,
            json!({"event":"start","sequenceNumber":"1","streamSid":"MZ1",
                "start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1",
                    "tracks":["inbound","outbound"],"customParameters":{"FirstName":"Jane"},
                    "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}})
        );
        let a = parse(&m.media(Track::Inbound, 0, &[0xff; 160]));
        let b = parse(&m.media(Track::Outbound, 0, &[0xff; 160]));
        let c = parse(&m.media(Track::Inbound, 1, &[0xff; 160]));
        assert_eq!(a["sequenceNumber"], "2");
        assert_eq!(
            (&a["media"]["chunk"], &b["media"]["chunk"]),
            (&json!("1"), &json!("1"))
        );
        assert_eq!(c["media"]["chunk"], "2");
        assert_eq!(c["media"]["timestamp"], "20");
        assert_eq!(c["media"]["track"], "inbound");
        assert_eq!(c["streamSid"], "MZ1");
        assert_eq!(c["media"]["payload"].as_str().unwrap().len(), 216);
        assert_eq!(
            parse(&m.dtmf('7', 100, "")),
            json!({"event":"dtmf","sequenceNumber":"5","streamSid":"MZ1",
                "dtmf":{"track":"inbound_track","digit":"7"}})
        );
        assert_eq!(
            parse(&m.mark("said hello")),
            json!({"event":"mark","sequenceNumber":"6","streamSid":"MZ1","mark":{"name":"said hello"}})
        );
        assert!(m.error(TelnyxError::RateLimit, "x").is_none());
        assert_eq!(
            parse(&m.stop()),
            json!({"event":"stop","sequenceNumber":"7","streamSid":"MZ1",
                "stop":{"accountSid":"AC1","callSid":"CA1"}})
        );
    }

    #[test]
    fn telnyx_messages_have_telnyx_fields() {
        let mut m = telnyx();
        assert_eq!(
            parse(&m.connected()),
            json!({"event":"connected","version":"1.0.0",
                "connected":{"x-telnyx-streaming-auth-token":"tok"}})
        );
        let start = parse(&m.start(
            TapTracks::Inbound,
            &[],
            Encoding::L16 {
                rate: 16000,
                big_endian: true,
            },
        ));
        assert_eq!(
            start,
            json!({"event":"start","sequence_number":"1","stream_id":"3f1c",
                "start":{"user_id":"user","call_control_id":"v3:abc","call_session_id":"sess",
                    "from":"+1555","to":"+1666","client_state":"c3RhdGU=","custom_parameters":{},
                    "media_format":{"encoding":"L16","sample_rate":16000,"channels":1}}})
        );
        let media = parse(&m.media(Track::Inbound, 2, &[1, 2]));
        assert_eq!(
            media,
            json!({"event":"media","sequence_number":"2","stream_id":"3f1c",
                "media":{"track":"inbound","chunk":"1","timestamp":"640","payload":"AQI="}})
        );
        // In PCMU's 8 kHz clock: +160 a 20 ms frame.
        let mut pcmu = telnyx();
        pcmu.start(TapTracks::Inbound, &[], Encoding::Pcmu);
        let stamps: Vec<Value> = [0, 1, 2]
            .map(|n| {
                parse(&pcmu.media(Track::Inbound, n, &[0xff; 160]))["media"]["timestamp"].clone()
            })
            .into();
        assert_eq!(stamps, [json!("0"), json!("160"), json!("320")]);
        // An application's own `connected` greeting asks for nothing and is no error.
        assert_eq!(
            m.parse(r#"{"event":"connected","version":"1.0.0"}"#, false),
            Ok(Incoming::Greeting)
        );
        assert_eq!(m.wire.user_agent(), Some("telnyx-webhooks"));
        assert_eq!(
            parse(&m.dtmf('#', 100, "2026-11-22T10:00:00.000Z")),
            json!({"event":"dtmf","sequence_number":"3","stream_id":"3f1c",
                "occurred_at":"2026-11-22T10:00:00.000Z","dtmf":{"digit":"#"}})
        );
        assert_eq!(
            parse(
                &m.error(TelnyxError::RateLimit, "one file a second")
                    .unwrap()
            ),
            json!({"event":"error","sequence_number":"4","stream_id":"3f1c",
                "payload":{"code":100005,"title":"rate_limit_reached","detail":"one file a second"}})
        );
        assert_eq!(
            parse(&m.stop()),
            json!({"event":"stop","sequence_number":"5","stream_id":"3f1c",
                "stop":{"user_id":"user","call_control_id":"v3:abc"}})
        );
    }

    #[test]
    fn signalwire_has_its_version_and_dtmf_duration() {
        let mut m = Messages::new(
            Wire::Twilio {
                account_sid: "p".into(),
                call_sid: "c".into(),
                signalwire: true,
            },
            "MZ2".into(),
        );
        assert_eq!(parse(&m.connected())["version"], "0.2.0");
        let start = parse(&m.start(
            TapTracks::Inbound,
            &[],
            Encoding::L16 {
                rate: 24000,
                big_endian: false,
            },
        ));
        assert_eq!(
            start["start"]["mediaFormat"],
            json!({"encoding":"audio/x-L16","sampleRate":24000,"channels":1})
        );
        assert_eq!(
            parse(&m.dtmf('8', 2700, ""))["dtmf"],
            json!({"duration":2700,"digit":"8"})
        );
    }

    #[test]
    fn app_messages_are_read_leniently_but_not_blindly() {
        let m = twilio();
        assert_eq!(
            m.parse(
                r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AQI="}}"#,
                false
            ),
            Ok(Incoming::Audio(vec![1, 2]))
        );
        // No streamSid, an extra track: accepted (SignalWire's Go package sends these).
        assert_eq!(
            m.parse(
                r#"{"event":"media","media":{"track":"outbound","payload":"AQI="}}"#,
                false
            ),
            Ok(Incoming::Audio(vec![1, 2]))
        );
        assert_eq!(
            m.parse(
                r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#,
                false
            ),
            Ok(Incoming::Mark("m1".into()))
        );
        assert_eq!(m.parse(r#"{"event":"clear"}"#, false), Ok(Incoming::Clear));
        for bad in [
            r#"{"event":"media","streamSid":"MZ9","media":{"payload":"AQI="}}"#,
            r#"{"event":"media","media":{"payload":"not base64!"}}"#,
            r#"{"event":"media"}"#,
            r#"{"event":"mark","mark":{}}"#,
            &format!(
                r#"{{"event":"mark","mark":{{"name":"{}"}}}}"#,
                "x".repeat(MAX_MARK_NAME + 1)
            ),
            r#"{"event":"stream_started"}"#,
            r#"{"media":{}}"#,
            "garbage",
            "[1,2]",
        ] {
            assert!(
                matches!(m.parse(bad, false), Err(Refusal::Invalid(_))),
                "{bad}"
            );
        }
        let t = telnyx();
        assert_eq!(
            t.parse(r#"{"event":"media","media":{"payload":"AQI="}}"#, true),
            Ok(Incoming::Mp3(vec![1, 2]))
        );
        assert!(
            t.parse(
                r#"{"event":"mark","stream_id":"other","mark":{"name":"x"}}"#,
                false
            )
            .is_err()
        );
    }
}
