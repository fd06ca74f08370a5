//! Which engine serves a provider an application names (`transcriptionProvider="Deepgram"`,
//! `ttsProvider="ElevenLabs"`, a `Polly.` voice, Telnyx's `transcription_engine`): the
//! account's own map first, then the operator's (`speech.providers`). A name neither maps is
//! served as any other request is, by its language.

use crate::infra::accounts::Directory;
use std::sync::Arc;
use switchboard_speech::{EngineKind, ProviderEngines};

pub struct SpeechProviders {
    operator: ProviderEngines,
    /// The accounts as they stand (a reload changes an account's map at once).
    directory: Arc<Directory>,
}

impl SpeechProviders {
    pub fn new(operator: ProviderEngines, directory: Arc<Directory>) -> Self {
        Self {
            operator,
            directory,
        }
    }

    /// The engine `account`'s request naming `provider` is served by, if a map names it.
    pub fn engine(&self, account: &str, provider: &str) -> Option<EngineKind> {
        let own =
            (self.directory.account(account)).and_then(|a| a.speech_providers.engine(provider));
        own.or_else(|| self.operator.engine(provider))
    }
}
