//! ONNX Runtime, loaded once per process from the shared library scripts/install-speech.sh
//! puts under the speech folder (`lib/libonnxruntime.so`, from the `onnxruntime` wheel): the
//! recogniser and the neural voice share it.

use super::SpeechError;
use ort::environment::Environment;
use std::path::Path;
use std::sync::OnceLock;

/// Where the library is, under the speech folder.
pub const LIBRARY: &str = "lib/libonnxruntime.so";

/// The environment, made on first use from `dir`'s library (the library can be loaded only
/// once: a later call with another folder gets the first one's).
pub fn environment(dir: &Path) -> Result<&'static Environment, SpeechError> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = dir.join(LIBRARY);
        ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?
            .with_name("switchboard")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| SpeechError::Unavailable(e.clone()))
}

/// A session on one thread (two intra-op threads were slower than one on two cores, and the
/// callers give each worker its own sessions).
pub fn session(dir: &Path, model: &Path) -> Result<ort::session::Session, SpeechError> {
    let failed = |e: ort::Error| SpeechError::Failed(format!("{}: {e}", model.display()));
    ort::session::Session::builder(environment(dir)?)
        .map_err(failed)?
        .with_intra_threads(1)
        .map_err(|e| failed(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| failed(e.into()))?
        .commit_from_file(model)
        .map_err(failed)
}
