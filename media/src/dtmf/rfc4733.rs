//! RFC 4733 telephone-events: the 4-byte event payload, a receiver that turns a stream of event
//! packets into digits (once each, whatever is lost or retransmitted), and the packet schedule
//! of a digit we send.

use super::{Digit, DtmfMethod, DtmfReport};

/// A parsed event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In timestamp units (samples at 8 kHz).
    pub duration: u16,
}

impl EventPayload {
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn write(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = if self.end { 0x80 } else { 0 } | (self.volume & 0x3f);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

/// Turns event packets into one report per digit, at its end.
///
/// Every packet of an event carries the event's start timestamp. The end packet is sent three
/// times; an event whose end packets were all lost is reported when the next one starts or
/// [`Rfc4733Receiver::flush`] is called.
#[derive(Debug, Default)]
pub struct Rfc4733Receiver {
    /// Timestamp, event and latest duration of the event in progress.
    current: Option<(u32, u8, u16)>,
    /// Timestamp of the last event reported, to ignore its repeated end packets.
    reported: Option<u32>,
}

impl Rfc4733Receiver {
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<DtmfReport> {
        let p = EventPayload::parse(payload)?;
        if self.reported == Some(timestamp) {
            return None;
        }
        let mut earlier = None;
        if let Some((ts, event, duration)) = self.current
            && ts != timestamp
        {
            // A new event while the previous never ended: report that one now.
            earlier = report(event, duration);
            self.reported = Some(ts);
            self.current = None;
        }
        if p.end {
            self.current = None;
            self.reported = Some(timestamp);
            return report(p.event, p.duration).or(earlier);
        }
        self.current = Some((timestamp, p.event, p.duration));
        earlier
    }

    /// Reports an event whose end never came (the stream stopped).
    pub fn flush(&mut self) -> Option<DtmfReport> {
        let (ts, event, duration) = self.current.take()?;
        self.reported = Some(ts);
        report(event, duration)
    }
}

fn report(event: u8, duration: u16) -> Option<DtmfReport> {
    Some(DtmfReport {
        digit: Digit::from_event(event)?,
        duration_ms: duration as u32 / 8,
        method: DtmfMethod::Rfc4733,
    })
}

/// The packets that send one digit: one per `ptime_ms` while it lasts, all with the event's
/// start timestamp and a growing duration, the first with the marker bit, the last three
/// (identical) with the end bit (RFC 4733 §2.5.1).
pub fn send_schedule(
    digit: Digit,
    duration_ms: u32,
    ptime_ms: u32,
) -> impl Iterator<Item = (EventPayload, bool)> {
    let step = (ptime_ms * 8) as u16;
    let total = (duration_ms * 8).min(u16::MAX as u32) as u16;
    let steps = total.div_ceil(step).max(1);
    let event = digit.event();
    (1..=steps)
        .map(move |i| {
            (
                EventPayload {
                    event,
                    end: false,
                    volume: 10,
                    duration: (i * step).min(total),
                },
                i == 1,
            )
        })
        .chain((0..3).map(move |_| {
            (
                EventPayload {
                    event,
                    end: true,
                    volume: 10,
                    duration: total,
                },
                false,
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(digit: Digit, ms: u32) -> Vec<[u8; 4]> {
        send_schedule(digit, ms, 20)
            .map(|(p, _)| {
                let mut b = [0; 4];
                p.write(&mut b);
                b
            })
            .collect()
    }

    #[test]
    fn schedule_grows_and_ends_three_times() {
        let s: Vec<_> = send_schedule(Digit::new('5').unwrap(), 100, 20).collect();
        assert_eq!(s.len(), 5 + 3);
        assert!(s[0].1, "marker on the first packet");
        assert_eq!(
            s.iter().map(|(p, _)| p.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800, 800]
        );
        assert!(s[5..].iter().all(|(p, _)| p.end && p.event == 5));
    }

    #[test]
    fn receiver_reports_each_digit_once() {
        let mut rx = Rfc4733Receiver::default();
        let mut got = Vec::new();
        for (ts, digit) in [(1000u32, '1'), (5000, '#')] {
            for p in packets(Digit::new(digit).unwrap(), 80) {
                got.extend(rx.on_packet(ts, &p));
            }
        }
        assert_eq!(
            got.iter()
                .map(|r| (r.digit.as_char(), r.duration_ms))
                .collect::<Vec<_>>(),
            [('1', 80), ('#', 80)]
        );
    }

    #[test]
    fn lost_end_packets_report_at_the_next_event_or_flush() {
        let mut rx = Rfc4733Receiver::default();
        let p = packets(Digit::new('7').unwrap(), 60);
        assert!(rx.on_packet(10, &p[0]).is_none());
        assert!(rx.on_packet(10, &p[1]).is_none());
        // The end packets of '7' never come; '8' starts.
        let next = packets(Digit::new('8').unwrap(), 40);
        let r = rx.on_packet(99, &next[0]).unwrap();
        assert_eq!((r.digit.as_char(), r.duration_ms), ('7', 40));
        assert_eq!(rx.flush().unwrap().digit.as_char(), '8');
        assert!(rx.flush().is_none());
        assert!(rx.on_packet(1, &[1, 2]).is_none(), "short payload ignored");
    }
}
