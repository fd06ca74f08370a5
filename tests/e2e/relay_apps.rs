//! Voice-AI apps on ConversationRelay, run as their developers run them: a process of their
//! own on the providers' official SDKs and an LLM vendor's (tests/compat/twilio_relay_app.js,
//! tests/compat/telnyx_relay_app.py), configured only with Switchboard's base URL and
//! credentials; their model is a local stand-in streaming canned tokens ([`common::llm`]). The
//! caller is a phone on a SIPp leg speaking recorded (Piper) phrases. What is checked is what
//! each side got: the app's prompts (as it printed them, and as it passed them to its model),
//! what the caller heard (recognised back), the caller's barge-in (the agent's audio stops, and
//! the app's model is told what the caller heard), a digit, and the app's `end` as the
//! provider reports it.

use crate::common;
use crate::conversation_relay::{
    ANSWER, ASKED, LONG, TURN_END, WAIT, hear_from, hear_start, hear_turn, say,
};
use common::hearing::recognise;
use common::llm::{Llm, Reply, Rule, content};
use common::rig::drain;
use common::sdk_app::{Printout, expect_step, spawn_node_app, spawn_python_app, telnyx};
use common::voice_app::*;
use common::voices::{assert_heard, piper, words};
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const HOURS: &str = "what are your opening hours on weekdays";
/// Long enough that the agent's silence after the cut is heard before the caller has finished
/// (the app answers as soon as they have).
const PERSON: &str = "please stop for a moment and let me talk to a real person instead";
const OFFER: [&str; 3] = [
    "I can put you through",
    " to a librarian.",
    " Press one to confirm.",
];

/// The model's script for the library's assistant: an answer to a renewal, the long list of
/// opening hours, a librarian offered to a caller who wants a person, the transfer once they
/// press one, and the call's end with a summary when the caller says goodbye.
fn library_model() -> Vec<Rule> {
    let long: Vec<&'static str> = LONG.split_inclusive(". ").collect();
    vec![
        Rule {
            when: "renew",
            reply: Reply::Text(ANSWER.to_vec()),
        },
        Rule {
            when: "hours",
            reply: Reply::Text(long),
        },
        Rule {
            when: "person",
            reply: Reply::Text(OFFER.to_vec()),
        },
        Rule {
            when: "goodbye",
            reply: Reply::Call {
                name: "end_call",
                arguments: json!({"summary": "renewed three books"}),
            },
        },
        Rule {
            when: "pressed 1",
            reply: Reply::Call {
                name: "transfer_to_librarian",
                arguments: json!({"reason": "the caller asked for a person"}),
            },
        },
    ]
}

/// The messages the app got from the relay, of `kind`, once there are `n`.
fn relayed(app: &Printout, kind: &str, n: usize) -> Vec<Value> {
    app.matching(n, WAIT, kind, |v| v["relay"]["type"] == kind)
        .into_iter()
        .map(|v| v["relay"].clone())
        .collect()
}

/// The model's request whose newest message contains `words`, and the request's messages.
fn asked_model(llm: &Llm, words: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let requests = llm.requests(0, WAIT);
        let found = requests.iter().find(|r| {
            (r["messages"].as_array())
                .and_then(|m| m.last())
                .is_some_and(|m| content(m).to_lowercase().contains(words))
        });
        if let Some(r) = found {
            return r["messages"].as_array().unwrap().clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app never asked its model about {words:?}: {requests:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The conversation's opening: the caller hears `greeting`, asks to renew their books, the app
/// gets the words (as its prompt, and passes them to its model) and the caller hears the
/// model's streamed answer. Where the agent's audio comes from, and the phone's RTP sequence
/// number for now (its clock runs from the greeting, as a phone's that sent nothing while quiet).
fn first_turn(
    rt: &tokio::runtime::Runtime,
    phone: &std::net::UdpSocket,
    app: &Printout,
    llm: &Llm,
    greeting: &str,
) -> (std::net::SocketAddr, impl Fn() -> u16 + use<>) {
    let (heard, from) = hear_from(phone, TURN_END, WAIT);
    assert_heard(&recognise(rt, &heard), greeting);
    let from = from.expect("the greeting came from Switchboard");
    let clock = std::time::Instant::now();
    let seq_now = move || 100 + (clock.elapsed().as_millis() / 20) as u16;
    say(phone, from, &piper(ASKED), seq_now());
    let prompt = relayed(app, "prompt", 1).remove(0);
    let asked = prompt["voicePrompt"].as_str().unwrap();
    assert_heard(asked, ASKED);
    let history = asked_model(llm, "renew");
    assert_eq!(content(history.last().unwrap()), asked);
    let answer = hear_turn(phone, TURN_END, WAIT);
    assert_heard(&recognise(rt, &answer), &ANSWER.concat());
    (from, seq_now)
}

/// A Twilio ConversationRelay app on twilio-node, ws and openai-node: the TwiML it serves is
/// run, every request and the socket's upgrade pass its signature check, the caller's words are
/// its prompts and its model's streamed answer is what the caller hears; a caller who talks over
/// the long answer stops the agent, and the app's model is told only what the caller heard; a
/// digit reaches the app, whose model transfers the call: the `end`'s handoff comes to the
/// `<Connect action>`, whose TwiML the caller hears before the call ends.
#[test]
fn a_twilio_relay_app_on_the_official_sdks_converses_is_interrupted_and_hands_off() {
    const NUMBER: &str = "+17775550960";
    const GREETING: &str = "Hello, this is the county library. How can I help you today?";
    const GOODBYE: &str = "Connecting you to a librarian. Please hold the line.";
    let Some(modules) = compat_env("SWITCHBOARD_TWILIO_NODE_PATH") else {
        return;
    };
    let net = Arc::new(Net::new(210));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let llm = rt.block_on(Llm::serve(&net.ip(8), library_model()));
    let listen = format!("{}:18080", net.ip(6));
    let base = format!("http://{listen}");
    let config = net.two_trunks(&numbers_config(
        &base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start_with_speech(&net, &config);
    let (mut child, mut lines) = spawn_node_app(
        &modules,
        "twilio_relay_app.js",
        &server,
        &[TOKEN, &listen],
        &[
            ("OPENAI_BASE_URL", &llm.base),
            ("OPENAI_API_KEY", "sk-stand-in"),
        ],
    );
    expect_step(&mut child, &mut lines, "READY", &server);
    let app = Printout::follow(child, lines);
    let (phone, caller) = call_with_phone_for(&net, &server, NUMBER, Duration::from_secs(120));

    // The app's TwiML opened the session: its signature checks passed, and `setup` came.
    let setup = relayed(&app, "setup", 1).remove(0);
    let voice = app.matching(1, WAIT, "/voice", |v| v["request"] == "/voice");
    let call = voice[0]["params"]["CallSid"].as_str().unwrap().to_owned();
    assert_eq!(setup["callSid"], call.as_str(), "{setup}");
    assert_eq!(setup["customParameters"], json!({"card": "0042"}));
    assert_eq!(setup["to"], NUMBER);
    // The greeting; the caller asks, the app gets the words and asks its model, whose
    // streamed answer the caller hears.
    let (from, seq_now) = first_turn(&rt, &phone, &app, &llm, GREETING);

    // The long answer; the caller talks over it: the agent stops, and the app rewrites its
    // history to what the caller heard, which is what its model is told next.
    say(&phone, from, &piper(HOURS), seq_now());
    let started = hear_start(&phone, Duration::from_millis(1500));
    assert!(started.len() >= 12000, "the long answer was not playing");
    let cut_in = piper(PERSON);
    let sending = std::thread::spawn({
        let (phone, seq) = (phone.try_clone().unwrap(), seq_now());
        move || say(&phone, from, &cut_in, seq)
    });
    let interrupt = relayed(&app, "interrupt", 1).remove(0);
    let heard = interrupt["utteranceUntilInterrupt"].as_str().unwrap();
    let (heard_words, long_words) = (words(heard), words(LONG));
    assert!(
        !heard_words.is_empty()
            && heard_words.len() < long_words.len()
            && long_words.starts_with(&heard_words),
        "{interrupt}"
    );
    // What the phone was sent until then is dropped; for the next second, while the caller
    // still speaks, the agent is silent.
    drain(&phone);
    let after = hear_turn(&phone, Duration::from_millis(500), Duration::from_secs(1));
    assert!(
        after.len() < 8000 / 2,
        "{} samples of agent audio after the interrupt",
        after.len()
    );
    sending.join().unwrap();
    let history = asked_model(&llm, "person");
    let agent = &history[history.len() - 2];
    assert_eq!(
        (agent["role"].as_str(), content(agent)),
        (Some("assistant"), heard.to_owned()),
        "{history:#?}"
    );
    let offer = hear_turn(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &offer), &OFFER.concat());

    // The caller presses one: the app's model transfers the call, the app ends the session
    // with its handoff, and the action's TwiML is what the caller hears last.
    let mut seq = seq_now();
    let ts = u32::from(seq) * 160;
    send_rfc4733(&phone, from, 1, &mut seq, ts);
    assert_eq!(relayed(&app, "dtmf", 1)[0]["digit"], "1");
    let handoff = app.matching(1, WAIT, "/handoff", |v| v["request"] == "/handoff");
    let params = &handoff[0]["params"];
    assert_eq!(params["CallSid"], call.as_str(), "{params}");
    assert_eq!(params["SessionId"], setup["sessionId"]);
    assert_eq!(params["SessionStatus"], "ended");
    let data: Value = serde_json::from_str(params["HandoffData"].as_str().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"reasonCode": "live-agent-handoff", "reason": "the caller asked for a person",
            "callSid": call})
    );
    let goodbye = hear_turn(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &goodbye), GOODBYE);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    // Every request Switchboard made passed the app's signature check, the upgrade's too,
    // and the app saw no error.
    let requests = app.with("request");
    assert!(requests.len() >= 2 && requests.iter().all(|r| r["verified"] == true));
    assert_eq!(
        app.with("upgrade"),
        [json!({"upgrade": {"verified": true}})]
    );
    assert_eq!(app.with("error"), [] as [Value; 0]);
}

/// A Telnyx app on Call Control and ConversationRelay, on the telnyx and openai Python SDKs:
/// it answers the call from its (verified) webhook, starts the session with
/// `start_conversation_relay` once answered, hears the caller and answers through its model; the
/// caller says goodbye, the model ends the call with a summary: the app's `end` comes back as
/// `call.conversation.ended` with the summary as `handoff_data`, and the app hangs up.
#[test]
fn a_telnyx_relay_app_on_the_official_sdks_answers_converses_and_ends_the_call() {
    const NUMBER: &str = "+15557770480";
    const GREETING: &str =
        "Hello, you have reached the county library information desk. How can I help?";
    const DONE: &str = "thank you that is all for today goodbye";
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Arc::new(Net::new(211));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let llm = rt.block_on(Llm::serve(&net.ip(8), library_model()));
    let hooks = format!("{}:18080", net.ip(6));
    let relay = format!("{}:18081", net.ip(6));
    let config = telnyx::config(&hooks, "", &[NUMBER]);
    let server = Server::start_with_speech(&net, &net.two_trunks(&config));
    let (mut child, mut lines) = spawn_python_app(
        &python,
        "telnyx_relay_app.py",
        &server,
        &[telnyx::KEY, telnyx::PUBLIC_KEY, &hooks, &relay],
        &[("OPENAI_BASE_URL", &llm.base)],
    );
    expect_step(&mut child, &mut lines, "READY", &server);
    let app = Printout::follow(child, lines);
    let (phone, caller) = call_with_phone_for(&net, &server, NUMBER, Duration::from_secs(90));

    let webhook = |event: &str| {
        app.matching(1, WAIT, event, |v| v["webhook"] == event)
            .remove(0)
    };
    let initiated = webhook("call.initiated");
    let id = initiated["payload"]["call_control_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let setup = relayed(&app, "setup", 1).remove(0);
    assert_eq!(setup["callControlId"], id.as_str(), "{setup}");
    assert_eq!(setup["customParameters"], json!({"member_id": "M-1001"}));
    let started = app.matching(1, WAIT, "the session's start", |v| {
        v["command"] == "conversation_relay_start"
    });
    let session = started[0]["result"]["data"]["conversation_relay_id"].clone();
    assert_eq!(setup["sessionId"], session, "{started:?}");
    // The greeting; the caller asks, the app gets the words and asks its model, whose
    // streamed answer the caller hears.
    let (from, seq_now) = first_turn(&rt, &phone, &app, &llm, GREETING);

    // The caller is done: the model ends the call, and the app's `end` is Telnyx's webhook.
    say(&phone, from, &piper(DONE), seq_now());
    let ended = webhook("call.conversation.ended");
    let payload = &ended["payload"];
    assert_eq!(payload["call_control_id"], id.as_str(), "{ended}");
    assert_eq!(payload["conversation_relay_id"], session);
    assert_eq!(payload["reason"], "end");
    let handoff: Value = serde_json::from_str(payload["handoff_data"].as_str().unwrap()).unwrap();
    assert_eq!(handoff, json!({"summary": "renewed three books"}));
    webhook("call.hangup");
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    // Every webhook (initiated, answered, the session's end, the hang-up at least) passed
    // the SDK's signature check, and the app saw no error.
    let hooks = app.with("webhook");
    assert!(
        hooks.len() >= 4 && hooks.iter().all(|h| h["verified"] == true),
        "{hooks:#?}"
    );
    assert_eq!(app.with("error"), [] as [Value; 0]);
}
