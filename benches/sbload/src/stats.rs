//! What a run counted, per worker and in all.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub started: u64,
    pub answered: u64,
    /// Calls that went through: answered, held, hung up with a 2xx to the BYE.
    pub ok: u64,
    pub failed: u64,
    /// Calls answered 503 where a refusal is an answer (overload runs).
    pub refused: u64,
    pub timeouts: u64,
    pub retrans: u64,
    pub send_errors: u64,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    /// Packets from no call of ours (late after the call ended, or from elsewhere).
    pub rtp_stray: u64,
    /// RTP ticks that came later than the next was due.
    pub late_ticks: u64,
    /// Sum of INVITE-to-2xx times, ms.
    pub setup_ms: f64,
    pub elapsed: f64,
    pub cpu: f64,
    /// Failures by status (0: the server hung up, 408: no answer in 64·T1).
    pub failures: BTreeMap<u16, u64>,
}

impl Stats {
    /// A call failed, with `code`.
    pub fn fail(&mut self, code: u16) {
        self.failed += 1;
        *self.failures.entry(code).or_default() += 1;
    }

    pub fn add(&mut self, o: &Stats) {
        self.started += o.started;
        self.answered += o.answered;
        self.ok += o.ok;
        self.failed += o.failed;
        self.refused += o.refused;
        self.timeouts += o.timeouts;
        self.retrans += o.retrans;
        self.send_errors += o.send_errors;
        self.rtp_sent += o.rtp_sent;
        self.rtp_received += o.rtp_received;
        self.rtp_stray += o.rtp_stray;
        self.late_ticks += o.late_ticks;
        self.setup_ms += o.setup_ms;
        self.elapsed = self.elapsed.max(o.elapsed);
        self.cpu += o.cpu;
        for (code, n) in &o.failures {
            *self.failures.entry(*code).or_default() += n;
        }
    }
}

/// The callee's side of a run.
#[derive(Debug, Default, Clone)]
pub struct UasStats {
    pub invites: u64,
    pub byes: u64,
    /// 200s sent again for want of an ACK.
    pub retrans: u64,
    /// Calls whose 200 was never ACKed.
    pub unacked: u64,
    pub rtp_echoed: u64,
    pub send_errors: u64,
    pub cpu: f64,
}
