//! Audio fetched over http(s), kept on disk by URL and revalidated with its ETag or
//! Last-Modified, the way Twilio caches `<Play>` URLs: the body crosses the network once while
//! the server answers 304.

use super::PromptError;
use super::disk::DiskBudget;
use crate::infra::egress::{Clients, Reach};
use crate::infra::secret::redact_url;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{debug, warn};

/// Larger bodies are refused (an hour of 8 kHz PCM16 WAV is 58 MB).
pub const MAX_BODY: usize = 64 << 20;

/// A fetched body and the version it is, for keying what is decoded from it.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The ETag or Last-Modified it came with; empty when the server gave neither.
    pub version: String,
    /// "wav" or "mp3" when the URL or Content-Type says so.
    pub extension: Option<&'static str>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    content_type: Option<String>,
}

pub struct UrlCache {
    dir: PathBuf,
    http: Clients,
    disk: Arc<DiskBudget>,
}

impl UrlCache {
    pub fn new(dir: PathBuf, http: Clients, disk: Arc<DiskBudget>) -> Self {
        Self { dir, http, disk }
    }

    /// Fetches `url` (or revalidates the copy on disk) as far as `reach` lets it.
    pub async fn get(&self, url: &str, reach: Reach) -> Result<Fetched, PromptError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| PromptError::BadSource(format!("{url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PromptError::BadSource(format!(
                "{url}: only http and https URLs can be played"
            )));
        }
        let key = hex::encode(Sha256::digest(url.as_bytes()));
        let (body_path, meta_path) = (
            self.dir.join(format!("{key}.body")),
            self.dir.join(format!("{key}.json")),
        );
        let cached = read_meta(&meta_path)
            .await
            .filter(|m| m.url == url && body_path.exists());

        let http = (self.http)
            .for_url(url, reach)
            .map_err(|e| PromptError::BadSource(format!("{url}: {e}")))?;
        let mut request = http.get(parsed);
        if let Some(meta) = &cached {
            if let Some(etag) = &meta.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &meta.last_modified {
                request = request.header(IF_MODIFIED_SINCE, lm);
            }
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                // The server is away: what we have is better than silence.
                if let Some(meta) = cached {
                    warn!(url = %crate::infra::secret::redact_url(url), error = %e, "fetch failed; playing the cached copy");
                    return from_disk(&body_path, meta).await;
                }
                return Err(PromptError::Fetch(format!(
                    "GET {}: {}",
                    redact_url(url),
                    crate::infra::webhook::client::error_chain(&e)
                )));
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && let Some(meta) = cached
        {
            debug!(url = %crate::infra::secret::redact_url(url), "not modified; playing the cached copy");
            return from_disk(&body_path, meta).await;
        }
        if !status.is_success() {
            if let (Some(meta), true) = (cached, status.is_server_error()) {
                warn!(url = %crate::infra::secret::redact_url(url), %status, "fetch failed; playing the cached copy");
                return from_disk(&body_path, meta).await;
            }
            return Err(PromptError::Fetch(format!(
                "GET {}: HTTP {status}",
                redact_url(url)
            )));
        }

        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let meta = Meta {
            url: url.to_owned(),
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
            content_type: header(CONTENT_TYPE),
        };
        let storable = (meta.etag.is_some() || meta.last_modified.is_some())
            && !header(CACHE_CONTROL).is_some_and(|c| c.contains("no-store"));
        let body = read_capped(response, "GET", url).await?;
        if storable {
            match store(&self.dir, &body_path, &meta_path, &body, &meta).await {
                Ok(()) => self.disk.wrote(body.len() as u64),
                Err(e) => {
                    warn!(url = %crate::infra::secret::redact_url(url), error = %e, "cannot cache the fetched audio")
                }
            }
        }
        Ok(Fetched {
            extension: extension(url, meta.content_type.as_deref()),
            version: version(&meta),
            body,
        })
    }
}

/// A response's body, refused past [`MAX_BODY`] (audio fetched, or rendered by the
/// operator's voice engine); `method` and `url` name the request in errors.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    method: &str,
    url: &str,
) -> Result<Vec<u8>, PromptError> {
    let too_big = || {
        PromptError::Fetch(format!(
            "{method} {}: the body is over {MAX_BODY} bytes",
            redact_url(url)
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| PromptError::Fetch(format!("{method} {}: {e}", redact_url(url))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_meta(path: &Path) -> Option<Meta> {
    let text = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&text).ok()
}

async fn from_disk(body_path: &Path, meta: Meta) -> Result<Fetched, PromptError> {
    let body = tokio::fs::read(body_path)
        .await
        .map_err(|e| PromptError::Fetch(format!("cached {}: {e}", meta.url)))?;
    DiskBudget::touch(body_path);
    Ok(Fetched {
        extension: extension(&meta.url, meta.content_type.as_deref()),
        version: version(&meta),
        body,
    })
}

/// Writes body then metadata, each through a rename, so a crash leaves no half entry that
/// the metadata vouches for.
async fn store(
    dir: &Path,
    body_path: &Path,
    meta_path: &Path,
    body: &[u8],
    meta: &Meta,
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let _ = tokio::fs::remove_file(meta_path).await;
    let tmp = body_path.with_extension("body.tmp");
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, body_path).await?;
    let tmp = meta_path.with_extension("json.tmp");
    tokio::fs::write(&tmp, serde_json::to_vec(meta)?).await?;
    tokio::fs::rename(&tmp, meta_path).await
}

fn version(meta: &Meta) -> String {
    meta.etag
        .clone()
        .or_else(|| meta.last_modified.clone())
        .unwrap_or_default()
}

fn extension(url: &str, content_type: Option<&str>) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let by_type = content_type.map(|t| t.to_ascii_lowercase());
    match by_type.as_deref() {
        Some(t) if t.contains("mpeg") || t.contains("mp3") => Some("mp3"),
        Some(t) if t.contains("wav") => Some("wav"),
        _ if path.ends_with(".mp3") => Some("mp3"),
        _ if path.ends_with(".wav") => Some("wav"),
        _ => None,
    }
}
