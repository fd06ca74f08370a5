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

/// How a session spends memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// ONNX Runtime's defaults (the neural voice: one session per process).
    Default,
    /// For a model loaded once per worker (the recogniser), whose weights are folded at
    /// install time into a `.weights` file ONNX Runtime maps and computes from in place, so
    /// the workers share them. What each worker keeps of its own is its graph and its
    /// tensors, and two defaults of ONNX Runtime are off to keep that small:
    /// - its memory arena keeps every block it ever grew to for the life of the session;
    /// - prepacking keeps a copy of each MatMul's weights in the GEMM kernel's layout (a copy
    ///   per worker, out of the shared file); a decoder step multiplies one token's row by
    ///   them, where the packed layout bought nothing (real-time factor 0.146 without, 0.157
    ///   with, same sitting and transcripts).
    Lean,
}

/// A session on one thread (two intra-op threads were slower than one on two cores, and the
/// callers give each worker its own sessions).
pub fn session(
    dir: &Path,
    model: &Path,
    memory: Memory,
) -> Result<ort::session::Session, SpeechError> {
    let failed = |e: ort::Error| SpeechError::Failed(format!("{}: {e}", model.display()));
    let builder = ort::session::Session::builder(environment(dir)?)
        .map_err(failed)?
        .with_intra_threads(1)
        .map_err(|e| failed(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| failed(e.into()))?;
    let mut builder = match memory {
        Memory::Default => builder,
        Memory::Lean => builder
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| failed(e.into()))?
            .with_prepacking(false)
            .map_err(|e| failed(e.into()))?,
    };
    builder.commit_from_file(model).map_err(failed)
}

/// Gives the allocator's free memory back to the system. A session's load frees more than it
/// keeps (the model's parsed graph, the optimizer's rewrites), a recognition frees its
/// tensors when it ends, and glibc would otherwise keep each thread's heap at its high-water
/// mark for the life of the process.
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
