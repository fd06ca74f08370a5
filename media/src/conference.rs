//! Conference mixing on a media worker: every 20 ms each member's latest frame is summed and
//! each member hears the sum minus itself. Members are endpoints of the worker that hosts the
//! conference (the engine moves them there); their frames reach the mixer through their
//! `EndpointMedia` seats, so mute, noise suppression, DTMF detection,
//! playback to one member (wait or hold music) and per-call recording all keep working.

use crate::endpoint_media::{FRAME, Frame};
use crate::prompt::Clip;
use crate::record::{RecordFeed, Track};

/// Names a conference to the engine; the call core picks the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId(pub u64);

/// One conference on its worker: member slots, an optional recording of the whole mix, and
/// an announcement (a beep, a message) everyone hears over the conversation.
#[derive(Default)]
pub(crate) struct Conference {
    pub(crate) members: Vec<Member>,
    pub(crate) recorder: Option<RecordFeed>,
    /// The clip and how far it has played.
    pub(crate) announcement: Option<(Clip, usize)>,
}

/// A member's slot on the worker and who hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) slot: usize,
    pub(crate) voice: Voice,
}

impl Member {
    pub(crate) fn new(slot: usize) -> Self {
        Self {
            slot,
            voice: Voice::Everyone,
        }
    }
}

/// Who hears a member (Twilio's conference coaching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Voice {
    /// Every other member and the recording.
    Everyone,
    /// A coach: the member in this slot alone; nobody once that member has left (a coach's
    /// words never fall back into the room).
    Coaching(Option<usize>),
}

impl Conference {
    /// One tick of the mix. `said` holds each member's frame for this tick, in member order
    /// (`None` if it sent none); `give` hands a member its mix; the recording gets the sum of
    /// what everyone hears (coaches are not in it).
    pub(crate) fn mix(
        &mut self,
        said: &[Option<Frame>],
        mut give: impl FnMut(usize, Frame),
        now: std::time::Instant,
    ) {
        let mut total = [0i32; FRAME];
        for (member, f) in self.members.iter().zip(said) {
            if let (Voice::Everyone, Some(f)) = (member.voice, f) {
                add(&mut total, f);
            }
        }
        // The announcement is nobody's own voice: everyone hears it.
        if let Some((clip, pos)) = &mut self.announcement {
            let n = FRAME.min(clip.len() - *pos);
            for (t, &s) in total.iter_mut().zip(&clip[*pos..*pos + n]) {
                *t += s as i32;
            }
            *pos += n;
            if *pos >= clip.len() {
                self.announcement = None;
            }
        }
        for (member, own) in self.members.iter().zip(said) {
            let mut heard = total;
            if let (Voice::Everyone, Some(own)) = (member.voice, own) {
                for (h, &s) in heard.iter_mut().zip(own.iter()) {
                    *h -= s as i32;
                }
            }
            // Its coaches, heard by it alone. Coaches are few: a scan of the members beats
            // an index that would have to be kept in step with every join and leave.
            for (coach, whispered) in self.members.iter().zip(said) {
                if let (Voice::Coaching(Some(of)), Some(w)) = (coach.voice, whispered)
                    && of == member.slot
                {
                    add(&mut heard, w);
                }
            }
            give(member.slot, heard.map(clamp));
        }
        if let Some(r) = &mut self.recorder {
            r.feed(Track::Inbound, &total.map(clamp), now);
        }
    }

    /// Makes the member in `slot` a coach of the member in `coached` (`None`: heard by
    /// everyone again). False if `slot` is not a member.
    pub(crate) fn coach(&mut self, slot: usize, coached: Option<usize>) -> bool {
        let Some(member) = self.members.iter_mut().find(|m| m.slot == slot) else {
            return false;
        };
        member.voice = match coached {
            Some(c) => Voice::Coaching(Some(c)),
            None => Voice::Everyone,
        };
        true
    }

    /// Takes the member in `slot` out; its coaches now coach nobody.
    pub(crate) fn remove(&mut self, slot: usize) {
        self.members.retain(|m| m.slot != slot);
        for m in &mut self.members {
            if m.voice == Voice::Coaching(Some(slot)) {
                m.voice = Voice::Coaching(None);
            }
        }
    }
}

fn add(total: &mut [i32; FRAME], frame: &Frame) {
    for (t, &s) in total.iter_mut().zip(frame.iter()) {
        *t += s as i32;
    }
}

fn clamp(x: i32) -> i16 {
    x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn each_member_hears_everyone_but_itself_with_clipping() {
        let mut conf = Conference {
            members: [10, 11, 12].map(Member::new).to_vec(),
            ..Default::default()
        };
        let said = [
            Some([100; FRAME]),
            Some([20_000; FRAME]),
            Some([30_000; FRAME]),
        ];
        let mut heard = HashMap::new();
        conf.mix(
            &said,
            |m, f| {
                heard.insert(m, f);
            },
            std::time::Instant::now(),
        );
        assert_eq!(heard[&10][0], i16::MAX, "20000 + 30000 clips");
        assert_eq!(heard[&11][0], 30_100);
        assert_eq!(heard[&12][0], 20_100);
    }

    #[test]
    fn a_silent_member_hears_everyone_and_a_lone_member_hears_silence() {
        let mut conf = Conference {
            members: [1, 2].map(Member::new).to_vec(),
            ..Default::default()
        };
        let mut heard = HashMap::new();
        conf.mix(
            &[Some([500; FRAME]), None],
            |m, f| {
                heard.insert(m, f);
            },
            std::time::Instant::now(),
        );
        assert_eq!((heard[&1][0], heard[&2][0]), (0, 500));
        conf.members = vec![Member::new(1)];
        conf.mix(
            &[Some([500; FRAME])],
            |m, f| {
                heard.insert(m, f);
            },
            std::time::Instant::now(),
        );
        assert_eq!(heard[&1], [0; FRAME]);
    }

    #[test]
    fn an_announcement_is_heard_by_everyone_until_it_ends() {
        let mut conf = Conference {
            members: [1, 2].map(Member::new).to_vec(),
            announcement: Some((vec![300i16; 200].into(), 0)),
            ..Default::default()
        };
        let mut heard = HashMap::new();
        let mut tick = |conf: &mut Conference| {
            conf.mix(
                &[Some([100; FRAME]), None],
                |m, f| {
                    heard.insert(m, f);
                },
                std::time::Instant::now(),
            );
            (heard[&1], heard[&2])
        };
        let (one, two) = tick(&mut conf);
        assert_eq!((one[0], two[0]), (300, 400));
        let (one, two) = tick(&mut conf);
        assert_eq!(
            (one[39], one[40], two[40]),
            (300, 0, 100),
            "40 samples were left"
        );
        assert!(conf.announcement.is_none());
    }

    #[test]
    fn a_coach_is_heard_by_the_coached_member_alone_and_by_nobody_once_it_left() {
        let mut conf = Conference {
            members: [1, 2, 3].map(Member::new).to_vec(),
            ..Default::default()
        };
        assert!(conf.coach(3, Some(1)));
        let said = [Some([100; FRAME]), Some([20; FRAME]), Some([3; FRAME])];
        let mut heard = HashMap::new();
        let mut tick = |conf: &mut Conference, said: &[Option<Frame>]| {
            conf.mix(
                said,
                |m, f| {
                    heard.insert(m, f[0]);
                },
                std::time::Instant::now(),
            );
            heard.clone()
        };
        let h = tick(&mut conf, &said);
        assert_eq!(
            (h[&1], h[&2], h[&3]),
            (23, 100, 120),
            "1 hears 2 and its coach"
        );
        // The coached member leaves: the coach is heard by nobody, not by the room.
        conf.remove(1);
        let h = tick(&mut conf, &said[1..]);
        assert_eq!((h[&2], h[&3]), (0, 20));
        assert!(!conf.coach(1, None), "1 is gone");
        assert!(conf.coach(3, None));
        let h = tick(&mut conf, &said[1..]);
        assert_eq!((h[&2], h[&3]), (3, 20), "an ordinary member again");
    }
}
