//! The web console, served by the binary: a page, its script and its style, embedded at build
//! time (no Node build, nothing to install beside the binary). The page is a client of the
//! APIs an application uses — the provider REST API, the call events of
//! [`super::live`] and the live socket — so it holds no logic of its own on the server side.
//! Not an API: `/openapi.json` does not describe it.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const PHONE: &str = include_str!("phone.js");
const STYLE: &str = include_str!("console.css");

pub fn router() -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console/phone.js",
            get(|| async { asset("text/javascript; charset=utf-8", PHONE) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// An embedded file. The page runs with the account's credentials, so it may not be framed
/// by another site, and it loads nothing but its own files.
fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' blob:; media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
