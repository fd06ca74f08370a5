//! `/v2/ip_connections` with `/v2/ips`, and `/v2/fqdn_connections` with `/v2/fqdns`: an
//! account's trunks its PBXs reach Switchboard through, authenticated by address — the
//! addresses given, or those an FQDN's A records name — and those addresses. On the neutral
//! trunk service ([`crate::services::directory::sip_trunks`]): an INVITE from one of a
//! connection's addresses is the connection's call (its account's, out by the routes that
//! account may take; an FQDN connection with a `user_name` also demands its password by
//! digest); a call to a number whose `connection_id` names the connection goes to its
//! addresses in the order they were added, failing over on 408/5xx. `active: false` puts the
//! trunk out of force (its numbers' calls fail 503). An IP address is one connection's across
//! every account. The connections' other settings are treated as a credential connection's
//! are (`connection_settings`).

use super::application_api::Kind;
use super::connection_settings::{self, Holder};
use super::credential_connections::sip_connection_fields;
use super::errors::ApiError;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::accounts::{Account, Connection, ConnectionKind, IpTrunk, SipLogin};
use crate::infra::store::ConnectionRow;
use crate::infra::store::sip_directory::SipObjectRow;
use crate::services::directory::sip_domains::{DirectoryError, Kind as SipKind};
use crate::services::directory::sip_trunks::MAX_ADDRESSES;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn resource(row: &ConnectionRow) -> Value {
    let trunk = row.connection.ip_trunk.as_ref();
    let by_name = trunk.is_some_and(|t| t.by_name);
    let mut v = sip_connection_fields(row);
    v["record_type"] = json!(if by_name {
        "fqdn_connection"
    } else {
        "ip_connection"
    });
    v["encrypted_media"] = json!(trunk.is_some_and(|t| t.srtp).then_some("SRTP"));
    v["transport_protocol"] = json!(trunk.map_or("UDP", |t| t.transport_protocol.as_str()));
    let login = trunk.and_then(|t| t.login.as_ref());
    if by_name {
        v["user_name"] = json!(login.map(|l| l.user_name.as_str()));
        v["password"] = json!(login.map(|l| l.password.as_str()));
    }
    v["webhook_event_url"] = Value::Null;
    v["webhook_event_failover_url"] = json!("");
    v
}

/// Applies the body's fields besides the name. Its calls are a trunk's, reported to no
/// application: a webhook URL is refused rather than kept unused.
fn apply_trunk(p: &Params, c: &mut Connection, by_name: bool) -> Result<(), ApiError> {
    let trunk = c.ip_trunk.get_or_insert_with(|| IpTrunk {
        transport_protocol: "UDP".into(),
        srtp: false,
        by_name,
        login: None,
    });
    if p.has("transport_protocol") {
        trunk.transport_protocol =
            (p.choice("transport_protocol", &["UDP", "TCP", "TLS"], "UDP")?).to_owned();
    }
    if p.given("encrypted_media") {
        trunk.srtp = match p.str("encrypted_media")? {
            None | Some("") => false,
            Some("SRTP") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "encrypted_media",
                    "'encrypted_media' is SRTP or null.".into(),
                ));
            }
        };
    }
    if by_name && (p.given("user_name") || p.given("password")) {
        let user = p.str("user_name")?.unwrap_or_default();
        let password = p.str("password")?.unwrap_or_default();
        trunk.login = match (user, password) {
            ("", "") => None,
            (u, pw) if (4..=32).contains(&u.len()) && (8..=128).contains(&pw.len()) => {
                Some(SipLogin {
                    user_name: u.to_owned(),
                    password: pw.to_owned(),
                })
            }
            _ => {
                return Err(bad_value(
                    "user_name",
                    "'user_name' (4 to 32 characters) and 'password' (8 to 128) go together.",
                ));
            }
        };
    }
    for key in ["webhook_event_url", "webhook_event_failover_url"] {
        if p.str(key)?.is_some_and(|u| !u.is_empty()) {
            return Err(ApiError::invalid(
                key,
                format!(
                    "'{key}' is not served for this connection by Switchboard: its calls are a trunk's."
                ),
            ));
        }
    }
    let holder = Holder::of(c);
    connection_settings::apply(p, c, holder)
}

fn apply_ip(p: &Params, c: &mut Connection, _creating: bool) -> Result<(), ApiError> {
    apply_trunk(p, c, false)
}

fn apply_fqdn(p: &Params, c: &mut Connection, _creating: bool) -> Result<(), ApiError> {
    apply_trunk(p, c, true)
}

pub(super) const IP: Kind = Kind {
    kind: ConnectionKind::Ip,
    what: "IP connection",
    name_field: "connection_name",
    name_sort: "connection_name",
    name_filters: &["filter[connection_name][contains]"],
    newest_first: false,
    apply: apply_ip,
    resource,
};

pub(super) const FQDN: Kind = Kind {
    kind: ConnectionKind::Fqdn,
    what: "FQDN connection",
    name_field: "connection_name",
    name_sort: "connection_name",
    name_filters: &["filter[connection_name][contains]"],
    newest_first: false,
    apply: apply_fqdn,
    resource,
};

/// A JSON body through the IP and FQDN connections' and their addresses' checks (for the
/// fuzz targets): the entries read (their names), and how many connection bodies passed.
#[doc(hidden)]
pub fn check_body(body: &[u8]) -> (Vec<String>, usize) {
    let Ok(p) = Params::parse(body) else {
        return (Vec::new(), 0);
    };
    let names = [read_ip(&p, None), read_fqdn(&p, None)]
        .into_iter()
        .filter_map(|r| r.ok().map(|(name, _)| name))
        .collect();
    let mut c = Connection::new("1".into(), "AC1");
    let mut passed = usize::from(apply_ip(&p, &mut c, true).is_ok());
    let mut c = Connection::new("2".into(), "AC1");
    passed += usize::from(apply_fqdn(&p, &mut c, true).is_ok());
    (names, passed)
}

// ---- /v2/ips and /v2/fqdns ----

/// Telnyx's 10015 for a value it cannot take.
fn bad_value(field: &str, detail: &str) -> ApiError {
    ApiError::param("10015", "Invalid value", field, detail.to_owned())
}

/// One kind of a connection's address, served by the same handlers.
pub(super) struct Entries {
    kind: SipKind,
    /// The kind of connection they belong to.
    connection: ConnectionKind,
    /// `ip` or `fqdn`: the record type, and how errors name one.
    record_type: &'static str,
    /// The fields `filter[…]` matches.
    filters: &'static [&'static str],
    /// An entry's fields from a body over the earlier ones: its name (unique within its
    /// connection) and fields.
    read: ReadEntry,
}

/// How a kind of entry reads a body over its earlier fields: its name and fields.
type ReadEntry = fn(&Params, Option<Value>) -> Result<(String, Value), ApiError>;

/// `ip_address` (IPv4 or IPv6, a host's) and `port` (5060 unless given).
fn read_ip(p: &Params, earlier: Option<Value>) -> Result<(String, Value), ApiError> {
    let mut v = earlier.unwrap_or_else(|| json!({"port": 5060}));
    let ip = match p.str("ip_address")? {
        Some(ip) => ip.to_owned(),
        None => (v["ip_address"].as_str().map(str::to_owned))
            .ok_or_else(|| ApiError::missing("ip_address"))?,
    };
    let address: std::net::IpAddr = (ip.parse())
        .map_err(|_| bad_value("ip_address", &format!("'{ip}' is no IPv4 or IPv6 address.")))?;
    if address.is_unspecified() || address.is_multicast() {
        return Err(bad_value(
            "ip_address",
            "'ip_address' must be a host's address.",
        ));
    }
    v["ip_address"] = json!(address.to_string());
    if let Some(port) = p.int("port", 1..=65535)? {
        v["port"] = json!(port);
    }
    Ok((format!("{address}:{}", v["port"]), v))
}

/// `fqdn` (a host name), `dns_record_type` (`a`: its A records; SRV is not looked up here)
/// and `port` (5060 unless given).
fn read_fqdn(p: &Params, earlier: Option<Value>) -> Result<(String, Value), ApiError> {
    let mut v = earlier.unwrap_or_else(|| json!({"port": 5060, "dns_record_type": "a"}));
    if let Some(kind) = p.str("dns_record_type")? {
        if kind != "a" {
            return Err(bad_value(
                "dns_record_type",
                "Only 'a' records are looked up by Switchboard (give a port).",
            ));
        }
    } else if v.get("fqdn").is_none() {
        return Err(ApiError::missing("dns_record_type"));
    }
    let name = match p.str("fqdn")? {
        Some(f) => f.to_ascii_lowercase(),
        None => (v["fqdn"].as_str().map(str::to_owned)).ok_or_else(|| ApiError::missing("fqdn"))?,
    };
    let good = !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !good {
        return Err(bad_value("fqdn", &format!("'{name}' is no host name.")));
    }
    v["fqdn"] = json!(name);
    if let Some(port) = p.int("port", 1..=65535)? {
        v["port"] = json!(port);
    }
    Ok((format!("{name}:{}", v["port"]), v))
}

pub(super) const IPS: Entries = Entries {
    kind: SipKind::ConnectionIp,
    connection: ConnectionKind::Ip,
    record_type: "ip",
    filters: &["ip_address", "port"],
    read: read_ip,
};

pub(super) const FQDNS: Entries = Entries {
    kind: SipKind::ConnectionFqdn,
    connection: ConnectionKind::Fqdn,
    record_type: "fqdn",
    filters: &["fqdn", "port", "dns_record_type"],
    read: read_fqdn,
};

impl Entries {
    /// The routes: `{collection}` (list, create) and `{collection}/{id}` (read, PATCH,
    /// delete).
    pub(super) fn routes(&'static self, collection: &str) -> Router<Arc<Telnyx>> {
        type Api = State<Arc<Telnyx>>;
        Router::new()
            .route(
                collection,
                get(
                    move |State(api): Api, Query(q): Query<HashMap<String, String>>, h: HeaderMap| async move {
                        self.list(&api, &authenticate(&api, &h)?, &q)
                    },
                )
                .post(move |State(api): Api, h: HeaderMap, body: Bytes| async move {
                    self.create(&api, &authenticate(&api, &h)?, &body).await
                }),
            )
            .route(
                &format!("{collection}/{{id}}"),
                get(move |State(api): Api, Path(id): Path<String>, h: HeaderMap| async move {
                    let account = authenticate(&api, &h)?;
                    Ok::<_, ApiError>(Json(json!({"data": self.render(&self.find(&api, &account, &id)?)})))
                })
                .patch(
                    move |State(api): Api, Path(id): Path<String>, h: HeaderMap, body: Bytes| async move {
                        self.update(&api, &authenticate(&api, &h)?, &id, &body).await
                    },
                )
                .delete(move |State(api): Api, Path(id): Path<String>, h: HeaderMap| async move {
                    self.delete(&api, &authenticate(&api, &h)?, &id).await
                }),
            )
    }

    fn render(&self, row: &SipObjectRow) -> Value {
        let mut v = json!({
            "record_type": self.record_type,
            "id": row.sid,
            "connection_id": if row.parent.is_empty() { Value::Null } else { Value::from(row.parent.clone()) },
            "created_at": super::events::timestamp(row.created_at),
            "updated_at": super::events::timestamp(row.updated_at),
        });
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&row.body) {
            for (k, f) in fields {
                v[k] = f;
            }
        }
        v
    }

    fn store_error(&self, e: DirectoryError) -> ApiError {
        let what = self.record_type;
        match e {
            DirectoryError::NotFound => ApiError::not_found(format!("No such {what}.")),
            DirectoryError::Taken(_) => {
                bad_value(self.filters[0], &format!("That {what} is already in use."))
            }
            DirectoryError::Full(max) => ApiError::out_of_range(
                self.filters[0],
                format!("A connection holds at most {max} of them."),
            ),
            DirectoryError::Store(e) => ApiError::unprocessable(e.to_string()),
        }
    }

    /// The account's connection of this kind a body names (empty: none).
    fn connection_of(
        &self,
        api: &Telnyx,
        account: &Account,
        p: &Params,
        earlier: &str,
    ) -> Result<String, ApiError> {
        if !p.given("connection_id") {
            return Ok(earlier.to_owned());
        }
        match p.str("connection_id")?.filter(|c| !c.is_empty()) {
            None => Ok(String::new()),
            Some(id) => (api.parts.connections.get(&account.sid, id))
                .filter(|r| r.connection.kind() == self.connection)
                .map(|r| r.connection.id)
                .ok_or_else(|| bad_value("connection_id", &format!("No such connection {id}."))),
        }
    }

    /// An IP address is one connection's, whoever's: otherwise a call from it would be two
    /// tenants' at once.
    fn check_free(
        &self,
        api: &Telnyx,
        fields: &Value,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(ip) = fields["ip_address"].as_str().and_then(|ip| ip.parse().ok()) else {
            return Ok(());
        };
        match api.parts.sip_trunks.address_holder(ip) {
            Some(holder) if Some(holder.as_str()) != except => {
                Err(self.store_error(DirectoryError::Taken(String::new())))
            }
            _ => Ok(()),
        }
    }

    fn find(&self, api: &Telnyx, account: &Account, id: &str) -> Result<SipObjectRow, ApiError> {
        (api.parts
            .sip_trunks
            .addresses(&account.sid, self.kind)
            .into_iter())
        .find(|r| r.sid == id)
        .ok_or_else(|| ApiError::not_found(format!("No {} {id}.", self.record_type)))
    }

    /// `GET`, `filter[connection_id]` and the kind's own filters, oldest first.
    fn list(
        &self,
        api: &Telnyx,
        account: &Account,
        query: &HashMap<String, String>,
    ) -> Result<Json<Value>, ApiError> {
        let page = Page::read(query)?;
        let rows: Vec<Value> = (api
            .parts
            .sip_trunks
            .addresses(&account.sid, self.kind)
            .iter())
        .map(|r| self.render(r))
        .filter(|v| {
            (["connection_id"].iter().chain(self.filters)).all(|key| {
                query
                    .get(&format!("filter[{key}]"))
                    .is_none_or(|want| match &v[*key] {
                        Value::String(s) => s == want,
                        Value::Number(n) => want.parse::<u64>().ok() == n.as_u64(),
                        _ => false,
                    })
            })
        })
        .collect();
        Ok(Json(page.of(&rows, Value::clone)))
    }

    async fn create(
        &self,
        api: &Telnyx,
        account: &Account,
        body: &[u8],
    ) -> Result<Json<Value>, ApiError> {
        let p = Params::parse(body)?;
        let (name, fields) = (self.read)(&p, None)?;
        let connection = self.connection_of(api, account, &p, "")?;
        self.check_free(api, &fields, None)?;
        let row = (api.parts.sip_trunks)
            .add_address(
                &account.sid,
                (self.kind, &connection),
                &name,
                fields.to_string(),
                MAX_ADDRESSES,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Json(json!({"data": self.render(&row)})))
    }

    async fn update(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
        body: &[u8],
    ) -> Result<Json<Value>, ApiError> {
        let row = self.find(api, account, id)?;
        let p = Params::parse(body)?;
        let earlier = serde_json::from_str(&row.body).ok();
        let (name, fields) = (self.read)(&p, earlier)?;
        let connection = self.connection_of(api, account, &p, &row.parent)?;
        self.check_free(api, &fields, Some(&row.sid))?;
        let row = (api.parts.sip_trunks)
            .change_address(&row, &connection, &name, fields.to_string())
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Json(json!({"data": self.render(&row)})))
    }

    async fn delete(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
    ) -> Result<Json<Value>, ApiError> {
        let row = self.find(api, account, id)?;
        (api.parts
            .sip_trunks
            .remove_address(&account.sid, &row.sid)
            .await)
            .map_err(|e| self.store_error(e))?;
        Ok(Json(json!({"data": self.render(&row)})))
    }
}
