//! The OpenAPI 3.1 description of Switchboard's own routes (health, metrics, itself, the admin
//! API, the live socket, calls' histories), served at `/openapi.json`. The providers' APIs are the providers' to describe. A test
//! holds it to the routes the code serves: every path and method the routers name is
//! described, and nothing else.

use axum::http::header;
use axum::response::IntoResponse;

/// The description, as written in `openapi.json`.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (path, METHOD) for every `.route("PATH", get(..).put(..))` in `source`.
    fn routes_in(source: &str) -> BTreeSet<(String, String)> {
        let route =
            regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*((?:\.?[a-z]+\([a-z_:]+\)\s*)+)"#)
                .unwrap();
        let method = regex::Regex::new(r"(get|post|put|delete|patch)\(").unwrap();
        let mut out = BTreeSet::new();
        for r in route.captures_iter(source) {
            for m in method.captures_iter(&r[2]) {
                out.insert((r[1].to_owned(), m[1].to_uppercase()));
            }
        }
        out
    }

    /// Every route Switchboard serves for itself is described with its methods, and the
    /// description names no other; each operation says its responses.
    #[test]
    fn the_description_names_every_own_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut described = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses = operation["responses"].as_object();
                assert!(responses.is_some_and(|r| !r.is_empty()), "{path} {method}");
                described.insert((path.clone(), method.to_uppercase()));
            }
        }
        let mut served = routes_in(include_str!("mod.rs"));
        served.extend(routes_in(include_str!("../../operator/admin.rs")));
        served.extend(routes_in(include_str!("../../operator/live.rs")));
        served.extend(routes_in(include_str!("../../operator/call_history.rs")));
        assert!(served.len() >= 10, "the routes were read: {served:?}");
        assert_eq!(described, served);
    }
}
