//! Transaction identity (RFC 3261 §17.1.3 for clients, §17.2.3 for servers).

use crate::message::{Headers, Method};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    /// The branch, or for an RFC 2543 peer (no magic cookie) a digest of the fields that
    /// identify its transaction.
    id: String,
    /// Servers also match on the sent-by of the top Via; empty for clients.
    sent_by: String,
    /// The method, with ACK folded into INVITE (an ACK matches the INVITE transaction).
    method: u8,
    server: bool,
}

fn method_code(method: Method) -> u8 {
    match method {
        Method::Ack => Method::Invite as u8,
        m => m as u8,
    }
}

impl TxKey {
    /// Key of a server transaction for a received request.
    pub fn server(method: Method, headers: &Headers) -> Option<Self> {
        let via = headers.top_via()?;
        let sent_by = via.sent_by().to_ascii_lowercase();
        let id = match via.rfc3261_branch() {
            Some(branch) => branch.to_owned(),
            // RFC 2543 fallback (§17.2.3): Call-ID, From tag, CSeq number and top Via.
            None => format!(
                "2543|{}|{}|{}|{}",
                headers.call_id()?,
                headers.from_tag().unwrap_or_default(),
                headers.cseq()?.seq,
                via.branch.as_deref().unwrap_or_default()
            ),
        };
        Some(Self {
            id,
            sent_by,
            method: method_code(method),
            server: true,
        })
    }

    /// Key of a client transaction, from the branch we put in the top Via and the CSeq method.
    pub fn client(headers: &Headers) -> Option<Self> {
        let via = headers.top_via()?;
        let method = headers.cseq()?.method;
        Some(Self {
            id: via.branch?,
            sent_by: String::new(),
            method: method_code(method),
            server: false,
        })
    }

    /// The server key of the INVITE a CANCEL refers to (same branch and sent-by, §9.2).
    pub fn cancelled_invite(&self) -> Self {
        Self {
            method: Method::Invite as u8,
            ..self.clone()
        }
    }
}
