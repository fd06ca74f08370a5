//! Documents as Twilio's SDKs and docs write them.

use super::*;

fn one(xml: &str) -> Verb {
    let mut verbs = parse(xml).unwrap();
    assert_eq!(verbs.len(), 1, "{verbs:?}");
    verbs.remove(0)
}

#[test]
fn an_ivr_menu_with_defaults_filled_in() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather action="/menu" numDigits="1" timeout="7">
    <Say voice="Polly.Joanna" language="en-US">Press 1 for sales &amp; 2 for support.</Say>
    <Play loop="2">https://example.com/beep.wav</Play>
    <Pause length="2"/>
  </Gather>
  <Say>We didn't receive any input. Goodbye!</Say>
  <Hangup/>
</Response>"#;
    let verbs = parse(xml).unwrap();
    assert_eq!(verbs.len(), 3);
    let Verb::Gather(g) = &verbs[0] else { panic!() };
    assert_eq!(
        (
            g.input,
            g.action.as_deref(),
            g.method,
            g.timeout_secs,
            g.finish_on_key,
            g.num_digits
        ),
        (
            GatherInput::Dtmf,
            Some("/menu"),
            Method::Post,
            7,
            Some('#'),
            Some(1)
        )
    );
    assert!(!g.action_on_empty_result);
    assert_eq!(
        g.prompts,
        vec![
            Verb::Say(Say {
                text: "Press 1 for sales & 2 for support.".into(),
                parts: crate::services::prompts::SayPart::words(
                    "Press 1 for sales & 2 for support."
                ),
                voice: Some("Polly.Joanna".into()),
                language: Some("en-US".into()),
                loops: 1
            }),
            Verb::Play(Play {
                url: Some("https://example.com/beep.wav".into()),
                loops: 2,
                digits: None
            }),
            Verb::Pause { length_secs: 2 },
        ]
    );
    assert_eq!(verbs[2], Verb::Hangup { parameters: vec![] });
}

#[test]
fn say_keeps_the_words_of_ssml() {
    let Verb::Say(say) = one(
        r#"<Response><Say voice="Polly.Joanna">Hi <break strength="x-weak" time="100ms"/><emphasis>there</emphasis>, <say-as interpret-as="digits">123</say-as></Say></Response>"#,
    ) else {
        panic!()
    };
    assert_eq!(say.text, "Hi there, 123");
}

#[test]
fn dial_nouns_and_attributes() {
    let xml = r#"<Response><Dial action="/after" timeout="20" callerId="+15550001" record="record-from-answer-dual" answerOnBridge="true">
        <Number sendDigits="wW1" statusCallbackEvent="initiated ringing answered completed" statusCallback="/s">+15551234</Number>
        <Sip username="u" password="p">sip:bob@example.com;transport=tcp</Sip>
        <Client><Identity>alice</Identity><Parameter name="k" value="v"/></Client>
      </Dial></Response>"#;
    let Verb::Dial(d) = one(xml) else { panic!() };
    assert_eq!(
        (
            d.action.as_deref(),
            d.timeout_secs,
            d.caller_id.as_deref(),
            d.record.as_str()
        ),
        (
            Some("/after"),
            20,
            Some("+15550001"),
            "record-from-answer-dual"
        )
    );
    assert!(d.answer_on_bridge && !d.hangup_on_star);
    let DialNoun::Number {
        number,
        send_digits,
        callbacks,
    } = &d.nouns[0]
    else {
        panic!()
    };
    assert_eq!(
        (number.as_str(), send_digits.as_deref()),
        ("+15551234", Some("wW1"))
    );
    assert_eq!(callbacks.status_callback_event.len(), 4);
    assert!(
        matches!(&d.nouns[1], DialNoun::Sip { uri, username: Some(u), .. } if uri == "sip:bob@example.com;transport=tcp" && u == "u")
    );
    assert!(matches!(&d.nouns[2], DialNoun::Client { identity, .. } if identity == "alice"));
    // A client's <Identity> and <Parameter>s (what its device sees as `Params`).
    let Verb::Dial(d) = one("<Response><Dial><Client><Identity>bob</Identity>\
         <Parameter name=\"ticket\" value=\"42\"/></Client></Dial></Response>")
    else {
        panic!("a dial");
    };
    assert!(
        matches!(&d.nouns[0], DialNoun::Client { identity, parameters, .. }
        if identity == "bob" && parameters == &[("ticket".to_owned(), "42".to_owned())])
    );

    // A bare number, and a conference with Twilio's defaults.
    let Verb::Dial(d) = one("<Response><Dial>+15559999</Dial></Response>") else {
        panic!()
    };
    assert_eq!(d.timeout_secs, 30);
    assert!(matches!(&d.nouns[0], DialNoun::Number { number, .. } if number == "+15559999"));
    let Verb::Dial(d) = one(
        r#"<Response><Dial><Conference waitUrl="" endConferenceOnExit="true" record="record-from-start">Room 1</Conference></Dial></Response>"#,
    ) else {
        panic!()
    };
    let DialNoun::Conference(c) = &d.nouns[0] else {
        panic!()
    };
    assert_eq!(
        (c.name.as_str(), c.beep.as_str(), c.wait_url.as_deref()),
        ("Room 1", "true", Some(""))
    );
    assert!(
        c.start_conference_on_enter && c.end_conference_on_exit && c.record_from_start && !c.muted
    );
}

#[test]
fn streams_redirect_reject_record_and_queues() {
    // As the SDK's VoiceResponse writes <Start><Stream>.
    let Verb::Start { streams, .. } = one(
        r#"<Response><Start><Stream name="mystream" statusCallback="/scb" track="both_tracks" url="wss://example.com/s"><Parameter name="foo" value="bar" /></Stream></Start></Response>"#,
    ) else {
        panic!()
    };
    assert_eq!(streams[0].track, TapTracks::Both);
    assert_eq!(
        streams[0].parameters,
        [("foo".to_owned(), "bar".to_owned())]
    );
    let Verb::Connect {
        to: ConnectTo::Stream(stream),
        ..
    } = one(r#"<Response><Connect><Stream url="wss://example.com/s"/></Connect></Response>"#)
    else {
        panic!()
    };
    assert_eq!(stream.track, TapTracks::Inbound);
    // A bare <Stream> (SignalWire's Go package) runs as <Connect><Stream>, `both` tracks.
    let Verb::Connect {
        to: ConnectTo::Stream(stream),
        action,
        ..
    } = one(
        r#"<Response><Stream url="wss://host/s?call_sid=CA1" track="both"></Stream></Response>"#,
    )
    else {
        panic!()
    };
    assert_eq!((stream.track, action), (TapTracks::Both, None));
    assert_eq!(stream.url, "wss://host/s?call_sid=CA1");
    let Verb::Connect {
        to: ConnectTo::Stream(stream),
        ..
    } = one(
        r#"<Response><Connect><Stream url="wss://x" codec="L16@16000h" authBearerToken="t0k"/></Connect></Response>"#,
    )
    else {
        panic!()
    };
    assert_eq!(stream.codec.as_deref(), Some("L16@16000h"));
    assert_eq!(stream.auth_bearer_token.as_deref(), Some("t0k"));
    assert_eq!(
        one(r#"<Response><Stop><Stream name="mystream"/></Stop></Response>"#),
        Verb::Stop {
            streams: vec!["mystream".into()],
            transcriptions: Vec::new(),
            recordings: Vec::new(),
        }
    );
    // Real-time transcription: started with its attributes, stopped by name (or all).
    let Verb::Start { transcriptions, .. } = one(
        r#"<Response><Start><Transcription name="t" statusCallbackUrl="/events" track="both_tracks" partialResults="true" hints="a, b"/></Start></Response>"#,
    ) else {
        panic!()
    };
    let t = &transcriptions[0];
    assert_eq!(t.name.as_deref(), Some("t"));
    assert_eq!(t.status_callback_url.as_deref(), Some("/events"));
    assert_eq!(t.track, TapTracks::Both);
    assert!(t.partial_results);
    assert_eq!(t.language_code, "en-US");
    assert!(parse(r#"<Response><Start><Transcription track="left"/></Start></Response>"#).is_err());
    assert_eq!(
        one(r#"<Response><Stop><Transcription name="t"/><Transcription/></Stop></Response>"#),
        Verb::Stop {
            streams: Vec::new(),
            transcriptions: vec![Some("t".into()), None],
            recordings: Vec::new(),
        }
    );
    assert_eq!(
        one(r#"<Response><Redirect method="GET">/next</Redirect></Response>"#),
        Verb::Redirect {
            url: "/next".into(),
            method: Method::Get
        }
    );
    assert_eq!(
        one("<Response><Reject/></Response>"),
        Verb::Reject {
            busy: false,
            parameters: vec![]
        }
    );
    assert_eq!(
        one(r#"<Response><Reject reason="busy"/></Response>"#),
        Verb::Reject {
            busy: true,
            parameters: vec![]
        }
    );
    let Verb::Record(r) =
        one(r##"<Response><Record maxLength="30" finishOnKey="#" playBeep="false"/></Response>"##)
    else {
        panic!()
    };
    assert_eq!(
        (
            r.max_length_secs,
            r.finish_on_key.as_str(),
            r.play_beep,
            r.timeout_secs
        ),
        (30, "#", false, 5)
    );
    assert!(r.trim_silence);
    assert!(
        matches!(one("<Response><Enqueue waitUrl=\"/wait\">support</Enqueue></Response>"), Verb::Enqueue { queue, .. } if queue == "support")
    );
    assert_eq!(one("<Response><Leave/></Response>"), Verb::Leave);
    let Verb::Gather(g) = one(
        r#"<Response><Gather finishOnKey="" input="speech dtmf" actionOnEmptyResult="true"/></Response>"#,
    ) else {
        panic!()
    };
    assert_eq!(
        (g.finish_on_key, g.input, g.action_on_empty_result),
        (None, GatherInput::DtmfSpeech, true)
    );
    assert!(parse("<Response/>").unwrap().is_empty());
    // Entities in attributes and text, a character reference, CDATA.
    let Verb::Gather(g) = one(r#"<Response><Gather action="/m?a=1&amp;b=2"/></Response>"#) else {
        panic!()
    };
    assert_eq!(g.action.as_deref(), Some("/m?a=1&b=2"));
    assert_eq!(
        one("<Response><Redirect>/next?x=1&amp;y=&#50;</Redirect></Response>"),
        Verb::Redirect {
            url: "/next?x=1&y=2".into(),
            method: Method::Post
        }
    );
    let Verb::Say(s) = one("<Response><Say><![CDATA[1 < 2]]></Say></Response>") else {
        panic!()
    };
    assert_eq!(s.text, "1 < 2");
}

#[test]
fn bad_documents_get_twilio_error_codes() {
    let code = |xml: &str| parse(xml).unwrap_err().code;
    assert_eq!(code("this is not xml <"), 12100);
    assert_eq!(code("<Response><Say>unclosed</Response>"), 12100);
    assert_eq!(code("<Response><Say>a</Say></Response><Response/>"), 12100);
    assert_eq!(code("<Speak>hi</Speak>"), 12200);
    assert_eq!(code("<Response><Dance/></Response>"), 12200);
    assert_eq!(
        code(r#"<Response><Pause length="soon"/></Response>"#),
        12200
    );
    assert_eq!(
        code(r#"<Response><Gather finishOnKey="x"/></Response>"#),
        12200
    );
    assert_eq!(
        code(r#"<Response><Gather><Dial>1</Dial></Gather></Response>"#),
        12200
    );
    assert_eq!(
        code(r#"<Response><Redirect method="PUT">/x</Redirect></Response>"#),
        12200
    );
    assert_eq!(code(r#"<Response><Play/></Response>"#), 12200);
    assert_eq!(code(r#"<Response><Play digits="12x"/></Response>"#), 12200);
    assert_eq!(
        code(r#"<Response><Stream url="wss://x" track="sideways"/></Response>"#),
        12200
    );
    assert_eq!(
        code(r#"<Response><Dial record="maybe">1</Dial></Response>"#),
        12200
    );
}

/// Hostile numbers and shapes are bounded when the document is parsed.
#[test]
fn resource_limits_are_applied_at_parse_time() {
    let Verb::Play(p) = one(r#"<Response><Play loop="4294967295000">a.wav</Play></Response>"#)
    else {
        panic!()
    };
    assert_eq!(p.loops, MAX_LOOPS);
    let Verb::Pause { length_secs } = one(r#"<Response><Pause length="99999999"/></Response>"#)
    else {
        panic!()
    };
    assert_eq!(length_secs, MAX_SECONDS);
    let Verb::Say(say) =
        one(r#"<Response><Say loop="99999999999999999999999999">hi</Say></Response>"#)
    else {
        panic!()
    };
    assert_eq!(say.loops, MAX_LOOPS);
    let Verb::Record(r) = one(r#"<Response><Record maxLength="999999999"/></Response>"#) else {
        panic!()
    };
    assert_eq!(r.max_length_secs, MAX_SECONDS);
    let Verb::Dial(d) =
        one(r#"<Response><Dial timeout="100000" timeLimit="9999999">+1555</Dial></Response>"#)
    else {
        panic!()
    };
    assert_eq!((d.timeout_secs, d.time_limit_secs), (600, 86_400));

    let deep = format!(
        "<Response>{}{}</Response>",
        "<Gather>".repeat(40),
        "</Gather>".repeat(40)
    );
    assert!(parse(&deep).unwrap_err().message.contains("nested"));
    let big = format!("<Response><Say>{}</Say></Response>", "a".repeat(70_000));
    assert!(parse(&big).unwrap_err().message.contains("bytes"));
    let many = format!("<Response>{}</Response>", "<Hangup/>".repeat(5000));
    assert!(parse(&many).unwrap_err().message.contains("elements"));
}

/// `<Connect><ConversationRelay>` as twilio-node's builder writes it: its attributes, its
/// `<Language>`s and `<Parameter>`s, for the relay service to read; a `<Connect>` with neither
/// noun it serves, or a relay without its URL, is refused.
#[test]
fn conversation_relay_keeps_its_attributes_languages_and_parameters() {
    let Verb::Connect {
        action,
        to: ConnectTo::ConversationRelay(relay),
        ..
    } = one(
        r#"<Response><Connect action="/done"><ConversationRelay url="wss://bot/relay" welcomeGreeting="Hi there" interruptible="speech" dtmfDetection="true"><Language code="es-ES" voice="es-ES-Neural2-B"/><Parameter name="customer" value="42"/></ConversationRelay></Connect></Response>"#,
    )
    else {
        panic!()
    };
    assert_eq!(action.as_deref(), Some("/done"));
    let attr = |name: &str| {
        (relay.attributes.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(attr("url"), Some("wss://bot/relay"));
    assert_eq!(attr("welcomeGreeting"), Some("Hi there"));
    assert_eq!(attr("dtmfDetection"), Some("true"));
    assert_eq!(relay.languages.len(), 1);
    assert_eq!(relay.parameters, [("customer".to_owned(), "42".to_owned())]);
    for bad in [
        r#"<Response><Connect><ConversationRelay welcomeGreeting="no url"/></Connect></Response>"#,
        r#"<Response><Connect><Room>r</Room></Connect></Response>"#,
        r#"<Response><Connect/></Response>"#,
        r#"<Response><Connect><ConversationRelay url="wss://x"><Voice/></ConversationRelay></Connect></Response>"#,
    ] {
        assert_eq!(parse(bad).unwrap_err().code, 12200, "{bad}");
    }
}

#[test]
fn start_and_stop_recording() {
    let verbs = parse(
        r#"<Response><Start><Recording name="bg" channels="dual" track="inbound" trim="trim-silence" recordingStatusCallback="/rs" recordingStatusCallbackEvent="in-progress completed"/></Start><Stop><Recording name="bg"/><Recording/></Stop></Response>"#,
    )
    .unwrap();
    let Verb::Start { recordings, .. } = &verbs[0] else {
        panic!("{verbs:?}")
    };
    assert_eq!(
        recordings[0],
        Recording {
            name: Some("bg".into()),
            status_callback: Some("/rs".into()),
            status_callback_method: Method::Post,
            status_callback_event: vec!["in-progress".into(), "completed".into()],
            trim_silence: true,
            track: TapTracks::Inbound,
            dual: true,
        }
    );
    let Verb::Stop { recordings, .. } = &verbs[1] else {
        panic!("{verbs:?}")
    };
    assert_eq!(recordings, &[Some("bg".to_owned()), None]);
    for bad in [
        r#"channels="stereo""#,
        r#"track="sideways""#,
        r#"trim="yes""#,
    ] {
        let doc = format!("<Response><Start><Recording {bad}/></Start></Response>");
        assert_eq!(parse(&doc).unwrap_err().code, 12200, "{bad}");
    }
}

#[test]
fn gather_masks_profanity_unless_told_not_to() {
    let Verb::Gather(g) = one(r#"<Response><Gather input="speech"/></Response>"#) else {
        panic!()
    };
    assert!(g.profanity_filter);
    let Verb::Gather(g) =
        one(r#"<Response><Gather input="speech" profanityFilter="false"/></Response>"#)
    else {
        panic!()
    };
    assert!(!g.profanity_filter);
}

/// `<Dial><Application>` as twilio-python's `dial.application()` writes it, and the
/// `<Parameter>`s an App's `<Hangup>`/`<Reject>` give back.
#[test]
fn an_application_is_dialed_alone_and_hangups_carry_parameters() {
    let sid = format!("AP{}", "ab".repeat(16));
    let Verb::Dial(d) = one(&format!(
        r#"<Response><Dial action="/after"><Application copyParentTo="true" customerId="acme" statusCallback="/s"><ApplicationSid>{sid}</ApplicationSid><Parameter name="ticket" value="9876" /></Application></Dial></Response>"#
    )) else {
        panic!("a dial");
    };
    match &d.nouns[..] {
        [
            DialNoun::Application {
                sid: s,
                parameters,
                customer_id,
                copy_parent_to,
                callbacks,
            },
        ] => {
            assert_eq!(s, &sid);
            assert_eq!(parameters, &[("ticket".to_owned(), "9876".to_owned())]);
            assert_eq!(customer_id.as_deref(), Some("acme"));
            assert!(copy_parent_to);
            assert_eq!(callbacks.status_callback.as_deref(), Some("/s"));
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        // Not an App's SID, or none.
        "<Response><Dial><Application><ApplicationSid>CA1</ApplicationSid></Application></Dial></Response>".to_owned(),
        "<Response><Dial><Application/></Dial></Response>".to_owned(),
        // Rung beside another noun.
        format!("<Response><Dial><Number>+15551234</Number><Application><ApplicationSid>{sid}</ApplicationSid></Application></Dial></Response>"),
        format!(r#"<Response><Dial><Application customerId="{}"><ApplicationSid>{sid}</ApplicationSid></Application></Dial></Response>"#, "c".repeat(257)),
    ] {
        assert!(parse(&bad).is_err(), "{bad}");
    }
    assert_eq!(
        one(r#"<Response><Hangup><Parameter name="paid" value="yes"/></Hangup></Response>"#),
        Verb::Hangup {
            parameters: vec![("paid".into(), "yes".into())]
        }
    );
    assert_eq!(
        one(
            r#"<Response><Reject reason="busy"><Parameter name="why" value="closed"/></Reject></Response>"#
        ),
        Verb::Reject {
            busy: true,
            parameters: vec![("why".into(), "closed".into())]
        }
    );
}
