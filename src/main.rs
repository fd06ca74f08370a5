//! `switchboard`: a self-hosted telephony provider (SIP B2BUA with an anchored media engine).

/// At 3,000 calls/s the SIP thread spent a quarter of its samples in glibc's malloc and free
/// (messages, headers and transactions are short-lived and many); with mimalloc's per-thread
/// free lists the server's CPU per call fell by about 15 % at 3,200 calls/s, for about 65 MB
/// more resident memory at the peak (benches/load/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod addresses;
mod app;
mod config;
mod descriptors;
mod first_run;
mod heartbeat;
mod inspect;
mod logging;
mod operator_additions;
mod reload;
mod shutdown;
mod sip_thread;
mod speech_fetch;

use clap::{Args, Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// What a newcomer does first, shown with the help (and when no command is given).
const START_HERE: &str = "\
Start here:
  switchboard serve                  run on the embedded defaults: SIP on udp/tcp 5060, the
                                     providers' APIs and the console on http://0.0.0.0:8080,
                                     data in $XDG_DATA_HOME/switchboard or ~/.local/share/switchboard
  switchboard check-config -c FILE   what a configuration file (and SWITCHBOARD_* variables) make
  switchboard config-reference       every setting, its default and its variable
  scripts/install-speech.sh          (in a checkout) the local speech models, from PyPI";

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted telephony provider: SIP B2BUA with an anchored RTP media engine",
    after_help = START_HERE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// TOML file merged over the embedded defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database, recordings, caches and speech models are (relative paths in the
    /// configuration are taken from here); default $XDG_DATA_HOME/switchboard, else
    /// ~/.local/share/switchboard.
    #[arg(long, value_name = "DIR", env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArg),
    /// Print the effective configuration, or the first error with the key it concerns.
    CheckConfig(ConfigArg),
    /// Print the configuration reference (Markdown): every key of the embedded defaults with
    /// its default, its environment variable and what it does (docs/configuration.md).
    ConfigReference,
    /// Print the public key an account's Telnyx webhooks are verified with (base64, as
    /// Telnyx's portal shows it; the SDKs' `public_key`).
    TelnyxPublicKey {
        #[command(flatten)]
        config: ConfigArg,
        /// The account's SID (`AC…`).
        account: String,
    },
    /// Call detail records.
    Calls {
        #[command(subcommand)]
        command: CallsCommand,
    },
    /// The numbers: configured, and claimed by accounts through the API.
    Numbers {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// The accounts, with the call limits in force.
    Accounts {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CallsCommand {
    /// List calls, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// How many calls to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One call: its record and legs, its events in order, its recordings.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The call's SID (`CA…`).
        call: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Follow calls as they change (a line when one begins or changes status), until
    /// interrupted; every node sharing the store.
    Tail {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// The configuration, with the data directory's first account when it declares none and
/// one is kept there (see [`first_run`]; `serve` makes it).
fn load(arg: &ConfigArg) -> Result<Config, String> {
    let mut config = load_file(arg)?;
    first_run::adopt(&mut config, false)?;
    Ok(config)
}

/// The configuration as the file and the environment give it.
fn load_file(arg: &ConfigArg) -> Result<Config, String> {
    let mut config = Config::load(arg.config.as_deref()).map_err(|e| e.to_string())?;
    config
        .settle_data_dir(arg.data_dir.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig(arg) => check_config(&arg),
        Command::ConfigReference => {
            print!("{}", config::reference::markdown(config::DEFAULTS));
            Ok(())
        }
        Command::Serve(arg) => serve(&arg),
        Command::TelnyxPublicKey { config, account } => telnyx_public_key(&config, &account),
        Command::Calls { command } => match command {
            CallsCommand::List {
                config,
                limit,
                json,
            } => reading(&config)
                .and_then(|(c, rt)| rt.block_on(inspect::list_calls(&c, limit, json))),
            CallsCommand::Show { config, call, json } => reading(&config)
                .and_then(|(c, rt)| rt.block_on(inspect::show_call(&c, &call, json))),
            CallsCommand::Tail { config } => {
                reading(&config).and_then(|(c, rt)| rt.block_on(inspect::tail(&c)))
            }
        },
        Command::Numbers { config, json } => {
            reading(&config).and_then(|(c, rt)| rt.block_on(inspect::numbers(&c, json)))
        }
        Command::Accounts { config, json } => {
            reading(&config).and_then(|(c, rt)| rt.block_on(inspect::accounts(&c, json)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(arg: &ConfigArg) -> Result<(), String> {
    let config = load(arg)?;
    config.validate().map_err(|e| e.to_string())?;
    print!("{}", config.to_toml());
    Ok(())
}

fn telnyx_public_key(arg: &ConfigArg, account: &str) -> Result<(), String> {
    let settings = load(arg)?.validate().map_err(|e| e.to_string())?;
    let account = settings
        .directory
        .account(account)
        .ok_or_else(|| format!("no account {account} in the configuration"))?;
    println!("{}", account.telnyx_public_key());
    Ok(())
}

/// The configuration and a runtime, for one of the operator's readings (see [`inspect`]).
fn reading(arg: &ConfigArg) -> Result<(Config, tokio::runtime::Runtime), String> {
    Ok((load(arg)?, runtime()?))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn serve(arg: &ConfigArg) -> Result<(), String> {
    let mut config = load_file(arg)?;
    let first = first_run::adopt(&mut config, true)?;
    let settings = config.validate().map_err(|e| e.to_string())?;
    let log_level = logging::init(&config.log)?;
    if let Some(first) = first {
        let a = &first.account;
        // Printed at every start while it is the only account: the credentials an SDK, the
        // console or a browser SDK's token server needs.
        tracing::info!(
            account_sid = %a.sid,
            auth_token = %a.auth_token,
            telnyx_api_key = %a.telnyx_api_key,
            kept_in = %first.file.display(),
            made_now = first.made,
            "no [[accounts]] in the configuration: this server's own account (declare [[accounts]] to replace it)"
        );
    }
    // Where the database, recordings and models are, whatever the working directory.
    tracing::info!(
        data_dir = %config.data_dir,
        speech = %config.speech.dir,
        "data directory"
    );
    // SIGHUP reads the same file (and environment) again.
    let arg = arg.clone();
    let reload = move || {
        load(&arg).and_then(|c| {
            let settings = c.validate().map_err(|e| e.to_string())?;
            Ok((c, settings))
        })
    };
    runtime()?
        .block_on(app::serve((config, settings), reload, log_level))
        .map_err(|e| e.to_string())
}
