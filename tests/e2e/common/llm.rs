//! A stand-in for an LLM vendor, so that a voice-AI app built on the vendor's official SDK runs
//! unchanged in a test with only its base URL pointed here (`OPENAI_BASE_URL`): OpenAI's
//! `POST /v1/chat/completions` with `stream: true`, answered as server-sent events of
//! `chat.completion.chunk`s — canned tokens a few milliseconds apart, as a model streams them,
//! or a function call streamed in fragments. Which answer comes is chosen by the newest
//! message's words, so an app's retries or extra turns cannot shift a script out of step.
//! Every request is kept: it is the conversation as the app holds it (the caller's prompts,
//! what the app says the caller heard of the agent), which is what a test checks of the app.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the model answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text, in these tokens.
    Text(Vec<&'static str>),
    /// A call of the app's function `name` with these JSON arguments.
    Call {
        name: &'static str,
        arguments: Value,
    },
}

/// Answers `reply` when the newest message of a request contains `when` (lower case).
#[derive(Debug, Clone)]
pub struct Rule {
    pub when: &'static str,
    pub reply: Reply,
}

/// The stand-in, serving on `base` (the SDK's base URL: `…/v1`).
pub struct Llm {
    pub base: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

#[derive(Clone)]
struct Script {
    rules: Arc<Vec<Rule>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// Between two chunks of a stream: a small model's pace (about 40 tokens a second).
const TOKEN_GAP: Duration = Duration::from_millis(25);
/// What the model says when no rule matches (a test that gets it sees what was asked).
const NOT_SCRIPTED: &str = "I am sorry, I did not understand that.";

impl Llm {
    /// Serves the script on `ip` (any free port).
    pub async fn serve(ip: &str, rules: Vec<Rule>) -> Llm {
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let script = Script {
            rules: Arc::new(rules),
            requests: Arc::default(),
        };
        let requests = script.requests.clone();
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(script);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Llm { base, requests }
    }

    /// The requests so far (their JSON bodies), once there are at least `n` (panics after
    /// `wait`).
    pub fn requests(&self, n: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let requests = self.requests.lock().unwrap().clone();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests to the model: {requests:#?}",
                requests.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The text of a message (`content` as a string, or as parts of type text).
pub fn content(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

async fn completions(State(script): State<Script>, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let newest = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(content)
        .unwrap_or_default()
        .to_lowercase();
    script.requests.lock().unwrap().push(request.clone());
    let reply = (script.rules.iter())
        .find(|r| newest.contains(r.when))
        .map_or(Reply::Text(vec![NOT_SCRIPTED]), |r| r.reply.clone());
    let model = request["model"]
        .as_str()
        .unwrap_or("gpt-4o-mini")
        .to_owned();
    let chunk = move |delta: Value, finish: Option<&str>| {
        let c = json!({
            "id": "chatcmpl-switchboard-stand-in",
            "object": "chat.completion.chunk",
            "created": 1_764_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    match reply {
        Reply::Text(tokens) => {
            events.extend(tokens.iter().map(|t| chunk(json!({"content": t}), None)));
            events.push(chunk(json!({}), Some("stop")));
        }
        Reply::Call { name, arguments } => {
            let call = |function: Value, first: bool| {
                let mut c = json!({"index": 0, "function": function});
                if first {
                    c["id"] = json!("call_stand_in_1");
                    c["type"] = json!("function");
                }
                json!({"tool_calls": [c]})
            };
            events.push(chunk(
                call(json!({"name": name, "arguments": ""}), true),
                None,
            ));
            // The arguments arrive in fragments, as a model streams them.
            let arguments = arguments.to_string();
            let cut = arguments.len() / 2;
            let cut = (cut..arguments.len())
                .find(|&i| arguments.is_char_boundary(i))
                .unwrap_or(cut);
            for part in [&arguments[..cut], &arguments[cut..]] {
                events.push(chunk(call(json!({"arguments": part}), false), None));
            }
            events.push(chunk(json!({}), Some("tool_calls")));
        }
    }
    events.push("data: [DONE]\n\n".to_owned());
    let stream = futures_util::stream::unfold(events.into_iter(), |mut events| async move {
        let event = events.next()?;
        tokio::time::sleep(TOKEN_GAP).await;
        Some((Ok::<_, std::convert::Infallible>(event), events))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}
