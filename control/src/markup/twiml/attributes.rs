//! Every attribute of the voice markup, and what Switchboard does with it: each one a document
//! may carry either takes effect or draws the provider's schema warning (12200, a Notification
//! as Twilio emits for an attribute it does not take) — none is accepted and silently dropped.
//! The parser reads only what [`TABLE`] declares (its tests check that every attribute it
//! reads is declared), and [`check`] warns about the rest, so an attribute added to the
//! language cannot slip through unnoticed.
//!
//! `<ConversationRelay>` and its `<Language>`s are not here: the relay service reads them
//! and refuses what it cannot serve with its own code (64106).

use super::tree::Element;

/// What an attribute does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// It takes effect, in every dialect.
    Effect,
    /// It takes effect in TeXML (Telnyx's own attribute); elsewhere it is warned about.
    Texml,
    /// It is known but not served: warned about, and the verb runs without it.
    Refused,
}

use Support::{Effect, Refused, Texml};

const STATUS_CALLBACK: [(&str, Support); 3] = [
    ("statusCallback", Effect),
    ("statusCallbackMethod", Effect),
    ("statusCallbackEvent", Effect),
];

/// Each element and its attributes (Twilio's reference; TeXML's additions).
pub const TABLE: &[(&str, &[(&str, Support)])] = &[
    ("Response", &[]),
    (
        "Say",
        &[("voice", Effect), ("language", Effect), ("loop", Effect)],
    ),
    ("Play", &[("loop", Effect), ("digits", Effect)]),
    ("Pause", &[("length", Effect)]),
    (
        "Gather",
        &[
            ("input", Effect),
            ("action", Effect),
            ("method", Effect),
            ("timeout", Effect),
            ("finishOnKey", Effect),
            ("numDigits", Effect),
            ("actionOnEmptyResult", Effect),
            ("language", Effect),
            ("hints", Effect),
            ("speechTimeout", Effect),
            ("maxSpeechTime", Effect),
            ("partialResultCallback", Effect),
            ("partialResultCallbackMethod", Effect),
            ("bargeIn", Effect),
            ("profanityFilter", Effect),
            ("speechModel", Refused),
            ("enhanced", Refused),
            ("debug", Refused),
        ],
    ),
    (
        "Record",
        &[
            ("action", Effect),
            ("method", Effect),
            ("timeout", Effect),
            ("finishOnKey", Effect),
            ("maxLength", Effect),
            ("playBeep", Effect),
            ("trim", Effect),
            ("recordingStatusCallback", Effect),
            ("recordingStatusCallbackMethod", Effect),
            ("recordingStatusCallbackEvent", Effect),
            ("transcribe", Effect),
            ("transcribeCallback", Effect),
            ("storageUrl", Refused),
            ("storageUrlMethod", Refused),
        ],
    ),
    (
        "Dial",
        &[
            ("action", Effect),
            ("method", Effect),
            ("timeout", Effect),
            ("hangupOnStar", Effect),
            ("timeLimit", Effect),
            ("callerId", Effect),
            ("record", Effect),
            ("trim", Effect),
            ("answerOnBridge", Effect),
            ("recordingStatusCallback", Effect),
            ("recordingStatusCallbackMethod", Effect),
            ("recordingStatusCallbackEvent", Effect),
            ("callReason", Refused),
            ("recordingTrack", Refused),
            ("referUrl", Effect),
            ("referMethod", Effect),
            ("ringTone", Refused),
            ("sequential", Refused),
            ("events", Refused),
        ],
    ),
    (
        "Number",
        &[
            ("sendDigits", Effect),
            STATUS_CALLBACK[0],
            STATUS_CALLBACK[1],
            STATUS_CALLBACK[2],
            ("url", Effect),
            ("method", Effect),
            ("byoc", Refused),
            ("machineDetection", Refused),
            ("amdStatusCallback", Refused),
        ],
    ),
    (
        "Sip",
        &[
            ("username", Effect),
            ("password", Effect),
            STATUS_CALLBACK[0],
            STATUS_CALLBACK[1],
            STATUS_CALLBACK[2],
            ("url", Effect),
            ("method", Effect),
            ("machineDetection", Refused),
        ],
    ),
    (
        "Client",
        &[
            STATUS_CALLBACK[0],
            STATUS_CALLBACK[1],
            STATUS_CALLBACK[2],
            ("url", Effect),
            ("method", Effect),
        ],
    ),
    ("Identity", &[]),
    (
        "Application",
        &[
            ("customerId", Effect),
            ("copyParentTo", Effect),
            STATUS_CALLBACK[0],
            STATUS_CALLBACK[1],
            STATUS_CALLBACK[2],
            ("url", Effect),
            ("method", Effect),
        ],
    ),
    ("ApplicationSid", &[]),
    ("Parameter", &[("name", Effect), ("value", Effect)]),
    (
        "Conference",
        &[
            ("muted", Effect),
            ("beep", Effect),
            ("startConferenceOnEnter", Effect),
            ("endConferenceOnExit", Effect),
            ("waitUrl", Effect),
            ("record", Effect),
            ("trim", Effect),
            STATUS_CALLBACK[0],
            STATUS_CALLBACK[1],
            STATUS_CALLBACK[2],
            ("recordingStatusCallback", Effect),
            ("participantLabel", Effect),
            // The wait URL is fetched with GET or POST alike here, and a room's size is
            // Switchboard's own bound.
            ("waitMethod", Refused),
            ("maxParticipants", Refused),
            ("coach", Effect),
            ("jitterBufferSize", Refused),
            ("region", Refused),
            ("recordingStatusCallbackMethod", Effect),
            ("recordingStatusCallbackEvent", Effect),
            ("eventCallbackUrl", Refused),
        ],
    ),
    (
        "Queue",
        &[
            // The dequeued caller is bridged at once: no document is run on its leg first
            // (its session may be another node's), so these are warned about.
            ("url", Refused),
            ("method", Refused),
            ("reservationSid", Refused),
            ("postWorkActivitySid", Refused),
        ],
    ),
    ("Hangup", &[]),
    ("Redirect", &[("method", Effect)]),
    ("Reject", &[("reason", Effect)]),
    (
        "Enqueue",
        &[
            ("action", Effect),
            ("method", Effect),
            ("waitUrl", Effect),
            ("waitUrlMethod", Effect),
            ("workflowSid", Refused),
            ("maxQueueSize", Refused),
        ],
    ),
    ("Leave", &[]),
    ("Echo", &[("timeout", Effect)]),
    ("Refer", &[("action", Effect), ("method", Effect)]),
    ("Denoise", &[]),
    ("Connect", &[("action", Effect), ("method", Effect)]),
    // `<Start action>` is not requested (the verbs after `<Start>` run at once).
    ("Start", &[("action", Refused), ("method", Refused)]),
    ("Stop", &[]),
    (
        "Stream",
        &[
            ("url", Effect),
            ("name", Effect),
            ("track", Effect),
            ("statusCallback", Effect),
            ("statusCallbackMethod", Effect),
            // SignalWire's; served to every dialect (one interpreter).
            ("codec", Effect),
            ("authBearerToken", Effect),
            // Switchboard's own: transcripts beside the audio.
            ("transcripts", Effect),
            ("bidirectionalMode", Texml),
            ("bidirectionalCodec", Texml),
            ("bidirectionalSamplingRate", Texml),
        ],
    ),
    (
        "Recording",
        &[
            ("name", Effect),
            ("recordingStatusCallback", Effect),
            ("recordingStatusCallbackMethod", Effect),
            ("recordingStatusCallbackEvent", Effect),
            ("trim", Effect),
            ("track", Effect),
            ("channels", Effect),
            ("recordingConfigurationId", Refused),
            // TeXML's file format: a recording is served as WAV and as MP3 alike.
            ("format", Texml),
        ],
    ),
    (
        "Transcription",
        &[
            ("name", Effect),
            ("statusCallbackUrl", Effect),
            ("statusCallbackMethod", Effect),
            ("track", Effect),
            ("partialResults", Effect),
            ("languageCode", Effect),
            ("hints", Effect),
            ("transcriptionEngine", Effect),
            ("profanityFilter", Refused),
            ("speechModel", Refused),
            ("enableAutomaticPunctuation", Refused),
            ("inboundTrackLabel", Refused),
            ("outboundTrackLabel", Refused),
            ("intelligenceService", Refused),
        ],
    ),
    // SSML inside `<Say>` (see `ssml`): what the local voices render takes effect; the
    // rest keeps its words and is warned about.
    ("break", &[("time", Effect), ("strength", Effect)]),
    (
        "prosody",
        &[("rate", Effect), ("volume", Effect), ("pitch", Refused)],
    ),
    ("say-as", &[("interpret-as", Effect), ("format", Refused)]),
    ("sub", &[("alias", Effect)]),
    ("p", &[]),
    ("s", &[]),
    ("emphasis", &[("level", Effect)]),
    ("w", &[("role", Refused)]),
    ("lang", &[("xml:lang", Effect)]),
    ("phoneme", &[("alphabet", Refused), ("ph", Refused)]),
];

/// The SSML elements `<Say>` and its SSML containers take.
const SSML: &[&str] = &[
    "break", "prosody", "say-as", "sub", "p", "s", "emphasis", "w", "lang", "phoneme",
];

/// The child elements each element takes, for the elements whose parser does not refuse the
/// others itself (`<Gather>`, `<Dial>`, `<Start>`, `<Connect>`'s first, `<ConversationRelay>`
/// and `<Response>` do): any other child is warned about. `<Say>` takes SSML (an element the
/// voices cannot render keeps its words and draws its warning).
const CHILDREN: &[(&str, &[&str])] = &[
    ("Say", SSML),
    ("prosody", SSML),
    ("p", SSML),
    ("s", SSML),
    ("emphasis", SSML),
    ("lang", SSML),
    ("break", &[]),
    ("say-as", &[]),
    ("sub", &[]),
    ("w", &[]),
    ("phoneme", &[]),
    ("Play", &[]),
    ("Pause", &[]),
    ("Record", &[]),
    ("Hangup", &["Parameter"]),
    ("Reject", &["Parameter"]),
    ("Redirect", &[]),
    ("Leave", &[]),
    ("Enqueue", &[]),
    ("Echo", &[]),
    ("Refer", &["Sip"]),
    ("Denoise", &[]),
    ("Stop", &["Stream", "Transcription", "Recording"]),
    ("Number", &[]),
    ("Sip", &[]),
    ("Client", &["Identity", "Parameter"]),
    ("Application", &["ApplicationSid", "Parameter"]),
    ("ApplicationSid", &[]),
    ("Conference", &[]),
    ("Queue", &[]),
    ("Stream", &["Parameter"]),
    ("Transcription", &[]),
    ("Recording", &[]),
    ("Parameter", &[]),
    ("Identity", &[]),
];

/// Elements whose attributes another reader checks.
const CHECKED_ELSEWHERE: [&str; 2] = ["ConversationRelay", "Language"];

/// Warnings one document gets, at most (the last says how many more there were).
const MAX_WARNINGS: usize = 16;

/// Twilio's "Schema validation warning".
pub const SCHEMA_WARNING: u32 = 12200;

/// A warning about a document: Twilio's code and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: u32,
    pub message: String,
}

/// Whether the parser may read `attribute` of `element`: the table declares it, or another
/// reader checks the element.
pub(crate) fn declared(element: &str, attribute: &str) -> bool {
    CHECKED_ELSEWHERE.contains(&element) || support(element, attribute).is_some()
}

/// What the table says of `attribute` on `element` (`None`: not declared).
pub fn support(element: &str, attribute: &str) -> Option<Support> {
    let (_, attributes) = TABLE.iter().find(|(e, _)| *e == element)?;
    attributes
        .iter()
        .find(|(a, _)| *a == attribute)
        .map(|(_, s)| *s)
}

/// The warnings for a parsed document's attributes (`texml`: Telnyx's dialect), in document
/// order: one for each attribute that does not take effect here.
pub(crate) fn check(root: &Element, texml: bool) -> Vec<Warning> {
    let mut warnings = Vec::new();
    walk(root, texml, &mut warnings);
    // Each is a stored Notification: a hostile document gets a bounded number.
    if warnings.len() > MAX_WARNINGS {
        let more = warnings.len() - MAX_WARNINGS + 1;
        warnings.truncate(MAX_WARNINGS - 1);
        warnings.push(Warning {
            code: SCHEMA_WARNING,
            message: format!("{more} more attributes are ignored"),
        });
    }
    warnings
}

fn walk(e: &Element, texml: bool, warnings: &mut Vec<Warning>) {
    if CHECKED_ELSEWHERE.contains(&e.name.as_str()) {
        return;
    }
    for (name, _) in &e.attrs {
        let message = match support(&e.name, name) {
            Some(Effect) => continue,
            Some(Texml) if texml => continue,
            Some(Texml) => format!("<{} {name}> is TeXML's: ignored here", e.name),
            Some(Refused) => format!(
                "<{} {name}> is not supported by Switchboard: ignored",
                e.name
            ),
            None if TABLE.iter().any(|(known, _)| *known == e.name) => {
                format!(
                    "<{} {name}> is not an attribute of <{}>: ignored",
                    e.name, e.name
                )
            }
            // An element the table does not know (one its parent's reader accepts).
            None => format!(
                "<{} {name}> is not supported by Switchboard: ignored",
                e.name
            ),
        };
        warnings.push(Warning {
            code: SCHEMA_WARNING,
            message,
        });
    }
    if let Some((name, value)) = super::ssml::unreadable(e) {
        // The value is the document's: bounded before it is stored in a Notification.
        let value: String = value.chars().take(64).collect();
        warnings.push(Warning {
            code: SCHEMA_WARNING,
            message: format!(
                "<{} {name}=\"{value}\"> is not a value Switchboard reads: ignored",
                e.name
            ),
        });
    }
    let allowed = CHILDREN.iter().find(|(name, _)| *name == e.name);
    for (i, child) in e.elements().enumerate() {
        let ignored = match allowed {
            Some((_, children)) => !children.contains(&child.name.as_str()),
            // `<Connect>` runs its first child only.
            None => e.name == "Connect" && i > 0,
        };
        if ignored {
            // One warning for the whole child: its own attributes are moot.
            let message = if e.name == "Say" {
                format!(
                    "<Say><{}> is not rendered by Switchboard: its words are spoken, its markup ignored",
                    child.name
                )
            } else {
                format!(
                    "<{}><{}> is not supported by Switchboard: ignored",
                    e.name, child.name
                )
            };
            warnings.push(Warning {
                code: SCHEMA_WARNING,
                message,
            });
            continue;
        }
        walk(child, texml, warnings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the table: an element carrying every attribute declared for it, and one that is
    /// not, is warned about exactly the refused, the other dialect's and the unknown one.
    #[test]
    fn every_declared_attribute_takes_effect_or_is_warned_about() {
        for (element, attributes) in TABLE {
            let mut xml = format!("<{element}");
            for (name, _) in *attributes {
                xml += &format!(" {name}=\"x\"");
            }
            xml += " notAnAttribute=\"x\"/>";
            let root = super::super::tree::parse(&xml).unwrap();
            for texml in [false, true] {
                let warned: Vec<String> = check(&root, texml)
                    .into_iter()
                    .inspect(|w| assert_eq!(w.code, SCHEMA_WARNING))
                    .map(|w| w.message)
                    // The table is about names: "x" is no SSML value (see the SSML test).
                    .filter(|m| !m.ends_with("is not a value Switchboard reads: ignored"))
                    .collect();
                let mut expected: Vec<&str> = (attributes.iter())
                    .filter(|(_, s)| *s == Refused || (*s == Texml && !texml))
                    .map(|(name, _)| *name)
                    .collect();
                expected.push("notAnAttribute");
                let expected = expected.len().min(MAX_WARNINGS);
                assert_eq!(
                    warned.len(),
                    expected,
                    "<{element}> texml={texml}: {warned:?}"
                );
                assert!(
                    warned[0].starts_with(&format!("<{element} ")) || warned.len() == 1,
                    "{warned:?}"
                );
            }
        }
    }

    #[test]
    fn a_document_full_of_unknown_attributes_gets_a_bounded_number_of_warnings() {
        let attrs: String = (0..100).map(|i| format!(" a{i}=\"x\"")).collect();
        let root =
            super::super::tree::parse(&format!("<Response><Hangup{attrs}/></Response>")).unwrap();
        let warned = check(&root, false);
        assert_eq!(warned.len(), MAX_WARNINGS);
        assert_eq!(
            warned.last().unwrap().message,
            "85 more attributes are ignored"
        );
    }

    #[test]
    fn children_that_would_be_dropped_are_warned_about() {
        let root = super::super::tree::parse(
            r#"<Response><Hangup><Parameter name="a" value="b"/><Play>x</Play></Hangup><Enqueue><Task>{}</Task>support</Enqueue><Connect><Stream url="wss://a"><Parameter name="x" value="y"/></Stream><Stream url="wss://b"/></Connect><Stop><Siprec name="s"/></Stop></Response>"#,
        )
        .unwrap();
        let warned: Vec<String> = check(&root, false).into_iter().map(|w| w.message).collect();
        assert_eq!(
            warned,
            [
                "<Hangup><Play> is not supported by Switchboard: ignored",
                "<Enqueue><Task> is not supported by Switchboard: ignored",
                "<Connect><Stream> is not supported by Switchboard: ignored",
                "<Stop><Siprec> is not supported by Switchboard: ignored",
            ]
        );
    }

    #[test]
    fn ssml_is_rendered_and_what_is_not_is_warned_about_and_relay_attributes_left_to_their_reader()
    {
        let root = super::super::tree::parse(
            r#"<Response><Say voice="alice">Hi <break time="1s"/><prosody rate="slow" pitch="high">there</prosody><amazon:effect name="whispered">psst</amazon:effect></Say><Connect><ConversationRelay url="wss://x" ttsProvider="Google"><Language code="fr-FR"/></ConversationRelay></Connect></Response>"#,
        )
        .unwrap();
        let warned: Vec<String> = check(&root, false).into_iter().map(|w| w.message).collect();
        assert_eq!(
            warned,
            [
                "<prosody pitch> is not supported by Switchboard: ignored",
                "<Say><amazon:effect> is not rendered by Switchboard: its words are spoken, its markup ignored",
            ]
        );
        // A value the voices cannot read is warned about, not silently spoken as no value.
        let root = super::super::tree::parse(
            r#"<Response><Say>a <prosody volume="loudest" rate="fast">b</prosody><break time="soon"/><emphasis level="huge">c</emphasis><prosody volume="-3dB">d</prosody></Say></Response>"#,
        )
        .unwrap();
        let warned: Vec<String> = check(&root, false).into_iter().map(|w| w.message).collect();
        assert_eq!(
            warned,
            [
                "<prosody volume=\"loudest\"> is not a value Switchboard reads: ignored",
                "<break time=\"soon\"> is not a value Switchboard reads: ignored",
                "<emphasis level=\"huge\"> is not a value Switchboard reads: ignored",
            ]
        );
    }
}
