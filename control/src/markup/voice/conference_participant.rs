//! A participant an application adds to a conference through a REST API (Twilio's
//! `Conferences/{CF}/Participants.json` create, TeXML's the same): a call placed to `To` that,
//! once answered, runs the `<Dial><Conference>` the join's options make, so the room's rules,
//! beeps, callbacks, recording and coaching apply to it as to any participant. Both dialects
//! name the options alike (PascalCase); each reads its own URLs, ids and errors and hands the
//! rest here.

/// How the new participant joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    pub muted: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    /// `true`, `false`, `onEnter` or `onExit`.
    pub beep: String,
    pub wait_url: Option<String>,
    pub status_callback: Option<String>,
    /// `ConferenceStatusCallbackMethod`, when given (`GET` or `POST`).
    pub status_callback_method: Option<&'static str>,
    /// `ConferenceStatusCallbackEvent`'s events.
    pub status_events: Vec<String>,
    pub label: Option<String>,
    /// The call (its stored SID) the participant coaches.
    pub coach: Option<String>,
    /// `ConferenceRecord`: the room recorded from its start.
    pub record_from_start: bool,
}

/// A parameter that is not what it should be: its name, and why.
pub type BadParam = (&'static str, String);

impl JoinOptions {
    /// The participant `call` (just placed, joined at `now_ms`) as the create's answer shows
    /// it, before it has reached the room.
    pub fn snapshot(&self, call: String, now_ms: i64) -> crate::call::ParticipantSnapshot {
        crate::call::ParticipantSnapshot {
            call,
            muted: self.muted,
            held: false,
            start_on_enter: self.start_on_enter,
            end_on_exit: self.end_on_exit,
            joined_at: now_ms,
            coaching: self.coach.clone(),
        }
    }

    /// The flags, the beep and the label from `get` (a parameter's value, if given); the
    /// URLs, events and coached call the dialect read.
    pub fn read(
        get: impl Fn(&str) -> Option<String>,
        wait_url: Option<String>,
        status_callback: Option<String>,
        status_events: Vec<String>,
        coach: Option<String>,
    ) -> Result<Self, BadParam> {
        let flag = |name: &'static str, default: bool| match get(name).as_deref() {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err((name, format!("Invalid {name}: {v}"))),
        };
        let beep = match get("Beep").as_deref() {
            None | Some("") => "true".to_owned(),
            Some(b @ ("true" | "false" | "onEnter" | "onExit")) => b.to_owned(),
            Some(b) => return Err(("Beep", format!("Invalid Beep: {b}"))),
        };
        let status_callback_method = match get("ConferenceStatusCallbackMethod").as_deref() {
            None | Some("") => None,
            Some(m) if m.eq_ignore_ascii_case("GET") => Some("GET"),
            Some(m) if m.eq_ignore_ascii_case("POST") => Some("POST"),
            Some(m) => {
                return Err((
                    "ConferenceStatusCallbackMethod",
                    format!("Invalid ConferenceStatusCallbackMethod: {m}"),
                ));
            }
        };
        let record_from_start = match get("ConferenceRecord").as_deref() {
            None | Some("" | "false" | "do-not-record") => false,
            Some("true" | "record-from-start") => true,
            Some(r) => {
                return Err(("ConferenceRecord", format!("Invalid ConferenceRecord: {r}")));
            }
        };
        Ok(Self {
            muted: flag("Muted", false)?,
            start_on_enter: flag("StartConferenceOnEnter", true)?,
            end_on_exit: flag("EndConferenceOnExit", false)?,
            beep,
            wait_url,
            status_callback,
            status_callback_method,
            status_events,
            label: get("Label").filter(|l| !l.is_empty()),
            coach,
            record_from_start,
        })
    }

    /// The document the participant's call runs once answered: it joins `room`.
    pub fn document(&self, room: &str) -> String {
        let mut attrs = vec![
            ("muted", self.muted.to_string()),
            ("startConferenceOnEnter", self.start_on_enter.to_string()),
            ("endConferenceOnExit", self.end_on_exit.to_string()),
            ("beep", self.beep.clone()),
        ];
        let optional = [
            ("waitUrl", self.wait_url.clone()),
            ("statusCallback", self.status_callback.clone()),
            (
                "statusCallbackMethod",
                self.status_callback_method.map(str::to_owned),
            ),
            (
                "statusCallbackEvent",
                Some(self.status_events.join(" ")).filter(|e| !e.is_empty()),
            ),
            ("participantLabel", self.label.clone()),
            ("coach", self.coach.clone()),
            (
                "record",
                self.record_from_start
                    .then(|| "record-from-start".to_owned()),
            ),
        ];
        attrs.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
        let attrs: String = (attrs.iter())
            .map(|(k, v)| format!(" {k}=\"{}\"", quick_xml::escape::escape(v.as_str())))
            .collect();
        format!(
            "<Response><Dial><Conference{attrs}>{}</Conference></Dial></Response>",
            quick_xml::escape::escape(room)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_options_become_the_join_document_and_bad_values_are_named() {
        let o = JoinOptions::read(
            from(&[
                ("Muted", "true"),
                ("Beep", "onExit"),
                ("Label", "a<b"),
                ("ConferenceStatusCallbackMethod", "get"),
            ]),
            Some("http://app/wait?x=1&y=2".into()),
            Some("http://app/events".into()),
            vec!["join".into(), "leave".into()],
            Some("CA1".into()),
        )
        .unwrap();
        assert_eq!(
            o.document("sales & support"),
            "<Response><Dial><Conference muted=\"true\" startConferenceOnEnter=\"true\" \
             endConferenceOnExit=\"false\" beep=\"onExit\" waitUrl=\"http://app/wait?x=1&amp;y=2\" \
             statusCallback=\"http://app/events\" statusCallbackMethod=\"GET\" \
             statusCallbackEvent=\"join leave\" participantLabel=\"a&lt;b\" coach=\"CA1\">\
             sales &amp; support</Conference></Dial></Response>"
        );
        for (name, value) in [
            ("Muted", "yes"),
            ("Beep", "loud"),
            ("ConferenceRecord", "sometimes"),
            ("EndConferenceOnExit", "1"),
            ("ConferenceStatusCallbackMethod", "PUT"),
        ] {
            let bad = JoinOptions::read(from(&[(name, value)]), None, None, Vec::new(), None);
            assert_eq!(bad.unwrap_err().0, name);
        }
    }
}
