//! `switchboard`: a self-hosted telephony provider (SIP B2BUA with an anchored media engine).

mod app;
mod config;
mod descriptors;
mod logging;
mod reload;

use clap::{Args, Parser, Subcommand};
use config::{Config, ConfigError};
use std::path::PathBuf;
use std::process::ExitCode;
use switchboard_control::infra::store::{CallRecord, Store};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted telephony provider: SIP B2BUA with an anchored RTP media engine"
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
}

fn load(arg: &ConfigArg) -> Result<Config, ConfigError> {
    let mut config = Config::load(arg.config.as_deref())?;
    config.settle_data_dir(arg.data_dir.as_deref())?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig(arg) => check_config(&arg),
        Command::Serve(arg) => serve(&arg),
        Command::TelnyxPublicKey { config, account } => telnyx_public_key(&config, &account),
        Command::Calls {
            command:
                CallsCommand::List {
                    config,
                    limit,
                    json,
                },
        } => list_calls(&config, limit, json),
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
    let config = load(arg).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    print!("{}", config.to_toml());
    Ok(())
}

fn telnyx_public_key(arg: &ConfigArg, account: &str) -> Result<(), String> {
    let settings = load(arg)
        .and_then(|c| c.validate())
        .map_err(|e| e.to_string())?;
    let account = settings
        .directory
        .account(account)
        .ok_or_else(|| format!("no account {account} in the configuration"))?;
    println!("{}", account.telnyx_public_key());
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn serve(arg: &ConfigArg) -> Result<(), String> {
    let config = load(arg).map_err(|e| e.to_string())?;
    let settings = config.validate().map_err(|e| e.to_string())?;
    let log_level = logging::init(&config.log)?;
    // SIGHUP reads the same file (and environment) again.
    let arg = arg.clone();
    let reload = move || {
        load(&arg)
            .and_then(|c| c.validate())
            .map_err(|e| e.to_string())
    };
    runtime()?
        .block_on(app::serve(settings, reload, log_level))
        .map_err(|e| e.to_string())
}

fn list_calls(arg: &ConfigArg, limit: i64, json: bool) -> Result<(), String> {
    let config = load(arg).map_err(|e| e.to_string())?;
    let calls = runtime()?.block_on(async {
        let store = Store::open(&config.storage.database_url)
            .await
            .map_err(|e| e.to_string())?;
        let calls = store.list_calls(limit).await.map_err(|e| e.to_string());
        store.close().await;
        calls
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&calls).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&calls);
    }
    Ok(())
}

fn print_table(calls: &[CallRecord]) {
    println!(
        "{:<34}  {:<24}  {:<16}  {:<16}  {:<23}  {:<11}  {:>4}  {:>6}  {:<6}  {:>15}  {:>15}",
        "ID",
        "STARTED",
        "FROM",
        "TO",
        "TRUNKS",
        "STATUS",
        "SIP",
        "SECS",
        "BY",
        "CALLER IN/OUT",
        "CALLEE IN/OUT"
    );
    for c in calls {
        let trunks = format!(
            "{}>{}",
            c.trunk_in
                .as_deref()
                .or(c.user_in.as_deref())
                .unwrap_or("-"),
            c.trunk_out
                .as_deref()
                .or(c.user_out.as_deref())
                .unwrap_or("-")
        );
        let packets = |leg: &str| {
            c.legs
                .iter()
                .find(|l| l.leg == leg)
                .map_or("-".to_owned(), |l| {
                    format!("{}/{}", l.packets_in, l.packets_out)
                })
        };
        println!(
            "{:<34}  {:<24}  {:<16}  {:<16}  {:<23}  {:<11}  {:>4}  {:>6}  {:<6}  {:>15}  {:>15}",
            c.id,
            switchboard_control::infra::store::format_ms(c.started_at),
            c.from,
            c.to,
            trunks,
            c.status.as_str(),
            c.sip_code.map_or("-".into(), |s| s.to_string()),
            c.duration_secs,
            c.hangup_by.map_or("-", |h| h.as_str()),
            packets("caller"),
            packets("callee"),
        );
    }
}
