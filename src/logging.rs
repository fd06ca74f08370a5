//! The log: text or JSON lines on standard error, every line about a call in the call's span
//! (its id and account), without the credentials of any URL in it, at a level the operator
//! changes at run time through the admin API.

use crate::config::LogSection;
use std::sync::Arc;
use switchboard_control::operator::admin::LogLevel;
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
    let writer = move || Redacting {
        out: std::io::stderr(),
        ansi,
    };
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
/// code logged the URL, and as one line: a control character in a field (a newline in a
/// header, a call id or a URL a client sent) is escaped, so no client can forge a line of its
/// own. The formatter hands over one whole event per write, ending in its one newline.
struct Redacting<W> {
    out: W,
    /// The formatter colours with escape sequences (a terminal): those stay.
    ansi: bool,
}

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let text = switchboard_control::infra::secret::redact_urls_in(&text);
        let text = one_line(&text, self.ansi);
        self.out.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `event` with every control character escaped (`\n`, `\r`, `\t`, `\u{…}`) but its final
/// newline, and ESC where the formatter colours (`ansi`).
fn one_line(event: &str, ansi: bool) -> std::borrow::Cow<'_, str> {
    let body = event.strip_suffix('\n').unwrap_or(event);
    let kept = |c: char| !c.is_control() || (ansi && c == '\u{1b}');
    if body.chars().all(kept) {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut out = String::with_capacity(event.len() + 16);
    for c in body.chars() {
        match c {
            c if kept(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    if body.len() < event.len() {
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A field a client sent cannot start a line of its own: its newline, carriage return
    /// and other control characters are escaped, the event's own newline is kept.
    #[test]
    fn a_logged_field_cannot_forge_a_line() {
        let mut out = Redacting {
            out: Vec::new(),
            ansi: false,
        };
        let event = "INFO browser call report call=x\nERROR forged admin login\r\u{7}\u{1b}[2J\n";
        out.write_all(event.as_bytes()).unwrap();
        let written = String::from_utf8(out.out).unwrap();
        assert_eq!(
            written,
            "INFO browser call report call=x\\nERROR forged admin login\\r\\u{7}\\u{1b}[2J\n"
        );
        assert_eq!(written.lines().count(), 1);
        // Colours on a terminal stay; a clean line is written as it is.
        assert_eq!(
            one_line("\u{1b}[32mINFO\u{1b}[0m ok\n", true),
            "\u{1b}[32mINFO\u{1b}[0m ok\n"
        );
        assert!(matches!(
            one_line("plain\n", false),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
