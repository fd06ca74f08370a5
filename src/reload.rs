//! SIGHUP: the configuration file is read again and what can change under live calls changes,
//! without dropping one. Trunks, routes and users apply to new calls (the core swaps its
//! routing); accounts (credentials, caller IDs, ranges, reach) to the next request and webhook;
//! numbers and connections the file adds are stored and answered at once; a number's edit in
//! the file applies to each field the API has not changed since the file last set it (a
//! connection stored already keeps what the API made of it), as at start; call limits from the next call. Listeners,
//! media ports, the database and speech apply at restart. A file that does not load or validate
//! changes nothing.

use crate::config::{Config, Settings};
use crate::operator_additions::FileAdditions;
use std::sync::Arc;
use switchboard_control::call::CallControl;
use switchboard_control::call::account_limits::AccountLimits;
use switchboard_control::infra::accounts::Directory;
use switchboard_control::infra::store::Store;
use switchboard_control::services::directory::connections::Connections;
use switchboard_control::services::directory::phone_numbers::PhoneNumbers;
use switchboard_control::services::inbound::Inbound;
use tracing::{error, info};

/// What a reload changes, and how the file is read.
pub struct Reloader<F> {
    pub read: F,
    /// The admin API's trunks and routes, put on top of the file's again.
    pub routing: Arc<FileAdditions>,
    pub store: Store,
    pub control: CallControl,
    pub directory: Arc<Directory>,
    pub numbers: Arc<PhoneNumbers>,
    pub connections: Arc<Connections>,
    pub inbound: Arc<Inbound>,
    pub limits: Arc<AccountLimits>,
}

impl<F: Fn() -> Result<(Config, Settings), String>> Reloader<F> {
    pub async fn apply(&self) {
        let (file, new) = match (self.read)() {
            Ok(new) => new,
            Err(e) => {
                return error!(error = %e, "configuration reload refused; the running configuration is kept");
            }
        };
        // Accounts first: a number or connection the file adds belongs to one of them. The
        // file's accounts, routing and limits with the admin API's additions on top, or the
        // file's alone if those no longer fit it.
        let accounts = new.directory.accounts.len();
        self.routing.file_changed(file);
        let merged = switchboard_control::operator::additions::apply_stored(
            &self.store,
            self.routing.as_ref(),
        )
        .await;
        if let Err(why) = merged {
            tracing::warn!(%why, "what the admin API added does not fit the new file: the file's alone is in force");
            let (defaults, configured) = new.account_limits;
            self.directory.replace(new.directory.clone());
            self.limits.reconfigure(defaults, configured);
            self.control.reconfigure(new.routing);
        }
        let numbers = match self.numbers.seed(&new.directory.numbers).await {
            Ok(added) => added,
            Err(e) => {
                error!(error = %e, "cannot store the configured numbers; the stored ones are kept");
                Vec::new()
            }
        };
        for number in &numbers {
            self.inbound.number_changed(number);
        }
        let connections = match self.connections.seed(&new.directory.connections).await {
            Ok(added) => added,
            Err(e) => {
                error!(error = %e, "cannot store the configured connections; the stored ones are kept");
                0
            }
        };
        info!(
            accounts,
            numbers_added = numbers.len(),
            connections_added = connections,
            "configuration reloaded: accounts, numbers, connections and limits apply now, \
             trunks, routes and users to new calls; listeners, media and the database at restart"
        );
    }
}
