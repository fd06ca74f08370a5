//! Switchboard's media engine. It knows RTP and audio, nothing of SIP or HTTP.
//!
//! The hot path is the relay: a packet arrives in a pooled buffer, its header is rewritten in
//! place and it leaves from the bridged endpoint's socket, with no decode, copy or allocation
//! (G.711 law conversion is a table lookup over the payload where it lies).

pub mod amd;
pub mod conference;
pub mod decode;
pub mod denoise;
pub mod dtmf;
mod endpoint_media;
mod engine;
mod framer;
pub mod g711;
pub mod health;
mod kernel;
pub mod latch;
pub mod mp3;
pub mod opus;
pub mod ports;
pub mod prompt;
pub mod record;
pub mod relay;
pub mod resample;
pub mod rtp;
pub mod silence;
pub mod srtp;
pub mod stats;
mod sys;
pub mod tone;
pub mod webrtc;

pub use endpoint_media::{FRAME, Frame, MAX_TAPS, TapFrame, TapId, TapSink, TapTracks};
pub use engine::{
    BIND_AHEAD, Endpoint, EndpointConfig, EndpointId, MediaCommand, MediaConfig, MediaEngine,
    MediaError, MediaEvent, MediaOp, SrtpKeys,
};
pub use g711::Law;
pub use latch::SourcePolicy;
pub use prompt::{Clip, GrowingClip, Part, PlaybackEnd, Prompt};
pub use relay::PayloadMap;
pub use stats::EndpointStats;
