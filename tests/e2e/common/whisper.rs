//! A real multilingual recogniser for the tests, as an operator runs one beside Switchboard:
//! OpenAI's Whisper base served over the OpenAI audio API by faster-whisper-server, both
//! installed by scripts/install-speech.sh under the speech folder's whisper/. Not a stand-in:
//! what it hears is what Whisper makes of the audio and the language it is told.

use super::voices::speech_dir;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server, on `ip` and a free port; killed when dropped.
pub struct Whisper {
    child: Child,
    /// `…/v1/audio/transcriptions`.
    pub url: String,
    log: tempfile::NamedTempFile,
}

/// How long the server may take to start and load its model (a few seconds here).
const STARTUP: Duration = Duration::from_secs(120);

impl Whisper {
    /// Starts the server and waits until it has transcribed once (its model loads on the
    /// first request: that wait is not the first caller's). The port is found free and then
    /// given to the server, so another process may take it in between: a server that could
    /// not bind it is started again on another.
    pub fn start(ip: &str) -> Whisper {
        for _ in 0..3 {
            match Self::start_on_a_free_port(ip) {
                Ok(server) => return server,
                Err(log) if log.contains("address already in use") => continue,
                Err(log) => panic!("the Whisper server exited:\n{log}"),
            }
        }
        panic!("the Whisper server found no free port on {ip}");
    }

    /// The server started, or its log when it exited.
    fn start_on_a_free_port(ip: &str) -> Result<Whisper, String> {
        let dir = speech_dir().join("whisper");
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(dir.join("venv/bin/python"))
            .args(["-m", "faster_whisper_server", "--host", ip, "--port"])
            .arg(port.to_string())
            .arg(dir.join("model"))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("faster-whisper-server (scripts/install-speech.sh installs it)");
        let mut server = Whisper {
            child,
            url: format!("http://{ip}:{port}/v1/audio/transcriptions"),
            log,
        };
        let deadline = Instant::now() + STARTUP;
        let quiet = vec![0i16; 8000];
        loop {
            if server.child.try_wait().unwrap().is_some() {
                return Err(server.log());
            }
            if server.transcribe(&quiet, None).is_ok() {
                return Ok(server);
            }
            assert!(
                Instant::now() < deadline,
                "the Whisper server did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// What the server hears in `samples` (8 kHz), told `language` (ISO 639-1) or left to
    /// guess it, as the server answers (`verbose_json`: its text and the language it used).
    pub fn transcribe(
        &self,
        samples: &[i16],
        language: Option<&str>,
    ) -> Result<(String, String), String> {
        let wav = switchboard_media::record::wav_mono_at(samples, 8000);
        // reqwest is built without a TLS provider of its own (the server's is ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let file = reqwest::multipart::Part::bytes(wav).file_name("u.wav");
            let mut form = reqwest::multipart::Form::new()
                .part("file", file)
                .text("response_format", "verbose_json");
            if let Some(language) = language {
                form = form.text("language", language.to_owned());
            }
            let response = reqwest::Client::new()
                .post(&self.url)
                .multipart(form)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let text = response.text().await.map_err(|e| e.to_string())?;
            let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            Ok((
                body["text"].as_str().unwrap_or_default().trim().to_owned(),
                body["language"].as_str().unwrap_or_default().to_owned(),
            ))
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Whisper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
