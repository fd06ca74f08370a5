//! TwiML (and SignalWire's LaML, the same language) parsed into typed verbs with Twilio's
//! defaults filled in. Unknown verbs, misplaced nouns and bad attribute values are refused with
//! Twilio's error codes (12100 for a document that is not XML, 12200 for one that breaks the
//! schema), as Twilio refuses them.

pub mod attributes;
pub(crate) mod ssml;
mod tree;

pub use attributes::Warning;
use switchboard_media::TapTracks;
use tree::Element;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TwiML error {code}: {message}")]
pub struct TwimlError {
    /// 12100 (document parse failure) or 12200 (schema validation).
    pub code: u32,
    pub message: String,
}

fn schema(message: impl Into<String>) -> TwimlError {
    TwimlError {
        code: 12200,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    Get,
    #[default]
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    /// Its words, SSML markup dropped.
    pub text: String,
    /// What it says as the local voices render it (its SSML read: [`ssml`]).
    pub parts: Vec<crate::services::prompts::SayPart>,
    pub voice: Option<String>,
    pub language: Option<String>,
    /// 0 repeats until the call ends.
    pub loops: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    pub url: Option<String>,
    pub loops: u32,
    /// DTMF to send instead of audio (`w` waits half a second).
    pub digits: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherInput {
    Dtmf,
    Speech,
    DtmfSpeech,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    pub input: GatherInput,
    /// `None`: the current document's URL.
    pub action: Option<String>,
    pub method: Method,
    pub timeout_secs: u32,
    /// `None` when `finishOnKey=""` disables it.
    pub finish_on_key: Option<char>,
    pub num_digits: Option<u32>,
    pub action_on_empty_result: bool,
    pub language: Option<String>,
    pub hints: Option<String>,
    /// Silence that ends speech: `None` is `timeout`'s value, `Some(None)` is `auto`.
    pub speech_timeout: Option<Option<u32>>,
    pub max_speech_time_secs: u32,
    pub partial_result_callback: Option<String>,
    pub partial_result_callback_method: Method,
    /// Speech (or a digit) stops the prompts.
    pub barge_in: bool,
    /// Profanity in the speech results is masked (`profanityFilter`, Twilio's default).
    pub profanity_filter: bool,
    /// Only `Say`, `Play` and `Pause`.
    pub prompts: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub action: Option<String>,
    pub method: Method,
    pub timeout_secs: u32,
    pub finish_on_key: String,
    pub max_length_secs: u32,
    pub play_beep: bool,
    pub trim_silence: bool,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: Method,
    pub recording_status_callback_event: Vec<String>,
    /// `transcribe`: the recording's text goes to `transcribeCallback` (and the
    /// Transcriptions resource).
    pub transcribe: bool,
    pub transcribe_callback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegCallbacks {
    pub url: Option<String>,
    pub method: Method,
    pub status_callback: Option<String>,
    pub status_callback_method: Method,
    /// `initiated ringing answered completed`; default `completed`.
    pub status_callback_event: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceNoun {
    pub name: String,
    pub muted: bool,
    /// `true`, `false`, `onEnter`, `onExit`.
    pub beep: String,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    /// `None`: Twilio's default hold music; `Some("")`: silence.
    pub wait_url: Option<String>,
    pub wait_method: Method,
    pub max_participants: u32,
    pub record_from_start: bool,
    pub trim_silence: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: Method,
    pub status_callback_event: Vec<String>,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: Method,
    /// `in-progress`, `completed`, `absent`; default `completed`.
    pub recording_status_callback_event: Vec<String>,
    pub participant_label: Option<String>,
    /// The call SID of the participant this one coaches: heard by that one alone.
    pub coach: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialNoun {
    Number {
        number: String,
        send_digits: Option<String>,
        callbacks: LegCallbacks,
    },
    Sip {
        uri: String,
        username: Option<String>,
        password: Option<String>,
        callbacks: LegCallbacks,
    },
    Client {
        identity: String,
        /// `<Parameter name value>` children: the device sees them as `Params`.
        parameters: Vec<(String, String)>,
        callbacks: LegCallbacks,
    },
    /// A TwiML App (`<ApplicationSid>`) the caller is handed to: the App's voice URL runs
    /// for the leg, told the `<Parameter>`s as `Param_<name>`.
    Application {
        sid: String,
        parameters: Vec<(String, String)>,
        /// `customerId`: who is calling, as the App is told (the account by default).
        customer_id: Option<String>,
        /// `copyParentTo`: the App is told the caller's `To` rather than its own SID.
        copy_parent_to: bool,
        callbacks: LegCallbacks,
    },
    Conference(ConferenceNoun),
    /// A queue's front caller, bridged at once (its `url` is warned about, not run).
    Queue {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub action: Option<String>,
    pub method: Method,
    pub timeout_secs: u32,
    pub hangup_on_star: bool,
    pub time_limit_secs: u32,
    pub caller_id: Option<String>,
    /// `do-not-record`, `record-from-answer`, `record-from-ringing`, `…-dual`.
    pub record: String,
    pub trim_silence: bool,
    pub answer_on_bridge: bool,
    pub recording_status_callback: Option<String>,
    pub recording_status_callback_method: Method,
    pub recording_status_callback_event: Vec<String>,
    /// Where a REFER from the dialed party asks what to do instead (its TwiML runs on the
    /// caller), and how.
    pub refer_url: Option<String>,
    pub refer_method: Method,
    pub nouns: Vec<DialNoun>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub url: String,
    pub name: Option<String>,
    /// `inbound_track` (the default), `outbound_track`, `both_tracks`; `inbound`,
    /// `outbound` and `both` are taken for them too.
    pub track: TapTracks,
    pub status_callback: Option<String>,
    pub status_callback_method: Method,
    pub parameters: Vec<(String, String)>,
    /// SignalWire's `codec`: `PCMU@8000h` (the default), `L16@16000h`, `L16@24000h`.
    pub codec: Option<String>,
    /// SignalWire's `authBearerToken`, sent as `Authorization: Bearer` on the handshake.
    pub auth_bearer_token: Option<String>,
    /// TeXML's `bidirectionalMode` (`mp3`, the default, or `rtp`), `bidirectionalCodec` and
    /// `bidirectionalSamplingRate`: read by the TeXML dialect only.
    pub bidirectional_mode: Option<String>,
    pub bidirectional_codec: Option<String>,
    pub bidirectional_sampling_rate: Option<String>,
    /// Switchboard's `transcripts="true"`: `transcription` messages beside the audio.
    pub transcripts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Pause {
        length_secs: u32,
    },
    Gather(Gather),
    Record(Record),
    Dial(Dial),
    /// `<Parameter>`s go back to the `<Dial>` that handed the call to this App
    /// (`ReturnParam_<name>` on its action).
    Hangup {
        parameters: Vec<(String, String)>,
    },
    Redirect {
        url: String,
        method: Method,
    },
    /// `busy` or `rejected`; `<Parameter>`s as `<Hangup>`'s.
    Reject {
        busy: bool,
        parameters: Vec<(String, String)>,
    },
    Enqueue {
        queue: String,
        action: Option<String>,
        method: Method,
        wait_url: Option<String>,
        wait_url_method: Method,
    },
    Leave,
    /// The caller's leg is asked to call `to` (the `<Sip>` URI) in our place: a SIP REFER.
    Refer {
        to: String,
        action: Option<String>,
        method: Method,
    },
    /// What the caller says is played back to them for this long (`<Echo>`).
    Echo {
        timeout_secs: u32,
    },
    /// SignalWire's `<Denoise>on|off</Denoise>`: noise suppression of what the caller says.
    Denoise {
        on: bool,
    },
    Connect {
        action: Option<String>,
        method: Method,
        to: ConnectTo,
    },
    Start {
        action: Option<String>,
        method: Method,
        streams: Vec<Stream>,
        transcriptions: Vec<Transcription>,
        recordings: Vec<Recording>,
    },
    /// Stops the named streams and transcriptions (`None`: every transcription), and the
    /// recordings named (`None`: the call's recording).
    Stop {
        streams: Vec<String>,
        transcriptions: Vec<Option<String>>,
        recordings: Vec<Option<String>>,
    },
}

/// What `<Connect>` connects the call to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTo {
    Stream(Box<Stream>),
    ConversationRelay(ConversationRelay),
}

/// `<Connect><ConversationRelay>`: its attributes as the document gave them, read and checked
/// by the neutral relay service (Telnyx's `conversation_relay_start` gives it the same
/// settings), its `<Language>` children's attributes, and its `<Parameter>`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRelay {
    pub attributes: Vec<(String, String)>,
    pub languages: Vec<Vec<(String, String)>>,
    pub parameters: Vec<(String, String)>,
}

/// `<Start><Recording>`: the call recorded in the background while the document goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub name: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: Method,
    pub status_callback_event: Vec<String>,
    pub trim_silence: bool,
    pub track: TapTracks,
    pub dual: bool,
}

/// `<Start><Transcription>`: real-time transcription, its events to `statusCallbackUrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    pub name: Option<String>,
    pub status_callback_url: Option<String>,
    pub status_callback_method: Method,
    pub track: TapTracks,
    pub partial_results: bool,
    pub language_code: String,
    pub hints: Option<String>,
    pub transcription_engine: String,
}

/// Parses a TwiML document: `<Response>` and its verbs.
/// `loop` on `<Say>` and `<Play>`: Twilio repeats "until the call ends, or up to 1000 times".
pub const MAX_LOOPS: u32 = 1000;
/// Any duration a document gives (pause, record length, timeouts): 4 hours, a call's default
/// time limit.
pub const MAX_SECONDS: u32 = 14_400;
/// Twilio's longest `<Dial timeout>`.
const MAX_DIAL_TIMEOUT: u32 = 600;
/// Twilio's longest `<Dial timeLimit>`: 24 hours.
const MAX_TIME_LIMIT: u32 = 86_400;
/// Twilio's largest conference.
const MAX_PARTICIPANTS: u32 = 250;
/// Digits one `<Gather>` waits for.
const MAX_DIGITS: u32 = 256;

pub fn parse(xml: &str) -> Result<Vec<Verb>, TwimlError> {
    parse_document(xml, false).map(|(verbs, _)| verbs)
}

/// Parses a document of a dialect (`texml`: Telnyx's): its verbs, and a warning for each
/// attribute that does not take effect here ([`attributes`]).
pub fn parse_document(xml: &str, texml: bool) -> Result<(Vec<Verb>, Vec<Warning>), TwimlError> {
    let root = tree::parse(xml).map_err(|message| TwimlError {
        code: 12100,
        message,
    })?;
    if root.name != "Response" {
        return Err(schema(format!(
            "the root element is <{}>, not <Response>",
            root.name
        )));
    }
    let verbs = root.elements().map(verb).collect::<Result<_, _>>()?;
    Ok((verbs, attributes::check(&root, texml)))
}

/// `<Stream>` directly under `<Response>` (as SignalWire's Go package writes it, expecting to
/// talk back) runs as `<Connect><Stream>` would.
fn bare_stream(e: &Element) -> Result<Verb, TwimlError> {
    Ok(Verb::Connect {
        action: None,
        method: Method::Post,
        to: ConnectTo::Stream(Box::new(stream_noun(e)?)),
    })
}

fn verb(e: &Element) -> Result<Verb, TwimlError> {
    let a = Attrs(e);
    Ok(match e.name.as_str() {
        "Say" => Verb::Say(Say {
            text: e.text(),
            parts: ssml::parts(e),
            voice: a.string("voice"),
            language: a.string("language"),
            loops: a.number("loop", 1, MAX_LOOPS)?,
        }),
        "Play" => {
            let url = Some(e.text()).filter(|t| !t.is_empty());
            let digits = a.string("digits");
            if url.is_none() && digits.is_none() {
                return Err(schema("<Play> needs a URL or digits"));
            }
            if let Some(d) = &digits
                && !d.chars().all(|c| "0123456789*#ABCDabcdwW".contains(c))
            {
                return Err(schema(format!(
                    "<Play digits> {d:?} holds a non-DTMF character"
                )));
            }
            Verb::Play(Play {
                url,
                loops: a.number("loop", 1, MAX_LOOPS)?,
                digits,
            })
        }
        "Pause" => Verb::Pause {
            length_secs: a.number("length", 1, MAX_SECONDS)?,
        },
        "Gather" => Verb::Gather(gather(e)?),
        "Record" => Verb::Record(Record {
            action: a.string("action"),
            method: a.method("method")?,
            timeout_secs: a.number("timeout", 5, MAX_SECONDS)?,
            finish_on_key: a
                .string("finishOnKey")
                .unwrap_or_else(|| "1234567890*#".into()),
            max_length_secs: a.number("maxLength", 3600, MAX_SECONDS)?,
            play_beep: a.boolean("playBeep", true)?,
            trim_silence: a.string("trim").as_deref() != Some("do-not-trim"),
            recording_status_callback: a.string("recordingStatusCallback"),
            recording_status_callback_method: a.method("recordingStatusCallbackMethod")?,
            recording_status_callback_event: a.list("recordingStatusCallbackEvent", "completed"),
            // A transcribeCallback asks for the transcription by itself.
            transcribe: a.boolean("transcribe", false)? || e.attr("transcribeCallback").is_some(),
            transcribe_callback: a.string("transcribeCallback"),
        }),
        "Dial" => Verb::Dial(dial(e)?),
        "Hangup" => Verb::Hangup {
            parameters: parameters(e, "Hangup")?,
        },
        "Redirect" => {
            let url = e.text();
            if url.is_empty() {
                return Err(schema("<Redirect> needs a URL"));
            }
            Verb::Redirect {
                url,
                method: a.method("method")?,
            }
        }
        "Reject" => Verb::Reject {
            busy: match a.string("reason").as_deref() {
                None | Some("rejected") => false,
                Some("busy") => true,
                Some(other) => return Err(schema(format!("<Reject reason> {other:?}"))),
            },
            parameters: parameters(e, "Reject")?,
        },
        "Enqueue" => Verb::Enqueue {
            queue: e.text(),
            action: a.string("action"),
            method: a.method("method")?,
            wait_url: a.string("waitUrl"),
            wait_url_method: a.method("waitUrlMethod")?,
        },
        "Leave" => Verb::Leave,
        "Refer" => {
            let mut sips = e.elements().filter(|c| c.name == "Sip");
            let to = match (sips.next().map(|s| s.text()), sips.next()) {
                (Some(to), None) if !to.is_empty() => to,
                _ => return Err(schema("<Refer> needs one <Sip> URI")),
            };
            Verb::Refer {
                to,
                action: a.string("action"),
                method: a.method("method")?,
            }
        }
        // SignalWire's bounds: 5 to 120 seconds, 60 when not given.
        "Echo" => Verb::Echo {
            timeout_secs: a.number("timeout", 60, 120)?.max(5),
        },
        "Denoise" => Verb::Denoise {
            on: match e.text().trim() {
                "on" => true,
                "off" => false,
                other => return Err(schema(format!("<Denoise> {other:?} is not on or off"))),
            },
        },
        "Stream" => bare_stream(e)?,
        "Connect" => {
            let to = match e.elements().next() {
                Some(s) if s.name == "Stream" => ConnectTo::Stream(Box::new(stream_noun(s)?)),
                Some(r) if r.name == "ConversationRelay" => {
                    ConnectTo::ConversationRelay(relay_noun(r)?)
                }
                Some(other) => {
                    return Err(schema(format!(
                        "<Connect><{}> is not supported here (<Stream> and <ConversationRelay> are)",
                        other.name
                    )));
                }
                None => {
                    return Err(schema(
                        "<Connect> needs a <Stream> or a <ConversationRelay>",
                    ));
                }
            };
            Verb::Connect {
                action: a.string("action"),
                method: a.method("method")?,
                to,
            }
        }
        "Start" => {
            let (mut streams, mut transcriptions, mut recordings) =
                (Vec::new(), Vec::new(), Vec::new());
            for c in e.elements() {
                match c.name.as_str() {
                    "Stream" => streams.push(stream_noun(c)?),
                    "Transcription" => transcriptions.push(transcription_noun(c)?),
                    "Recording" => recordings.push(recording_noun(c)?),
                    other => return Err(schema(format!("<Start><{other}> is not supported"))),
                }
            }
            Verb::Start {
                action: a.string("action"),
                method: a.method("method")?,
                streams,
                transcriptions,
                recordings,
            }
        }
        "Stop" => Verb::Stop {
            streams: e
                .elements()
                .filter(|c| c.name == "Stream")
                .filter_map(|c| c.attr("name").map(str::to_owned))
                .collect(),
            transcriptions: e
                .elements()
                .filter(|c| c.name == "Transcription")
                .map(|c| c.attr("name").map(str::to_owned))
                .collect(),
            recordings: e
                .elements()
                .filter(|c| c.name == "Recording")
                .map(|c| c.attr("name").map(str::to_owned))
                .collect(),
        },
        other => return Err(schema(format!("<{other}> is not a TwiML voice verb"))),
    })
}

fn gather(e: &Element) -> Result<Gather, TwimlError> {
    let a = Attrs(e);
    let input = match a.string("input").as_deref().map(str::trim) {
        None | Some("dtmf") => GatherInput::Dtmf,
        Some("speech") => GatherInput::Speech,
        Some("dtmf speech") | Some("speech dtmf") => GatherInput::DtmfSpeech,
        Some(other) => return Err(schema(format!("<Gather input> {other:?}"))),
    };
    let finish_on_key = match e.attr("finishOnKey") {
        None => Some('#'),
        Some("") => None,
        Some(k) if k.len() == 1 && "0123456789*#".contains(k) => k.chars().next(),
        Some(k) => return Err(schema(format!("<Gather finishOnKey> {k:?}"))),
    };
    let num_digits = match e.attr("numDigits") {
        None => None,
        Some(_) => Some(a.number("numDigits", 1, MAX_DIGITS)?).filter(|n| *n > 0),
    };
    let prompts = e
        .elements()
        .map(|c| match c.name.as_str() {
            "Say" | "Play" | "Pause" => verb(c),
            other => Err(schema(format!("<Gather> cannot hold <{other}>"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Gather {
        input,
        action: a.string("action"),
        method: a.method("method")?,
        timeout_secs: a.number("timeout", 5, MAX_SECONDS)?,
        finish_on_key,
        num_digits,
        action_on_empty_result: a.boolean("actionOnEmptyResult", false)?,
        language: a.string("language"),
        hints: a.string("hints"),
        speech_timeout: match a.string("speechTimeout").as_deref().map(str::trim) {
            None => None,
            Some("auto") => Some(None),
            Some(_) => Some(Some(a.number("speechTimeout", 0, MAX_SECONDS)?)),
        },
        max_speech_time_secs: a.number("maxSpeechTime", 60, MAX_SECONDS)?,
        partial_result_callback: a.string("partialResultCallback"),
        partial_result_callback_method: a.method("partialResultCallbackMethod")?,
        barge_in: a.boolean("bargeIn", true)?,
        profanity_filter: a.boolean("profanityFilter", true)?,
        prompts,
    })
}

fn dial(e: &Element) -> Result<Dial, TwimlError> {
    let a = Attrs(e);
    let mut nouns: Vec<DialNoun> = e.elements().map(dial_noun).collect::<Result<_, _>>()?;
    // `<Dial>+15551234</Dial>`: a bare number.
    if nouns.is_empty() {
        let number = e.text();
        if number.is_empty() {
            return Err(schema("<Dial> needs a number or a noun"));
        }
        nouns.push(DialNoun::Number {
            number,
            send_digits: None,
            callbacks: LegCallbacks {
                status_callback_event: vec!["completed".into()],
                ..Default::default()
            },
        });
    }
    // Twilio dials an App alone, never ringing it beside other nouns.
    if nouns.len() > 1 && (nouns.iter()).any(|n| matches!(n, DialNoun::Application { .. })) {
        return Err(schema("<Dial><Application> cannot ring beside other nouns"));
    }
    let record = match a.string("record").as_deref() {
        None | Some("false") | Some("do-not-record") => "do-not-record".to_owned(),
        Some("true") => "record-from-answer".to_owned(),
        Some(
            r @ ("record-from-answer"
            | "record-from-ringing"
            | "record-from-answer-dual"
            | "record-from-ringing-dual"),
        ) => r.to_owned(),
        Some(other) => return Err(schema(format!("<Dial record> {other:?}"))),
    };
    Ok(Dial {
        action: a.string("action"),
        method: a.method("method")?,
        timeout_secs: a.number("timeout", 30, MAX_DIAL_TIMEOUT)?,
        hangup_on_star: a.boolean("hangupOnStar", false)?,
        time_limit_secs: a.number("timeLimit", 14400, MAX_TIME_LIMIT)?,
        caller_id: a.string("callerId"),
        record,
        trim_silence: a.string("trim").as_deref() != Some("do-not-trim"),
        answer_on_bridge: a.boolean("answerOnBridge", false)?,
        recording_status_callback: a.string("recordingStatusCallback"),
        recording_status_callback_method: a.method("recordingStatusCallbackMethod")?,
        recording_status_callback_event: a.list("recordingStatusCallbackEvent", "completed"),
        refer_url: a.string("referUrl"),
        refer_method: a.method("referMethod")?,
        nouns,
    })
}

fn leg_callbacks(a: &Attrs<'_>) -> Result<LegCallbacks, TwimlError> {
    Ok(LegCallbacks {
        url: a.string("url"),
        method: a.method("method")?,
        status_callback: a.string("statusCallback"),
        status_callback_method: a.method("statusCallbackMethod")?,
        status_callback_event: a.list("statusCallbackEvent", "completed"),
    })
}

fn dial_noun(e: &Element) -> Result<DialNoun, TwimlError> {
    let a = Attrs(e);
    let text = e.text();
    let need_text = |what: &str| {
        if text.is_empty() {
            Err(schema(format!("<{what}> is empty")))
        } else {
            Ok(text.clone())
        }
    };
    Ok(match e.name.as_str() {
        "Number" => DialNoun::Number {
            number: need_text("Number")?,
            send_digits: a.string("sendDigits"),
            callbacks: leg_callbacks(&a)?,
        },
        "Sip" => DialNoun::Sip {
            uri: need_text("Sip")?,
            username: a.string("username"),
            password: a.string("password"),
            callbacks: leg_callbacks(&a)?,
        },
        "Client" => {
            // The identity is the text, or an <Identity> child.
            let identity = e
                .elements()
                .find(|c| c.name == "Identity")
                .map(|c| c.text())
                .unwrap_or_else(|| text.clone());
            if identity.is_empty() {
                return Err(schema("<Client> is empty"));
            }
            DialNoun::Client {
                identity,
                parameters: parameters(e, "Client")?,
                callbacks: leg_callbacks(&a)?,
            }
        }
        "Application" => {
            // The SID is an <ApplicationSid> child, or the text.
            let sid = e
                .elements()
                .find(|c| c.name == "ApplicationSid")
                .map(|c| c.text())
                .unwrap_or_else(|| text.clone());
            if !crate::infra::sid::is_sid(&sid, "AP") {
                return Err(schema(format!("<Application> names no App: {sid:?}")));
            }
            let customer_id = a.string("customerId");
            if customer_id
                .as_ref()
                .is_some_and(|c| c.chars().count() > 256)
            {
                return Err(schema("<Application customerId> is over 256 characters"));
            }
            DialNoun::Application {
                sid,
                parameters: parameters(e, "Application")?,
                customer_id,
                copy_parent_to: a.boolean("copyParentTo", false)?,
                callbacks: leg_callbacks(&a)?,
            }
        }
        "Conference" => DialNoun::Conference(ConferenceNoun {
            name: need_text("Conference")?,
            muted: a.boolean("muted", false)?,
            beep: match a.string("beep").as_deref() {
                None => "true".into(),
                Some(b @ ("true" | "false" | "onEnter" | "onExit")) => b.into(),
                Some(other) => return Err(schema(format!("<Conference beep> {other:?}"))),
            },
            start_conference_on_enter: a.boolean("startConferenceOnEnter", true)?,
            end_conference_on_exit: a.boolean("endConferenceOnExit", false)?,
            wait_url: e.attr("waitUrl").map(str::to_owned),
            wait_method: a.method("waitMethod")?,
            max_participants: a.number("maxParticipants", 250, MAX_PARTICIPANTS)?,
            record_from_start: a.string("record").as_deref() == Some("record-from-start"),
            trim_silence: a.string("trim").as_deref() == Some("trim-silence"),
            status_callback: a.string("statusCallback"),
            status_callback_method: a.method("statusCallbackMethod")?,
            status_callback_event: a.list("statusCallbackEvent", ""),
            recording_status_callback: a.string("recordingStatusCallback"),
            recording_status_callback_method: a.method("recordingStatusCallbackMethod")?,
            recording_status_callback_event: a.list("recordingStatusCallbackEvent", "completed"),
            participant_label: a.string("participantLabel"),
            coach: a.string("coach"),
        }),
        "Queue" => DialNoun::Queue {
            name: need_text("Queue")?,
        },
        other => return Err(schema(format!("<Dial> cannot hold <{other}>"))),
    })
}

/// `<Parameter>`s a `<Stream>` may carry (Twilio's REST create takes `Parameter1` to
/// `Parameter99`).
pub const MAX_STREAM_PARAMETERS: usize = 99;

/// The `<Parameter name value>` children of `e` (a `<Client>`, `<Application>`, `<Hangup>`,
/// `<Reject>`), as many as a `<Stream>` may carry.
fn parameters(e: &Element, what: &str) -> Result<Vec<(String, String)>, TwimlError> {
    let parameters: Vec<(String, String)> = (e.elements())
        .filter(|c| c.name == "Parameter")
        .filter_map(|c| Some((c.attr("name")?.to_owned(), c.attr("value")?.to_owned())))
        .collect();
    if parameters.len() > MAX_STREAM_PARAMETERS {
        return Err(schema(format!("<{what}> has too many <Parameter>s")));
    }
    Ok(parameters)
}

fn recording_noun(e: &Element) -> Result<Recording, TwimlError> {
    let a = Attrs(e);
    let track = match a.string("track").as_deref() {
        None | Some("both") => TapTracks::Both,
        Some("inbound") => TapTracks::Inbound,
        Some("outbound") => TapTracks::Outbound,
        Some(other) => return Err(schema(format!("<Recording track> {other:?}"))),
    };
    let dual = match a.string("channels").as_deref() {
        None | Some("mono" | "single") => false,
        Some("dual") => true,
        Some(other) => return Err(schema(format!("<Recording channels> {other:?}"))),
    };
    let trim_silence = match a.string("trim").as_deref() {
        None | Some("do-not-trim") => false,
        Some("trim-silence") => true,
        Some(other) => return Err(schema(format!("<Recording trim> {other:?}"))),
    };
    Ok(Recording {
        name: a.string("name"),
        status_callback: a.string("recordingStatusCallback"),
        status_callback_method: a.method("recordingStatusCallbackMethod")?,
        status_callback_event: a.list("recordingStatusCallbackEvent", "completed"),
        trim_silence,
        track,
        dual,
    })
}

fn transcription_noun(e: &Element) -> Result<Transcription, TwimlError> {
    let a = Attrs(e);
    let track = match a.string("track").as_deref() {
        None | Some("inbound_track") => TapTracks::Inbound,
        Some("outbound_track") => TapTracks::Outbound,
        Some("both_tracks") => TapTracks::Both,
        Some(other) => return Err(schema(format!("<Transcription track> {other:?}"))),
    };
    Ok(Transcription {
        name: a.string("name"),
        status_callback_url: a.string("statusCallbackUrl"),
        status_callback_method: a.method("statusCallbackMethod")?,
        track,
        partial_results: a.boolean("partialResults", false)?,
        language_code: a.string("languageCode").unwrap_or_else(|| "en-US".into()),
        hints: a.string("hints"),
        transcription_engine: a
            .string("transcriptionEngine")
            .unwrap_or_else(|| "google".into()),
    })
}

/// `<Language>`s one `<ConversationRelay>` may have, and `<Parameter>`s (its `setup`
/// message carries them: bounded as a stream's are).
const MAX_RELAY_LANGUAGES: usize = 32;

fn relay_noun(e: &Element) -> Result<ConversationRelay, TwimlError> {
    if Attrs(e).string("url").is_none() {
        return Err(schema("<ConversationRelay> needs a url"));
    }
    let attributes = |e: &Element| -> Vec<(String, String)> {
        (e.attrs.iter())
            .map(|(k, v)| (k.clone(), v.trim().to_owned()))
            .collect()
    };
    let (mut languages, mut parameters) = (Vec::new(), Vec::new());
    for c in e.elements() {
        match c.name.as_str() {
            "Language" => {
                if c.attr("code").is_none_or(|c| c.trim().is_empty()) {
                    return Err(schema("<ConversationRelay><Language> needs a code"));
                }
                languages.push(attributes(c));
            }
            "Parameter" => {
                let (Some(name), Some(value)) = (c.attr("name"), c.attr("value")) else {
                    return Err(schema("<Parameter> needs a name and a value"));
                };
                parameters.push((name.to_owned(), value.to_owned()));
            }
            other => {
                return Err(schema(format!(
                    "<ConversationRelay><{other}> is not supported (<Language> and <Parameter> are)"
                )));
            }
        }
    }
    if languages.len() > MAX_RELAY_LANGUAGES || parameters.len() > MAX_STREAM_PARAMETERS {
        return Err(schema(format!(
            "<ConversationRelay> has {} <Language>s and {} <Parameter>s, more than {MAX_RELAY_LANGUAGES} and {MAX_STREAM_PARAMETERS}",
            languages.len(),
            parameters.len()
        )));
    }
    Ok(ConversationRelay {
        attributes: attributes(e),
        languages,
        parameters,
    })
}

fn stream_noun(e: &Element) -> Result<Stream, TwimlError> {
    let a = Attrs(e);
    let url = a
        .string("url")
        .ok_or_else(|| schema("<Stream> needs a url"))?;
    let track = match a.string("track").as_deref() {
        None | Some("inbound_track" | "inbound") => TapTracks::Inbound,
        Some("outbound_track" | "outbound") => TapTracks::Outbound,
        Some("both_tracks" | "both") => TapTracks::Both,
        Some(other) => return Err(schema(format!("<Stream track> {other:?}"))),
    };
    let parameters: Vec<(String, String)> = e
        .elements()
        .filter(|c| c.name == "Parameter")
        .filter_map(|c| Some((c.attr("name")?.to_owned(), c.attr("value")?.to_owned())))
        .collect();
    if parameters.len() > MAX_STREAM_PARAMETERS {
        return Err(schema(format!(
            "<Stream> has {} <Parameter>s, more than {MAX_STREAM_PARAMETERS}",
            parameters.len()
        )));
    }
    Ok(Stream {
        url,
        name: a.string("name"),
        track,
        status_callback: a.string("statusCallback"),
        status_callback_method: a.method("statusCallbackMethod")?,
        parameters,
        codec: a.string("codec"),
        auth_bearer_token: a.string("authBearerToken"),
        bidirectional_mode: a.string("bidirectionalMode"),
        bidirectional_codec: a.string("bidirectionalCodec"),
        bidirectional_sampling_rate: a.string("bidirectionalSamplingRate"),
        transcripts: a.boolean("transcripts", false)?,
    })
}

/// Typed access to an element's attributes, with Twilio's defaults and errors.
struct Attrs<'a>(&'a Element);

impl Attrs<'_> {
    /// A non-empty attribute value, trimmed.
    fn string(&self, name: &str) -> Option<String> {
        // Every attribute the parser reads is in the table of what takes effect.
        debug_assert!(
            attributes::declared(&self.0.name, name),
            "<{} {name}> is read but not declared in twiml::attributes::TABLE",
            self.0.name
        );
        self.0
            .attr(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A whole-number attribute, at most `max`: larger values are taken as `max`, as Twilio
    /// takes a too-long timeout as its longest (and a document cannot ask for a billion
    /// repetitions or seconds of anything).
    fn number(&self, name: &str, default: u32, max: u32) -> Result<u32, TwimlError> {
        match self.string(name) {
            None => Ok(default.min(max)),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX).min(max)),
                // Too many digits even for a u64: still a whole number, and still too large.
                Err(_) if !v.trim().is_empty() && v.trim().bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(max)
                }
                Err(_) => Err(schema(format!(
                    "<{} {name}> {v:?} is not a whole number",
                    self.0.name
                ))),
            },
        }
    }

    fn boolean(&self, name: &str, default: bool) -> Result<bool, TwimlError> {
        match self.string(name).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(schema(format!(
                "<{} {name}> {v:?} is not true or false",
                self.0.name
            ))),
        }
    }

    fn method(&self, name: &str) -> Result<Method, TwimlError> {
        match self.string(name).map(|m| m.to_ascii_uppercase()).as_deref() {
            None | Some("POST") => Ok(Method::Post),
            Some("GET") => Ok(Method::Get),
            Some(v) => Err(schema(format!(
                "<{} {name}> {v:?} is not GET or POST",
                self.0.name
            ))),
        }
    }

    /// A space-separated list, or the default's words.
    fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.string(name)
            .as_deref()
            .unwrap_or(default)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests;
