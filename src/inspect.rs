//! What an operator reads from the command line: the store the servers write (one SQLite file,
//! or the PostgreSQL every node shares) and the configuration. Calls listed, one call whole
//! (its legs, events and recordings), calls followed as their records change, the numbers and
//! the accounts.

use crate::config::Config;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use switchboard_control::infra::store::{CallRecord, Store, format_ms};

/// How often `calls tail` reads the store.
const TAIL_EVERY: Duration = Duration::from_millis(500);
/// The newest calls `calls tail` watches.
const TAIL_WINDOW: i64 = 200;

async fn open(config: &Config) -> Result<Store, String> {
    Store::open(&config.storage.database_url)
        .await
        .map_err(|e| e.to_string())
}

fn print_json(v: &impl serde::Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub async fn list_calls(config: &Config, limit: i64, json: bool) -> Result<(), String> {
    let store = open(config).await?;
    let calls = store.list_calls(limit).await.map_err(|e| e.to_string());
    store.close().await;
    let calls = calls?;
    if json {
        return print_json(&calls);
    }
    print_table(&calls);
    Ok(())
}

/// One call whole: its record (legs and their counters), its events in order and its
/// recordings.
pub async fn show_call(config: &Config, id: &str, json: bool) -> Result<(), String> {
    let store = open(config).await?;
    let found = async {
        let call = store.get_call(id).await?;
        let events = store.call_events(id).await?;
        let recordings = store.recordings_of(id).await?;
        Ok::<_, switchboard_control::infra::store::StoreError>((call, events, recordings))
    }
    .await
    .map_err(|e| e.to_string());
    store.close().await;
    let (call, events, recordings) = found?;
    let call = call.ok_or_else(|| format!("no call {id}"))?;
    if json {
        return print_json(&json!({"call": call, "events": events, "recordings": recordings}));
    }
    print_table(std::slice::from_ref(&call));
    println!();
    for leg in &call.legs {
        println!(
            "leg {:<7} {:<8} rtp {:<21} in {:>6} pkts {:>9} B  out {:>6} pkts {:>9} B  lost {}  call-id {}",
            leg.leg,
            leg.codec.as_deref().unwrap_or("-"),
            leg.remote_rtp.as_deref().unwrap_or("-"),
            leg.packets_in,
            leg.bytes_in,
            leg.packets_out,
            leg.bytes_out,
            leg.lost,
            leg.sip_call_id.as_deref().unwrap_or("-"),
        );
    }
    println!();
    for e in &events {
        let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
        println!(
            "{:>4}  {}  {:<20} {}",
            e.seq,
            format_ms(e.at),
            e.kind,
            detail
        );
    }
    for r in &recordings {
        println!(
            "recording {}  {}  {} ms  {} B  {}",
            r.id, r.status, r.duration_ms, r.size_bytes, r.path
        );
    }
    Ok(())
}

/// Follows calls as their records change, a line each time one appears or changes status,
/// until interrupted. It reads the store, so it follows every node sharing it.
pub async fn tail(config: &Config) -> Result<(), String> {
    let store = open(config).await?;
    let mut known: HashMap<String, String> = HashMap::new();
    let mut first = true;
    loop {
        let calls = store
            .list_calls(TAIL_WINDOW)
            .await
            .map_err(|e| e.to_string())?;
        // Oldest first, so that lines come in the order calls began.
        for c in calls.iter().rev() {
            let status = c.status.as_str();
            if known.get(&c.id).is_some_and(|s| s == status) {
                continue;
            }
            known.insert(c.id.clone(), status.to_owned());
            // The calls over before the tail began are not news.
            if first && c.ended_at.is_some() {
                continue;
            }
            let by = c
                .hangup_by
                .map_or(String::new(), |h| format!(" by {}", h.as_str()));
            println!(
                "{}  {}  {:<11} {} -> {}{}",
                format_ms(switchboard_control::infra::clock::now_ms()),
                c.id,
                status,
                c.from,
                c.to,
                by
            );
        }
        known.retain(|id, _| calls.iter().any(|c| &c.id == id));
        first = false;
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(TAIL_EVERY).await;
    }
}

/// The numbers: those of the configuration and those accounts claimed through the API.
pub async fn numbers(config: &Config, json: bool) -> Result<(), String> {
    let store = open(config).await?;
    let claimed = store.phone_numbers().await.map_err(|e| e.to_string());
    store.close().await;
    let mut rows: Vec<Value> = (config.numbers.iter())
        .map(|n| {
            json!({"phone_number": n.phone_number, "account_sid": n.account_sid,
                   "voice_url": n.voice_url, "connection_id": n.connection_id,
                   "source": "config"})
        })
        .collect();
    rows.extend(claimed?.iter().map(|r| {
        let n = &r.number;
        json!({"phone_number": n.phone_number, "account_sid": n.account_sid,
               "voice_url": n.voice_url, "connection_id": n.connection_id,
               "sid": r.sid, "source": "api"})
    }));
    if json {
        return print_json(&rows);
    }
    println!(
        "{:<16}  {:<34}  {:<6}  ANSWERED BY",
        "NUMBER", "ACCOUNT", "FROM"
    );
    for r in &rows {
        let by = (r["connection_id"].as_str())
            .map(|c| format!("connection {c}"))
            .or_else(|| r["voice_url"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<34}  {:<6}  {by}",
            r["phone_number"].as_str().unwrap_or_default(),
            r["account_sid"].as_str().unwrap_or_default(),
            r["source"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

/// The accounts of the configuration, with the call limits in force (the operator's, set
/// through the admin API, over the configuration's and the defaults).
pub async fn accounts(config: &Config, json: bool) -> Result<(), String> {
    let store = open(config).await?;
    let set = store.account_limits().await.map_err(|e| e.to_string());
    store.close().await;
    let set: HashMap<String, _> = set?.into_iter().collect();
    let rows: Vec<Value> = (config.accounts.iter())
        .map(|a| {
            let (max_calls, per_second, from) = match set.get(&a.sid) {
                Some(l) => (l.max_calls, l.calls_per_second, "admin"),
                None => (
                    a.max_calls.unwrap_or(config.limits.account_max_calls),
                    a.calls_per_second
                        .unwrap_or(config.limits.account_calls_per_second),
                    "config",
                ),
            };
            let numbers = (config.numbers.iter())
                .filter(|n| n.account_sid == a.sid)
                .count();
            json!({"sid": a.sid, "max_calls": max_calls, "calls_per_second": per_second,
                   "limits_from": from, "configured_numbers": numbers,
                   "number_ranges": a.number_ranges})
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    println!(
        "{:<34}  {:>9}  {:>8}  {:<6}  NUMBERS",
        "ACCOUNT", "MAX CALLS", "CALLS/S", "LIMITS"
    );
    for r in &rows {
        println!(
            "{:<34}  {:>9}  {:>8}  {:<6}  {}",
            r["sid"].as_str().unwrap_or_default(),
            r["max_calls"],
            r["calls_per_second"],
            r["limits_from"].as_str().unwrap_or_default(),
            r["configured_numbers"],
        );
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
