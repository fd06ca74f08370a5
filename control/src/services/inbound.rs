//! Who answers a number's incoming calls. The call core offers a call to a number's
//! controller; this stage finds the number's owner and the application it names — a Telnyx
//! Call Control application (a connection) first, else a voice URL — takes the call's events
//! over, sets its account, and hands it to the dialect that runs that kind of application.
//! A number nobody answers any more (released while its call was on the way) is refused.
//! The calls a login of a credential connection with a webhook URL places (a phone's, a
//! browser's) go the same way to that connection, whatever they dial. A number naming a
//! Twilio App (`AP…`, its `VoiceApplicationSid`) is answered by the App's voice settings.
//! Dialects hold no dispatch of their own: they register what they answer.

use crate::call::{CallCommand, CallControl, CallEvent, EventKind, Rejection};
use crate::infra::accounts::{Account, ConnectionKind, Directory, Number};
use crate::infra::store::ConnectionRow;
use crate::services::directory::connections::Connections;
use crate::services::directory::phone_numbers::PhoneNumbers;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// The kind of application a number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Application {
    /// A Telnyx connection (`connection_id`): a Call Control application (events, and
    /// commands back) or a TeXML application (its markup, run by the Telnyx dialect's
    /// hand-over to the interpreter).
    CallControl,
    /// A voice URL: markup (TwiML, LaML) fetched and run.
    Markup,
}

impl Application {
    /// What answers `number`, if anything does (a connection wins over a voice URL).
    pub fn of(number: &Number) -> Option<Self> {
        if number.connection_id.is_some() {
            Some(Self::CallControl)
        } else if number.voice_url.is_some() {
            Some(Self::Markup)
        } else {
            None
        }
    }
}

/// An incoming call handed to its application: its events from now on arrive on `events`.
pub struct Offered {
    pub account: Account,
    pub number: Number,
    /// The core's `Incoming` event (the call's first, with its id and time).
    pub event: CallEvent,
    pub from: String,
    pub to: String,
    pub events: mpsc::Receiver<CallEvent>,
    /// The Twilio App (`AP…`) a browser client's call runs, when it is one.
    pub application_sid: Option<String>,
    /// The Twilio App (`AP…`) the number names, whose voice settings answer it.
    pub number_app: Option<String>,
}

/// The application that answers a login's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerApp {
    pub account: String,
    /// The connection (Telnyx) or App (Twilio, `AP…`).
    pub connection_id: String,
    /// A Twilio App's voice settings: its calls run its TwiML.
    pub twiml: Option<crate::infra::accounts::TexmlVoice>,
    /// How its voice fallback URL is fetched (`VoiceFallbackMethod`).
    pub fallback_method: crate::infra::accounts::HttpMethod,
}

impl CallerApp {
    /// A Twilio App's (`AP…`) voice settings, as its calls run them.
    pub fn of_twiml_app(row: &ConnectionRow) -> Option<Self> {
        let c = &row.connection;
        (c.kind() == ConnectionKind::TwimlApp).then(|| Self {
            account: c.account_sid.clone(),
            connection_id: c.id.clone(),
            twiml: c.texml.clone(),
            // Kept with the App's other settings (`VoiceFallbackMethod`).
            fallback_method: (c.settings.get("VoiceFallbackMethod"))
                .and_then(|m| m.as_str())
                .and_then(crate::infra::accounts::HttpMethod::parse)
                .unwrap_or_default(),
        })
    }

    /// `number` answered by this application: its connection, or its App's voice settings.
    /// Returns the App's SID when it is a Twilio App.
    fn answers(self, number: &mut Number) -> Option<String> {
        let Some(voice) = self.twiml else {
            number.connection_id = Some(self.connection_id);
            return None;
        };
        number.connection_id = None;
        number.voice_url = Some(voice.voice_url);
        number.voice_method = voice.voice_method;
        number.voice_fallback_url = voice.voice_fallback_url;
        number.voice_fallback_method = self.fallback_method;
        number.status_callback = voice.status_callback;
        number.status_callback_method = voice.status_callback_method;
        Some(self.connection_id)
    }
}

/// A dialect that runs one kind of application.
pub trait Answer: Send + Sync {
    /// Runs the call's application; must not block (spawn what takes time).
    fn take(self: Arc<Self>, call: Offered);
}

pub struct Inbound {
    control: CallControl,
    numbers: Arc<PhoneNumbers>,
    directory: Arc<Directory>,
    /// Where the core offers the numbers' calls.
    offers: mpsc::Sender<CallEvent>,
    offers_rx: Mutex<Option<mpsc::Receiver<CallEvent>>>,
    answerers: RwLock<HashMap<Application, Arc<dyn Answer>>>,
    /// Logins whose calls an application answers, by user.
    callers: Mutex<HashMap<String, CallerApp>>,
    /// Numbers given to tenants' SIP trunks: their calls go where the trunk's routes send
    /// them, whatever application the number names.
    trunked: Mutex<std::collections::HashSet<String>>,
    /// The applications numbers name (Twilio Apps among them), once the store has them.
    connections: std::sync::OnceLock<Arc<Connections>>,
}

impl Inbound {
    pub fn new(
        control: CallControl,
        numbers: Arc<PhoneNumbers>,
        directory: Arc<Directory>,
    ) -> Arc<Self> {
        let (offers, offers_rx) = mpsc::channel(256);
        Arc::new(Self {
            control,
            numbers,
            directory,
            offers,
            offers_rx: Mutex::new(Some(offers_rx)),
            answerers: RwLock::default(),
            callers: Mutex::default(),
            trunked: Mutex::default(),
            connections: std::sync::OnceLock::new(),
        })
    }

    /// Where the Twilio Apps numbers name are found (made after this stage).
    pub fn set_connections(&self, connections: Arc<Connections>) {
        let _ = self.connections.set(connections);
    }

    /// The accounts' numbers.
    pub fn numbers(&self) -> &Arc<PhoneNumbers> {
        &self.numbers
    }

    /// Makes `answerer` the one for numbers naming an `application`.
    pub fn register(&self, application: Application, answerer: Arc<dyn Answer>) {
        self.answerers
            .write()
            .expect("not poisoned")
            .insert(application, answerer);
    }

    /// Takes (or gives back to the routes) the incoming calls of a number, as it now names an
    /// application or not.
    pub fn number_changed(&self, number: &Number) {
        let trunked = (self.trunked.lock().expect("not poisoned")).contains(&number.phone_number);
        if Application::of(number).is_some() && !trunked {
            self.control
                .control_number(&number.phone_number, self.offers.clone());
        } else {
            self.control.release_number(&number.phone_number);
        }
    }

    /// Reads the numbers again (another node changed some) and takes or gives back their
    /// calls as each new, changed or released number now says — before the new rows are
    /// seen, so that a call to a number this node shows is one the core gives its
    /// application.
    pub async fn reload_numbers(&self) -> Result<(), crate::infra::store::StoreError> {
        let before = self.numbers.all();
        let after = self.numbers.stored().await?;
        let number = |rows: &[crate::infra::store::PhoneNumberRow], phone: &str| {
            (rows.iter())
                .find(|r| r.number.phone_number == phone)
                .map(|r| r.number.clone())
        };
        for row in &after {
            if number(&before, &row.number.phone_number).as_ref() != Some(&row.number) {
                self.number_changed(&row.number);
            }
        }
        for row in &before {
            if number(&after, &row.number.phone_number).is_none() {
                self.control.release_number(&row.number.phone_number);
            }
        }
        self.numbers.replace(after);
        Ok(())
    }

    /// The numbers given to trunks from now on: their calls are given back to the routes
    /// (the trunks' own); a number no longer a trunk's is taken again when it names an
    /// application.
    pub fn set_trunked(&self, numbers: std::collections::HashSet<String>) {
        let before = std::mem::replace(
            &mut *self.trunked.lock().expect("not poisoned"),
            numbers.clone(),
        );
        for number in numbers.difference(&before) {
            self.control.release_number(number);
        }
        for number in before.difference(&numbers) {
            if let Some(row) = self.numbers.by_number(number) {
                self.number_changed(&row.number);
            }
        }
    }

    /// The logins (by user) whose calls, whatever they dial, go to an application from now
    /// on; the others' go back to the routes.
    pub fn set_callers(&self, callers: HashMap<String, CallerApp>) {
        let mut current = self.callers.lock().expect("not poisoned");
        for user in current.keys().filter(|u| !callers.contains_key(*u)) {
            self.control.release_caller(user);
        }
        for user in callers.keys().filter(|u| !current.contains_key(*u)) {
            self.control.control_caller(user, self.offers.clone());
        }
        *current = callers;
    }

    /// Takes the incoming calls of the numbers that name an application and hands each to
    /// its dialect. Called once, after the dialects have registered.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut offers = self
            .offers_rx
            .lock()
            .expect("not poisoned")
            .take()
            .expect("started once");
        for row in self.numbers.all() {
            self.number_changed(&row.number);
        }
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(event) = offers.recv().await {
                this.offer(event).await;
            }
        })
    }

    /// A login's call: answered by its application as a call to the number it dialed (that
    /// number, on that connection or with that App's voice URL, for this call); with the App's
    /// SID when it is a Twilio App.
    fn caller_number(&self, user: &str, to: &str) -> Option<(Number, Option<String>)> {
        let caller = self
            .callers
            .lock()
            .expect("not poisoned")
            .get(user)
            .cloned()?;
        let mut number = Number {
            phone_number: to.to_owned(),
            account_sid: caller.account.clone(),
            voice_url: None,
            voice_method: Default::default(),
            voice_fallback_url: None,
            voice_fallback_method: Default::default(),
            status_callback: None,
            status_callback_method: Default::default(),
            connection_id: None,
        };
        let app = caller.answers(&mut number);
        Some((number, app))
    }

    /// A number naming a Twilio App: answered by the App's voice settings (an App gone since
    /// answers nothing). Returns the App's SID.
    fn number_app(&self, number: &mut Number) -> Option<String> {
        let sid = (number.connection_id.clone()).filter(|c| c.starts_with("AP"))?;
        let row = self.connections.get()?.get(&number.account_sid, &sid);
        match row.as_ref().and_then(CallerApp::of_twiml_app) {
            Some(app) => app.answers(number),
            None => {
                number.connection_id = None;
                None
            }
        }
    }

    async fn offer(&self, event: CallEvent) {
        let EventKind::Incoming { from, to, user, .. } = &event.kind else {
            return;
        };
        let by_caller = user.as_deref().and_then(|u| self.caller_number(u, to));
        let application_sid = by_caller.as_ref().and_then(|(_, app)| app.clone());
        let mut number = (by_caller.map(|(number, _)| number))
            .or_else(|| self.numbers.by_number(to).map(|row| row.number));
        let number_app = (application_sid.is_none())
            .then(|| number.as_mut().and_then(|n| self.number_app(n)))
            .flatten();
        let found = number.and_then(|number| {
            let account = self.directory.account(&number.account_sid)?.clone();
            let answerer = (self.answerers.read().expect("not poisoned"))
                .get(&Application::of(&number)?)
                .cloned()?;
            Some((number, account, answerer))
        });
        let Some((number, account, answerer)) = found else {
            // A number released or changed while its call was on the way in (or a core and
            // registry that disagree): refuse rather than hang.
            let _ = (self.control)
                .command(&event.call, CallCommand::Reject(Rejection::Rejected))
                .await;
            return;
        };
        let (events_tx, events) = mpsc::channel(256);
        let taken = (self.control).redirect(&event.call, events_tx).await.and(
            (self.control)
                .command(&event.call, CallCommand::SetAccount(account.sid.clone()))
                .await,
        );
        if taken.is_err() {
            // The caller left already.
            return;
        }
        let (from, to) = (from.clone(), to.clone());
        answerer.take(Offered {
            account,
            number,
            event,
            from,
            to,
            events,
            application_sid,
            number_app,
        });
    }
}
