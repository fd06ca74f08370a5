//! DTLS-SRTP (RFC 5763, 5764) for one WebRTC leg: the handshake over webrtc-rs's sans-IO
//! `rtc-dtls`, the peer's certificate held to the fingerprint its SDP gave (the only thing that
//! authenticates it: WebRTC certificates are self-signed), and the SRTP master keys exported
//! from the handshake. We are the DTLS server: we answer `a=setup:passive` to a browser's
//! `actpass` and offer `actpass`, to which browsers answer `active`.

use super::{Fingerprint, Identity, WebRtcError};
use crate::SrtpKeys;
use crate::srtp::{MasterKey, Suite};
use bytes::BytesMut;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The content type of a DTLS handshake record (RFC 6347 §4.1).
const HANDSHAKE: u8 = 22;

/// RFC 5764 §4.2's exporter label.
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// What a datagram or a timeout did to the handshake.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Nothing to tell (yet).
    Pending,
    /// The handshake completed with the peer whose certificate matches: these are the keys.
    Secured(SrtpKeys),
    /// The handshake failed: the leg has no media.
    Failed,
}

/// The server side of one leg's DTLS association. It runs over the ICE transport, not over
/// one address: a browser may move to another candidate pair mid-handshake (it tries several
/// and nominates one), so records from any proved address feed the one association (known to
/// `rtc-dtls` by a fixed key), and what it sends goes where the browser now is.
pub(super) struct Dtls {
    endpoint: Endpoint,
    /// The key the association is known by inside `endpoint`: the first address that sent a
    /// handshake record.
    peer: Option<SocketAddr>,
    done: bool,
    /// Our last flight of the handshake, and how often it was sent again: `rtc-dtls` 0.21 does
    /// not answer a peer's retransmitted flight with ours (RFC 6347 §4.2.4) and stops its own
    /// timer, so a lost server flight stalled the handshake for good (found by a 200-call
    /// burst; `a_lost_server_flight_is_sent_again_when_the_browser_repeats_its_own`).
    last_flight: Vec<Vec<u8>>,
    repeats: u32,
}

/// How often our last flight is sent again for a peer that keeps repeating its own.
const MAX_REPEATS: u32 = 8;

impl Dtls {
    pub(super) fn new(
        local: SocketAddr,
        identity: &Identity,
        expected: &Fingerprint,
    ) -> Result<Self, WebRtcError> {
        let expected = expected.clone();
        let config = ConfigBuilder::default()
            .with_crypto_provider(identity.crypto.clone())
            .with_certificates(vec![identity.certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
            ])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            // The peer's certificate is self-signed: it is checked against the SDP's
            // fingerprint here instead of against a chain.
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(Arc::new(move |certs: &[Vec<u8>], _: &[_]| {
                match certs.first() {
                    Some(der) if expected.matches(der) => Ok(()),
                    _ => Err(rtc_shared::error::Error::Other(
                        "the peer's certificate does not match its SDP fingerprint".into(),
                    )),
                }
            })))
            .build(false, None)
            .map_err(|e| WebRtcError::Dtls(e.to_string()))?;
        Ok(Self {
            endpoint: Endpoint::new(
                local,
                rtc_shared::TransportProtocol::UDP,
                Some(Arc::new(config)),
            ),
            peer: None,
            done: false,
            last_flight: Vec::new(),
            repeats: 0,
        })
    }

    /// A DTLS datagram from `src` (an address the peer's connectivity checks proved); what to
    /// send back goes to `out`, for the address the browser uses now.
    pub(super) fn input(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Progress {
        let key = *self.peer.get_or_insert(src);
        let events = self.endpoint.read(now, key, None, BytesMut::from(data));
        let before = out.len();
        self.drain(out);
        if !self.done {
            if out.len() > before {
                self.last_flight = out[before..].to_vec();
                self.repeats = 0;
            } else if data.first() == Some(&HANDSHAKE) && self.repeats < MAX_REPEATS {
                // The peer repeated its flight: ours was lost.
                self.repeats += 1;
                out.extend(self.last_flight.iter().cloned());
            }
        }
        let events = match events {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(peer = %src, error = %e, "DTLS");
                return self.fail();
            }
        };
        let mut progress = Progress::Pending;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete if !self.done => {
                    self.done = true;
                    progress = match self.keys(key) {
                        Some(keys) => Progress::Secured(keys),
                        None => {
                            tracing::warn!(peer = %src, "DTLS: no SRTP profile agreed");
                            Progress::Failed
                        }
                    };
                }
                // A browser closes its association as it hangs up, its BYE on the way: the
                // call ends by that, or by consent lapsing if the BYE never comes.
                EndpointEvent::PeerClosed => {
                    tracing::debug!(peer = %src, "DTLS closed by the peer")
                }
                _ => {}
            }
        }
        progress
    }

    fn fail(&mut self) -> Progress {
        if self.done {
            // A broken record after the handshake: the keys stand.
            Progress::Pending
        } else {
            Progress::Failed
        }
    }

    /// When the handshake next needs a retransmission.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.peer.and_then(|p| self.endpoint.poll_timeout(&p))
    }

    /// Retransmits a flight that went unanswered.
    pub(super) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) -> Progress {
        let Some(peer) = self.peer else {
            return Progress::Pending;
        };
        let result = self.endpoint.handle_timeout(peer, now);
        self.drain(out);
        match result {
            Ok(()) => Progress::Pending,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "DTLS");
                self.fail()
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        while let Some(t) = self.endpoint.poll_transmit() {
            out.push(t.message.to_vec());
        }
    }

    /// The SRTP keys of the completed handshake (RFC 5764 §4.2): the client's write key and
    /// salt are what the peer sends with, the server's what we send with.
    fn keys(&self, peer: SocketAddr) -> Option<SrtpKeys> {
        let state = self.endpoint.get_connection_state(peer)?;
        let suite = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => Suite::AesCm128HmacSha1_80,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => Suite::AesCm128HmacSha1_32,
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Suite::AeadAes128Gcm,
            _ => return None,
        };
        let key_len = 16;
        let salt_len = suite.material_len() - key_len;
        let material = state
            .export_keying_material(EXPORTER_LABEL, &[], 2 * (key_len + salt_len))
            .ok()?;
        let m = material.as_ref();
        let (keys, salts) = m.split_at(2 * key_len);
        let (client_key, server_key) = keys.split_at(key_len);
        let (client_salt, server_salt) = salts.split_at(salt_len);
        let join = |key: &[u8], salt: &[u8]| {
            let mut both = [0u8; 32];
            both[..key_len].copy_from_slice(key);
            both[key_len..key_len + salt_len].copy_from_slice(salt);
            MasterKey::new(suite, &both[..key_len + salt_len])
        };
        Some(SrtpKeys {
            inbound: join(client_key, client_salt)?,
            outbound: join(server_key, server_salt)?,
        })
    }
}
