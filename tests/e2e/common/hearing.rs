//! What the local recogniser hears in audio a test captured (the model from
//! scripts/install-speech.sh, as the server uses it). Apart from the voices that speak the
//! phrases (`voices.rs`), which the media crate's tests share without linking the recogniser.

use super::voices::speech_dir;

/// What the local engine hears in 8 kHz audio.
pub fn recognise(rt: &tokio::runtime::Runtime, heard: &[i16]) -> String {
    let model = switchboard_speech::moonshine::Model::find(&speech_dir()).unwrap();
    let pool = switchboard_speech::Pool::start(model.factory().unwrap(), 1, 1, false);
    rt.block_on(async {
        let mut up = switchboard_media::resample::Upsampler::new(16000);
        let mut wide = Vec::new();
        for c in heard.chunks(160) {
            let mut f = [0i16; 160];
            f[..c.len()].copy_from_slice(c);
            wide.extend(up.frame(&f).map(|s| s as f32 / 32768.0));
        }
        pool.recognize(wide.into())
            .unwrap()
            .await
            .unwrap()
            .unwrap()
            .text
    })
}
