//! The admin API's additions put in force: the configuration file's trunks, routes and
//! accounts with the API's after them, checked by the same validation the file gets (so a
//! trunk added through the API takes every key a `[[trunks]]` table takes, and an error names
//! the key), then the routing swapped into the call core for new calls and the accounts (with
//! their call limits) into the directory. The file wins: an API trunk or account of a name the
//! file declares is passed over (the API refuses to add one; a later file that declares it
//! takes it over, and the log says so).

use crate::config::{AccountSection, Config, RouteSection, TrunkSection};
use std::sync::{Arc, Mutex};
use switchboard_control::call::CallControl;
use switchboard_control::call::account_limits::AccountLimits;
use switchboard_control::infra::accounts::Directory;
use switchboard_control::operator::additions::{Added, ConfigAdmin, FileView};
use tracing::info;

pub struct FileAdditions {
    /// The configuration as the file last gave it.
    file: Mutex<Config>,
    control: CallControl,
    directory: Arc<Directory>,
    limits: Arc<AccountLimits>,
}

impl FileAdditions {
    pub fn new(
        file: Config,
        control: CallControl,
        directory: Arc<Directory>,
        limits: Arc<AccountLimits>,
    ) -> Self {
        Self {
            file: Mutex::new(file),
            control,
            directory,
            limits,
        }
    }

    /// The file was read again (SIGHUP): the API's additions go on top of this one.
    pub fn file_changed(&self, file: Config) {
        *self.file.lock().expect("not poisoned") = file;
    }
}

impl ConfigAdmin for FileAdditions {
    fn file(&self) -> FileView {
        let file = self.file.lock().expect("not poisoned");
        FileView {
            trunks: file.trunks.iter().map(|t| t.name.clone()).collect(),
            routes: (file.routes.iter())
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
            accounts: file.accounts.iter().map(|a| a.sid.clone()).collect(),
        }
    }

    fn apply(&self, added: &Added) -> Result<(), String> {
        let mut merged = self.file.lock().expect("not poisoned").clone();
        for (i, t) in added.trunks.iter().enumerate() {
            let name = t["name"].as_str().map_or(i.to_string(), str::to_owned);
            let trunk: TrunkSection =
                serde_json::from_value(t.clone()).map_err(|e| format!("trunk {name}: {e}"))?;
            if merged.trunks.iter().any(|f| f.name == trunk.name) {
                info!(trunk = %trunk.name, "a trunk the API added is declared in the file too: the file's is in force");
                continue;
            }
            merged.trunks.push(trunk);
        }
        for (i, r) in added.routes.iter().enumerate() {
            let route: RouteSection =
                serde_json::from_value(r.clone()).map_err(|e| format!("route {i}: {e}"))?;
            merged.routes.push(route);
        }
        for (i, a) in added.accounts.iter().enumerate() {
            let sid = a["sid"].as_str().map_or(i.to_string(), str::to_owned);
            let account: AccountSection =
                serde_json::from_value(a.clone()).map_err(|e| format!("account {sid}: {e}"))?;
            if merged.accounts.iter().any(|f| f.sid == account.sid) {
                info!(account = %account.sid, "an account the API added is declared in the file too: the file's is in force");
                continue;
            }
            merged.accounts.push(account);
        }
        let settings = merged.validate().map_err(|e| e.to_string())?;
        self.control.reconfigure(settings.routing);
        let (defaults, configured) = settings.account_limits;
        self.directory.replace(settings.directory);
        self.limits.reconfigure(defaults, configured);
        Ok(())
    }
}
