//! Reading a Telnyx JSON body: each getter names the parameter it failed on, as Telnyx's
//! errors point at it (`source.pointer`). Shared by dial and the actions (their stream and
//! record parameters are the same set).

pub(super) mod amd;
pub(super) mod record;
pub(super) mod relay;

use super::errors::ApiError;
use crate::services::stream::audio::Encoding;
use crate::services::stream::telnyx as streaming;
use crate::services::stream::{Playback, PlaybackTo};
use base64::Engine;
use serde_json::{Map, Value};
use switchboard_media::TapTracks;

/// The longest list of strings a parameter may hold (Telnyx allows 800 participants).
const MAX_STRINGS: usize = 800;

/// Larger bodies are refused (a `speak` payload is at most 3,000 characters, a base64 MP3
/// playback a few hundred kilobytes).
pub(super) const MAX_BODY: usize = 1 << 20;
/// `client_state` is echoed on every webhook: bounded like Telnyx bounds it.
const MAX_CLIENT_STATE: usize = 4096;
/// `command_id`s are kept to spot repeats.
const MAX_COMMAND_ID: usize = 256;
/// URLs (webhook, audio, stream) are kept with the leg.
const MAX_URL: usize = 4096;

pub(super) struct Params(Map<String, Value>);

impl Params {
    /// The body's object; an empty body is `{}` (the Node SDK sends none for a bare action).
    /// A body that is not a JSON object gets code 10000, Switchboard's own (Telnyx's code for
    /// it is not known).
    pub(super) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.len() > MAX_BODY {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "10000",
                "Bad Request",
                format!("the body is over {MAX_BODY} bytes"),
            ));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "10000",
                "Bad Request",
                "The request body is not a JSON object.".into(),
            )),
        }
    }

    /// An object parameter (`*_config`) as parameters of its own; `None` when absent or null.
    pub(super) fn object(&self, key: &str) -> Result<Option<Params>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Self(map.clone()))),
            Some(_) => Err(ApiError::invalid(
                key,
                format!("'{key}' must be an object."),
            )),
        }
    }

    /// Every parameter, by name.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    pub(super) fn array(&self, key: &str) -> Option<&Vec<Value>> {
        self.0.get(key).and_then(Value::as_array)
    }

    /// Whether the body names `key` (null included).
    pub(super) fn given(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// A parameter as given, when present and not null.
    pub(super) fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// Refuses the first of `unserved` — parameters Telnyx documents that Switchboard does not
    /// carry out — that the body sets to something that would change what happens: 10032
    /// naming it. A value that asks for nothing (`false`, empty, `disabled`, `none`) passes.
    pub(super) fn refuse_unserved(&self, unserved: &[&str]) -> Result<(), ApiError> {
        let asks = |v: &Value| match v {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !(s.is_empty() || s == "disabled" || s == "none"),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        };
        match unserved.iter().find(|k| self.0.get(**k).is_some_and(asks)) {
            Some(key) => Err(ApiError::invalid(
                key,
                format!("'{key}' is not served by Switchboard."),
            )),
            None => Ok(()),
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    /// A string parameter; `None` when absent or null.
    pub(super) fn str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid(key, format!("'{key}' must be a string."))),
        }
    }

    pub(super) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.str(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing(key))
    }

    /// One of `allowed`, or `default` when absent.
    pub(super) fn choice<'a>(
        &'a self,
        key: &str,
        allowed: &[&'static str],
        default: &'static str,
    ) -> Result<&'a str, ApiError> {
        match self.str(key)? {
            None => Ok(default),
            Some(v) if allowed.contains(&v) => Ok(v),
            Some(v) => Err(ApiError::invalid(
                key,
                format!("'{v}' is not one of {}.", allowed.join(", ")),
            )),
        }
    }

    /// An integer in `range` (sent as a number or a string of digits), or `None`.
    pub(super) fn int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let value = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::out_of_range(
                key,
                format!(
                    "'{key}' must be an integer from {} to {}.",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// A list of strings (at most [`MAX_STRINGS`]); empty when absent or null.
    pub(super) fn strings(&self, key: &str) -> Result<Vec<String>, ApiError> {
        let bad = || ApiError::invalid(key, format!("'{key}' must be a list of strings."));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= MAX_STRINGS => (items.iter())
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect(),
            Some(Value::Array(_)) => Err(ApiError::out_of_range(
                key,
                format!("'{key}' holds at most {MAX_STRINGS} items."),
            )),
            Some(_) => Err(bad()),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                key,
                format!("'{key}' must be a boolean."),
            )),
        }
    }

    /// `client_state`: base64, echoed on later webhooks.
    pub(super) fn client_state(&self) -> Result<Option<String>, ApiError> {
        self.client_state_of("client_state")
    }

    /// A client state given under `key` (a transfer's `target_leg_client_state`).
    pub(super) fn client_state_of(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(state) = self.str(key)? else {
            return Ok(None);
        };
        if state.len() > MAX_CLIENT_STATE
            || base64::engine::general_purpose::STANDARD
                .decode(state)
                .is_err()
        {
            return Err(ApiError::invalid(
                key,
                format!("'{key}' must be valid base64 of at most {MAX_CLIENT_STATE} characters."),
            ));
        }
        Ok(Some(state.to_owned()))
    }

    /// A short free-form string (an id the app names something by), at most `max` bytes.
    pub(super) fn short(&self, key: &str, max: usize) -> Result<Option<&str>, ApiError> {
        match self.str(key)? {
            Some(v) if v.len() > max => Err(ApiError::out_of_range(
                key,
                format!("'{key}' is longer than {max} characters."),
            )),
            v => Ok(v),
        }
    }

    pub(super) fn command_id(&self) -> Result<Option<String>, ApiError> {
        Ok(self.short("command_id", MAX_COMMAND_ID)?.map(str::to_owned))
    }

    /// An http(s) URL parameter.
    pub(super) fn url(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(u) = self.str(key)?.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if u.len() > MAX_URL {
            return Err(ApiError::out_of_range(
                key,
                format!("'{key}' is longer than {MAX_URL} characters."),
            ));
        }
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(Some(u.to_owned())),
            _ => Err(ApiError::invalid(
                key,
                format!("'{u}' is not an http(s) URL."),
            )),
        }
    }

    /// `from_display_name`: the From header's display name, at most 128 characters.
    pub(super) fn display_name(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(name) = self.str(key)?.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        if name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(ApiError::param(
                "10015",
                "Invalid value",
                key,
                format!("'{key}' must be at most 128 printable characters."),
            ));
        }
        Ok(Some(name.to_owned()))
    }

    /// `custom_headers`: `[{name, value}]` added to the INVITE (the 200 of `answer`, the BYE
    /// of `hangup`), at most 20, each one the SIP UA lets an application add (not its own
    /// headers, nor an identity header).
    pub(super) fn custom_headers(&self) -> Result<Vec<(String, String)>, ApiError> {
        self.headers("custom_headers", |_| true)
    }

    /// `sip_headers`: `[{name, value}]` whose only name Telnyx takes is `User-to-User`.
    pub(super) fn sip_headers(&self) -> Result<Vec<(String, String)>, ApiError> {
        self.headers("sip_headers", |name| {
            name.eq_ignore_ascii_case("User-to-User")
        })
    }

    /// Both, as they go on the message.
    pub(super) fn all_headers(&self) -> Result<Vec<(String, String)>, ApiError> {
        let mut headers = self.custom_headers()?;
        headers.extend(self.sip_headers()?);
        Ok(headers)
    }

    /// A list of headers under `key`, each named as `named` allows.
    fn headers(
        &self,
        key: &'static str,
        named: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let bad = |detail: String| ApiError::param("10015", "Invalid value", key, detail);
        let list = match self.value(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(list)) if list.len() <= 20 => list,
            Some(Value::Array(_)) => return Err(bad(format!("At most 20 {key}."))),
            Some(_) => return Err(bad(format!("'{key}' must be a list of {{name, value}}."))),
        };
        list.iter()
            .map(|h| {
                let field = |f: &str| h.get(f).and_then(Value::as_str);
                match (field("name"), field("value")) {
                    (Some(name), Some(value))
                        if named(name) && switchboard_sip::ua::is_custom_header(name, value) =>
                    {
                        Ok((name.to_owned(), value.to_owned()))
                    }
                    (Some(name), Some(_)) if !named(name) => {
                        Err(bad(format!("'{name}' is not a header {key} may carry.")))
                    }
                    (Some(name), Some(_)) => Err(bad(format!(
                        "'{name}' cannot be added: a SIP header name that is not one of the \
                         call's own or identity headers, with a value of at most 1024 \
                         printable characters."
                    ))),
                    _ => Err(bad("Each header needs a name and a value.".into())),
                }
            })
            .collect()
    }

    /// A webhook URL override: only POST deliveries are made (how Telnyx encodes a GET
    /// delivery is not known).
    pub(super) fn webhook_url(&self) -> Result<Option<String>, ApiError> {
        self.choice("webhook_url_method", &["POST"], "POST")?;
        self.url("webhook_url")
    }

    /// The `stream_*` parameters, if `stream_url` is given.
    pub(super) fn stream(&self) -> Result<Option<StreamParams>, ApiError> {
        let Some(url) = self.str("stream_url")?.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if url.len() > MAX_URL {
            return Err(ApiError::out_of_range(
                "stream_url",
                format!("'stream_url' is longer than {MAX_URL} characters."),
            ));
        }
        let tracks = match self.choice(
            "stream_track",
            &["inbound_track", "outbound_track", "both_tracks"],
            "inbound_track",
        )? {
            "outbound_track" => TapTracks::Outbound,
            "both_tracks" => TapTracks::Both,
            _ => TapTracks::Inbound,
        };
        let codec = |key: &str, rate: u32| -> Result<Option<Encoding>, ApiError> {
            match self.str(key)? {
                None | Some("default") => Ok(None),
                Some(name) => streaming::encoding(Some(name), rate)
                    .map(Some)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            key,
                            format!("'{name}' is not served here: PCMU, PCMA or L16."),
                        )
                    }),
            }
        };
        let rate = match self.int("stream_bidirectional_sampling_rate", 8000..=48000)? {
            None => 8000,
            Some(r @ (8000 | 16000 | 24000)) => r as u32,
            Some(r) => {
                return Err(ApiError::invalid(
                    "stream_bidirectional_sampling_rate",
                    format!("{r} Hz is not served here: 8000, 16000 or 24000."),
                ));
            }
        };
        let rtp = match self.choice("stream_bidirectional_mode", &["mp3", "rtp"], "mp3")? {
            "rtp" => Some(codec("stream_bidirectional_codec", rate)?.unwrap_or(Encoding::Pcmu)),
            _ => None,
        };
        let (encoding, playback) = streaming::formats(codec("stream_codec", rate)?, rtp);
        let playback_to = match self.choice(
            "stream_bidirectional_target_legs",
            &["both", "self", "opposite"],
            "self",
        )? {
            "opposite" => PlaybackTo::Peer,
            "both" => PlaybackTo::Both,
            _ => PlaybackTo::Own,
        };
        let auth_token = self.str("stream_auth_token")?.map(str::to_owned);
        if auth_token.as_ref().is_some_and(|t| t.len() > 4000) {
            return Err(ApiError::out_of_range(
                "stream_auth_token",
                "'stream_auth_token' is longer than 4000 characters.".into(),
            ));
        }
        let mut parameters = Vec::new();
        if let Some(Value::Array(list)) = self.0.get("custom_parameters") {
            for p in list.iter().take(32) {
                if let (Some(name), Some(value)) = (
                    p.get("name").and_then(Value::as_str),
                    p.get("value").and_then(Value::as_str),
                ) {
                    parameters.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        Ok(Some(StreamParams {
            url: url.to_owned(),
            tracks,
            encoding,
            playback,
            playback_to,
            auth_token,
            parameters,
            transcripts: self.bool("stream_transcripts")?.unwrap_or(false),
        }))
    }
}

/// A media stream the app asked for.
#[derive(Debug, Clone)]
pub(super) struct StreamParams {
    pub(super) url: String,
    pub(super) tracks: TapTracks,
    pub(super) encoding: Encoding,
    pub(super) playback: Playback,
    /// `stream_bidirectional_target_legs`: who hears the app's audio.
    pub(super) playback_to: PlaybackTo,
    pub(super) auth_token: Option<String>,
    pub(super) parameters: Vec<(String, String)>,
    /// `stream_transcripts` (Switchboard's extension): `transcription` frames beside the audio.
    pub(super) transcripts: bool,
}

/// The provider a Telnyx `transcription_engine` names, for the operator's map of providers
/// to engines: `A` is Telnyx's name for Google's, `B` for its own, `deepgram/nova-3`
/// Deepgram's.
pub(super) fn transcription_provider(engine: &str) -> &str {
    match engine {
        "A" => "google",
        "B" => "telnyx",
        other => other.split('/').next().unwrap_or(other),
    }
}

impl Params {
    /// `loop`: 1 to 100 plays, or `infinity` (0: until stopped).
    pub(super) fn loops(&self) -> Result<u32, ApiError> {
        Ok(match self.str("loop") {
            Ok(Some("infinity")) => 0,
            _ => self.int("loop", 1..=100)?.unwrap_or(1) as u32,
        })
    }

    /// A supervisor's role by Telnyx's name in `key` (`default` when not given): dial's
    /// `supervisor_role`, `switch_supervisor_role`'s `role`.
    pub(super) fn supervisor_role(
        &self,
        key: &str,
        default: &'static str,
    ) -> Result<crate::call::SupervisorRole, ApiError> {
        use crate::call::SupervisorRole;
        Ok(
            match self.choice(key, &["barge", "whisper", "monitor"], default)? {
                "whisper" => SupervisorRole::Whisper,
                "monitor" => SupervisorRole::Monitor,
                _ => SupervisorRole::Barge,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &str) -> Params {
        Params::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_seed_apps_stream_parameters_are_read() {
        let s = p(
            r#"{"stream_url":"wss://app/ws","stream_track":"both_tracks",
            "stream_bidirectional_mode":"rtp","stream_bidirectional_codec":"PCMU",
            "stream_bidirectional_sampling_rate":8000}"#,
        )
        .stream()
        .unwrap()
        .unwrap();
        assert_eq!(s.tracks, TapTracks::Both);
        assert_eq!(s.encoding, Encoding::Pcmu);
        assert_eq!(s.playback, Playback::Audio(Encoding::Pcmu));
        assert_eq!(s.playback_to, PlaybackTo::Own);
        for (legs, to) in [("opposite", PlaybackTo::Peer), ("both", PlaybackTo::Both)] {
            let body = format!(
                r#"{{"stream_url":"wss://a","stream_bidirectional_target_legs":"{legs}"}}"#
            );
            assert_eq!(p(&body).stream().unwrap().unwrap().playback_to, to);
        }
        let bad = p(r#"{"stream_url":"wss://a","stream_bidirectional_target_legs":"all"}"#);
        assert_eq!(bad.stream().unwrap_err().code, "10032");
        let l16 = p(
            r#"{"stream_url":"wss://a","stream_bidirectional_mode":"rtp",
            "stream_bidirectional_codec":"L16","stream_bidirectional_sampling_rate":16000}"#,
        )
        .stream()
        .unwrap()
        .unwrap();
        assert_eq!(
            l16.encoding,
            Encoding::L16 {
                rate: 16000,
                big_endian: true
            }
        );
        assert_eq!(p("{}").stream().unwrap().map(|s| s.url), None);
        assert_eq!(p("").stream().unwrap().map(|s| s.url), None);
    }

    #[test]
    fn bad_parameters_point_at_themselves() {
        let pointer = |body: &str| {
            let params = p(body);
            let e = params
                .stream()
                .err()
                .or_else(|| params.client_state().err())
                .or_else(|| params.int("timeout_secs", 5..=600).err())
                .unwrap();
            (e.code, e.pointer.unwrap())
        };
        assert_eq!(
            pointer(r#"{"stream_url":"wss://a","stream_track":"left"}"#),
            ("10032", "/stream_track".into())
        );
        assert_eq!(
            pointer(
                r#"{"stream_url":"wss://a","stream_bidirectional_mode":"rtp","stream_bidirectional_codec":"OPUS"}"#
            ),
            ("10032", "/stream_bidirectional_codec".into())
        );
        assert_eq!(
            pointer(r#"{"client_state":"not base64!"}"#),
            ("10032", "/client_state".into())
        );
        assert_eq!(
            pointer(r#"{"timeout_secs":3}"#),
            ("10033", "/timeout_secs".into())
        );
        // What a leg keeps is bounded.
        let long = format!("https://a/{}", "x".repeat(MAX_URL));
        let e = p(&format!(r#"{{"stream_url":"{long}"}}"#))
            .stream()
            .unwrap_err();
        assert_eq!(
            (e.code, e.pointer.unwrap()),
            ("10033", "/stream_url".into())
        );
        let e = p(&format!(r#"{{"webhook_url":"{long}"}}"#))
            .webhook_url()
            .unwrap_err();
        assert_eq!(
            (e.code, e.pointer.unwrap()),
            ("10033", "/webhook_url".into())
        );
        let e = p(&format!(r#"{{"gather_id":"{}"}}"#, "g".repeat(257)))
            .short("gather_id", 256)
            .unwrap_err();
        assert_eq!((e.code, e.pointer.unwrap()), ("10033", "/gather_id".into()));
        assert_eq!(
            p(r#"{"gather_id":"g1"}"#).short("gather_id", 256).unwrap(),
            Some("g1")
        );
        assert!(Params::parse(b"[1]").is_err());
        assert!(Params::parse(&vec![b' '; MAX_BODY + 1]).is_err());
    }

    #[test]
    fn sip_headers_carry_user_to_user_only() {
        let ok = p(
            r#"{"sip_headers":[{"name":"User-to-User","value":"56a3;encoding=hex"}],
            "custom_headers":[{"name":"X-A","value":"1"}]}"#,
        );
        assert_eq!(
            ok.all_headers().unwrap(),
            [
                ("X-A".into(), "1".into()),
                ("User-to-User".into(), "56a3;encoding=hex".into())
            ]
        );
        let refused = p(r#"{"sip_headers":[{"name":"X-A","value":"1"}]}"#).sip_headers();
        assert_eq!(refused.unwrap_err().code, "10015");
    }

    #[test]
    fn display_names_and_custom_headers_are_checked() {
        let ok = p(
            r#"{"from_display_name":" Seed Bot ","custom_headers":[{"name":"X-Id","value":"42"}]}"#,
        );
        assert_eq!(
            ok.display_name("from_display_name").unwrap().as_deref(),
            Some("Seed Bot")
        );
        assert_eq!(ok.custom_headers().unwrap(), [("X-Id".into(), "42".into())]);
        let code = |body: &str| {
            let params = p(body);
            let e = params
                .custom_headers()
                .err()
                .or(params.display_name("from_display_name").err());
            e.map(|e| e.code.to_owned())
        };
        assert_eq!(
            code(r#"{"from_display_name":"a\nb"}"#).as_deref(),
            Some("10015")
        );
        let long = format!(r#"{{"from_display_name":"{}"}}"#, "n".repeat(129));
        assert_eq!(code(&long).as_deref(), Some("10015"));
        for bad in [
            r#"{"custom_headers":[{"name":"Via","value":"x"}]}"#,
            r#"{"custom_headers":[{"name":"P-Asserted-Identity","value":"<sip:1@x>"}]}"#,
            r#"{"custom_headers":[{"name":"X-A","value":"a\r\nB: c"}]}"#,
            r#"{"custom_headers":[{"name":"X-A"}]}"#,
            r#"{"custom_headers":{"name":"X-A","value":"1"}}"#,
        ] {
            assert_eq!(code(bad).as_deref(), Some("10015"), "{bad}");
        }
        let many: Vec<String> = (0..21)
            .map(|i| format!(r#"{{"name":"X-{i}","value":"v"}}"#))
            .collect();
        assert_eq!(
            code(&format!(r#"{{"custom_headers":[{}]}}"#, many.join(","))).as_deref(),
            Some("10015")
        );
    }
}
