//! The account of a server whose configuration declares none — the embedded defaults on a
//! first run: made at its first start (a SID, an auth token, a Telnyx API key), kept in the
//! data directory (`first-account.toml`, readable by its owner only) so that it stays the
//! same across restarts and reloads, and printed at start, so that the README's SDK snippets,
//! the console and the browser SDKs work without writing a file. Declaring `[[accounts]]`
//! replaces it (the file is then left alone and unused).

use crate::config::AccountSection;
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Its name in the data directory.
const FILE: &str = "first-account.toml";

/// What is kept of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstAccount {
    pub sid: String,
    pub auth_token: String,
    pub telnyx_api_key: String,
}

impl FirstAccount {
    fn new() -> Self {
        use switchboard_control::infra::secret::random_alphanumeric;
        Self {
            sid: switchboard_control::infra::sid::new_sid("AC"),
            // 32 random hex digits, as a Twilio auth token is.
            auth_token: switchboard_control::infra::sid::new_sid(""),
            telnyx_api_key: format!("KEY{}", random_alphanumeric(40)),
        }
    }
}

/// What [`adopt`] did.
pub struct Adopted {
    pub account: FirstAccount,
    pub file: PathBuf,
    /// Made now (the server's first start with this data directory).
    pub made: bool,
}

/// Gives `config` the data directory's account when it declares none: the one kept there,
/// or (with `make`) a new one, kept from now on. `None` when the configuration declares
/// accounts, or when none is kept and `make` is false.
pub fn adopt(config: &mut Config, make: bool) -> Result<Option<Adopted>, String> {
    if !config.accounts.is_empty() {
        return Ok(None);
    }
    let file = Path::new(&config.data_dir).join(FILE);
    let (account, made) = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let kept: FirstAccount = toml::from_str(&text)
                .map_err(|e| format!("{} is not an account: {e}", file.display()))?;
            (kept, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && make => {
            let account = FirstAccount::new();
            keep(&file, &account)?;
            (account, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let section = format!(
        "sid = {:?}\nauth_token = {:?}\ntelnyx_api_keys = [{:?}]\n",
        account.sid, account.auth_token, account.telnyx_api_key
    );
    let section: AccountSection =
        toml::from_str(&section).map_err(|e| format!("the kept account: {e}"))?;
    config.accounts.push(section);
    Ok(Some(Adopted {
        account,
        file,
        made,
    }))
}

/// Writes the account where only its owner reads it, whole or not at all.
fn keep(file: &Path, account: &FirstAccount) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let text = toml::to_string(account).map_err(|e| e.to_string())?;
    let partial = file.with_extension("toml.partial");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&partial, file));
    written.map_err(|e| format!("cannot keep the account in {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        let mut config = Config::load(None).unwrap();
        config.settle_data_dir(Some(dir)).unwrap();
        config
    }

    /// Made once, kept (owner-only), the same at the next start; never over declared ones.
    #[test]
    fn made_once_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        assert!(adopt(&mut config, false).unwrap().is_none());
        let first = adopt(&mut config, true).unwrap().unwrap();
        assert!(first.made);
        assert!(first.account.sid.starts_with("AC") && first.account.sid.len() == 34);
        let mode = std::fs::metadata(&first.file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        config.validate().unwrap();
        let mut again = config_in(dir.path());
        let second = adopt(&mut again, true).unwrap().unwrap();
        assert!(!second.made);
        assert_eq!(second.account, first.account);
        // A configuration that declares an account keeps its own.
        assert!(adopt(&mut again, true).unwrap().is_none());
        std::fs::write(&first.file, "sid = 1").unwrap();
        assert!(adopt(&mut config_in(dir.path()), true).is_err());
    }
}
