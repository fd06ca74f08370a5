//! The log: text or JSON lines on standard error, every line about a call in the call's span
//! (its id and account), without the credentials of any URL in it, at a level the operator
//! changes at run time through the admin API.

use crate::config::LogSection;
use std::sync::Arc;
use switchboard_control::providers::admin::LogLevel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

/// A filter from its directives; an error names what is wrong.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .with_regex(false)
        .parse(level)
        .map_err(|e| format!("{e} in {level:?}"))
}

/// Starts the log as `section` says (RUST_LOG, when set, in place of its level) and gives the
/// admin API its level to read and change.
pub fn init(section: &LogSection) -> Result<LogLevel, String> {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| section.level.clone());
    let (layer, handle) = reload::Layer::new(filter(&level)?);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = || Redacting(std::io::stderr());
    let lines: Box<dyn Layer<_> + Send + Sync> = match section.format.as_str() {
        "json" => Box::new(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(writer),
        ),
        _ => Box::new(fmt::layer().with_ansi(ansi).with_writer(writer)),
    };
    Registry::default()
        .with(layer)
        .with(lines)
        .try_init()
        .map_err(|e| format!("cannot start the log: {e}"))?;
    let current = std::sync::Mutex::new(level);
    Ok(Arc::new(move |new: Option<&str>| {
        let mut current = current.lock().expect("not poisoned");
        if let Some(new) = new {
            let parsed = filter(new)?;
            handle
                .reload(parsed)
                .map_err(|e| format!("cannot change the level: {e}"))?;
            tracing::info!(level = new, "log level changed");
            *current = new.to_owned();
        }
        Ok(current.clone())
    }))
}

/// The log's writer: every line leaves without the credentials of any URL in it, whichever
/// code logged the URL (the formatter hands over one whole event per write).
struct Redacting<W>(W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        match switchboard_control::infra::secret::redact_urls_in(&text) {
            std::borrow::Cow::Borrowed(_) => self.0.write_all(buf)?,
            std::borrow::Cow::Owned(clean) => self.0.write_all(clean.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
