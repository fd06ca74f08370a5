//! The call's vocabulary: its status, which way it goes and who ended it, with the names
//! Twilio uses (the store keeps them as these strings; every dialect translates from them).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Final (or current) status of a call, with the names Twilio uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub const ALL: [CallStatus; 9] = [
        Self::Queued,
        Self::Initiated,
        Self::Ringing,
        Self::InProgress,
        Self::Completed,
        Self::Busy,
        Self::NoAnswer,
        Self::Failed,
        Self::Canceled,
    ];
}

impl CallStatus {
    /// A final status: the call is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::Queued | Self::Initiated | Self::Ringing | Self::InProgress
        )
    }
}

/// Which way a call goes, with Twilio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Arrived from a trunk or phone.
    Inbound,
    /// Placed by an application through the API.
    OutboundApi,
    /// Dialed from another call (it has a parent).
    OutboundDial,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::OutboundApi => "outbound-api",
            Self::OutboundDial => "outbound-dial",
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Inbound, Self::OutboundApi, Self::OutboundDial]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown call direction {s:?}"))
    }
}

impl FromStr for CallStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown call status {s:?}"))
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    Caller,
    Callee,
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
            Self::System => "system",
        }
    }
}

impl FromStr for HangupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "caller" => Ok(Self::Caller),
            "callee" => Ok(Self::Callee),
            "system" => Ok(Self::System),
            _ => Err(format!("unknown hangup side {s:?}")),
        }
    }
}
