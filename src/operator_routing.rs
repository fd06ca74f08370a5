//! The admin API's trunks and routes put in force: the configuration file's, with the API's
//! after them, checked by the same validation the file gets (so a trunk added through the API
//! takes every key a `[[trunks]]` table takes, and an error names the key), then swapped into
//! the call core for new calls. The file wins: an API trunk of a name the file declares is
//! passed over (the API refuses to add one; a later file that declares it takes it over, and
//! the log says so).

use crate::config::{Config, RouteSection, TrunkSection};
use serde_json::Value;
use std::sync::Mutex;
use switchboard_control::call::CallControl;
use switchboard_control::operator::routing::RoutingAdmin;
use tracing::info;

pub struct FileRouting {
    /// The configuration as the file last gave it.
    file: Mutex<Config>,
    control: CallControl,
}

impl FileRouting {
    pub fn new(file: Config, control: CallControl) -> Self {
        Self {
            file: Mutex::new(file),
            control,
        }
    }

    /// The file was read again (SIGHUP): the API's trunks and routes go on top of this one.
    pub fn file_changed(&self, file: Config) {
        *self.file.lock().expect("not poisoned") = file;
    }
}

impl RoutingAdmin for FileRouting {
    fn file(&self) -> (Vec<String>, Vec<Value>) {
        let file = self.file.lock().expect("not poisoned");
        let names = file.trunks.iter().map(|t| t.name.clone()).collect();
        let routes = (file.routes.iter())
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        (names, routes)
    }

    fn apply(&self, trunks: &[Value], routes: &[Value]) -> Result<(), String> {
        let mut merged = self.file.lock().expect("not poisoned").clone();
        for (i, t) in trunks.iter().enumerate() {
            let trunk: TrunkSection = serde_json::from_value(t.clone()).map_err(|e| {
                format!(
                    "trunk {}: {e}",
                    t["name"].as_str().unwrap_or(&i.to_string())
                )
            })?;
            if merged.trunks.iter().any(|f| f.name == trunk.name) {
                info!(trunk = %trunk.name, "a trunk the API added is declared in the file too: the file's is in force");
                continue;
            }
            merged.trunks.push(trunk);
        }
        for (i, r) in routes.iter().enumerate() {
            let route: RouteSection =
                serde_json::from_value(r.clone()).map_err(|e| format!("route {i}: {e}"))?;
            merged.routes.push(route);
        }
        let settings = merged.validate().map_err(|e| e.to_string())?;
        self.control.reconfigure(settings.routing);
        Ok(())
    }
}
