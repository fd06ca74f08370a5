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

/// At most this many announcements play at once in a conference; one past it is refused
/// (reported as stopped) rather than queued without bound.
pub const MAX_ANNOUNCEMENTS: usize = 16;

/// One conference on its worker: member slots, an optional recording of the whole mix, and
/// the announcements (a beep, a message, a played file) heard over the conversation.
#[derive(Default)]
pub(crate) struct Conference {
    pub(crate) members: Vec<Member>,
    pub(crate) recorder: Option<RecordFeed>,
    pub(crate) announcements: Vec<Playing>,
}

/// Audio played into a conference over the conversation: to everyone (and the recording of
/// the mix), or to one member alone.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// Reported in [`crate::MediaEvent::AnnouncementEnded`] when it ends; `None` is not
    /// reported (a beep).
    pub id: Option<u64>,
    pub clip: Clip,
    /// Times to play it; 0 repeats it until it is stopped.
    pub loops: u32,
    /// The member who hears it alone; `None` is everyone.
    pub to: Option<crate::EndpointId>,
}

/// An announcement on its worker: its listener as a slot, and how far it has played.
#[derive(Debug)]
pub(crate) struct Playing {
    pub(crate) id: Option<u64>,
    clip: Clip,
    pos: usize,
    /// Plays left after this one; `None` forever.
    left: Option<u32>,
    pub(crate) to: Option<usize>,
    /// Played out this tick.
    done: bool,
}

impl Playing {
    pub(crate) fn new(a: Announcement, to: Option<usize>) -> Self {
        Self {
            id: a.id,
            clip: a.clip,
            pos: 0,
            left: (a.loops != 0).then(|| a.loops - 1),
            to,
            done: false,
        }
    }

    /// Reports its end if it is reported; false, so that `retain` drops it.
    pub(crate) fn end(&self, ended: &mut impl FnMut(u64)) -> bool {
        if let Some(id) = self.id {
            ended(id);
        }
        false
    }

    /// Adds its next frame to `into`, running on into the next play of a loop; false once
    /// it has played out. The clip is not empty ([`Conference::announce`]).
    fn play(&mut self, into: &mut [i32; FRAME]) -> bool {
        let mut at = 0;
        while at < FRAME {
            let n = (FRAME - at).min(self.clip.len() - self.pos);
            for (t, &s) in into[at..at + n].iter_mut().zip(&self.clip[self.pos..]) {
                *t += s as i32;
            }
            (at, self.pos) = (at + n, self.pos + n);
            if self.pos == self.clip.len() {
                match &mut self.left {
                    Some(0) => return false,
                    Some(left) => *left -= 1,
                    None => {}
                }
                self.pos = 0;
            }
        }
        true
    }
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
    /// what everyone hears (coaches and one member's announcements are not in it); `ended`
    /// gets each reported announcement that played out.
    pub(crate) fn mix(
        &mut self,
        said: &[Option<Frame>],
        mut give: impl FnMut(usize, Frame),
        mut ended: impl FnMut(u64),
        now: std::time::Instant,
    ) {
        let mut total = [0i32; FRAME];
        for (member, f) in self.members.iter().zip(said) {
            if let (Voice::Everyone, Some(f)) = (member.voice, f) {
                add(&mut total, f);
            }
        }
        // An announcement is nobody's own voice: its listeners hear it whole.
        let mut private = false;
        self.announcements.retain_mut(|a| {
            if a.to.is_some() {
                private = true;
                return true;
            }
            a.play(&mut total) || a.end(&mut ended)
        });
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
            // Its own announcements: few (the cap above), so looked up rather than indexed.
            if private {
                for a in (self.announcements.iter_mut()).filter(|a| a.to == Some(member.slot)) {
                    a.done = !a.play(&mut heard);
                }
            }
            give(member.slot, heard.map(clamp));
        }
        if private {
            self.announcements
                .retain_mut(|a| !a.done || a.end(&mut ended));
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

    /// Starts an announcement; false (and nothing starts) when it is empty or
    /// [`MAX_ANNOUNCEMENTS`] are playing.
    pub(crate) fn announce(&mut self, playing: Playing) -> bool {
        if playing.clip.is_empty() || self.announcements.len() >= MAX_ANNOUNCEMENTS {
            return false;
        }
        self.announcements.push(playing);
        true
    }

    /// Stops every announcement (`None`), or those the member in `slot` hears alone; `ended`
    /// gets each reported one.
    pub(crate) fn stop_announcements(&mut self, to: Option<usize>, mut ended: impl FnMut(u64)) {
        (self.announcements)
            .retain(|a| to.is_some_and(|slot| a.to != Some(slot)) || a.end(&mut ended));
    }

    /// Takes the member in `slot` out: its coaches now coach nobody, and what it alone heard
    /// stops (`ended` gets each reported one).
    pub(crate) fn remove(&mut self, slot: usize, ended: impl FnMut(u64)) {
        self.stop_announcements(Some(slot), ended);
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
            |_| {},
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
            |_| {},
            std::time::Instant::now(),
        );
        assert_eq!((heard[&1][0], heard[&2][0]), (0, 500));
        conf.members = vec![Member::new(1)];
        conf.mix(
            &[Some([500; FRAME])],
            |m, f| {
                heard.insert(m, f);
            },
            |_| {},
            std::time::Instant::now(),
        );
        assert_eq!(heard[&1], [0; FRAME]);
    }

    fn playing(id: u64, samples: usize, loops: u32, to: Option<usize>) -> Playing {
        let a = Announcement {
            id: Some(id),
            clip: vec![300i16; samples].into(),
            loops,
            to: None,
        };
        Playing::new(a, to)
    }

    /// One tick with member 1 saying 100 and member 2 silent: what each heard (first and
    /// 40th sample) and which announcements ended.
    fn tick(conf: &mut Conference) -> (Frame, Frame, Vec<u64>) {
        let mut heard = HashMap::new();
        let mut ended = vec![];
        conf.mix(
            &[Some([100; FRAME]), None],
            |m, f| {
                heard.insert(m, f);
            },
            |id| ended.push(id),
            std::time::Instant::now(),
        );
        (heard[&1], heard[&2], ended)
    }

    #[test]
    fn an_announcement_is_heard_by_everyone_until_it_ends() {
        let mut conf = Conference {
            members: [1, 2].map(Member::new).to_vec(),
            ..Default::default()
        };
        assert!(conf.announce(playing(7, 200, 1, None)));
        let (one, two, ended) = tick(&mut conf);
        assert_eq!((one[0], two[0], ended), (300, 400, vec![]));
        let (one, two, ended) = tick(&mut conf);
        assert_eq!(
            (one[39], one[40], two[40]),
            (300, 0, 100),
            "40 samples were left"
        );
        assert_eq!(ended, [7]);
        assert!(conf.announcements.is_empty());
    }

    #[test]
    fn one_members_announcement_loops_for_it_alone_and_stops_when_it_leaves() {
        let mut conf = Conference {
            members: [1, 2].map(Member::new).to_vec(),
            ..Default::default()
        };
        // Two plays of one frame and a half to member 2; endless to member 1.
        assert!(conf.announce(playing(1, FRAME * 3 / 2, 2, Some(2))));
        assert!(conf.announce(playing(2, FRAME, 0, Some(1))));
        let mut ended = vec![];
        for _ in 0..3 {
            let (one, two, e) = tick(&mut conf);
            assert_eq!((one[0], two[0]), (300, 400), "each hears its own");
            ended.extend(e);
        }
        assert_eq!(ended, [1], "2's two plays took three ticks");
        let (one, two, _) = tick(&mut conf);
        assert_eq!((one[0], two[0]), (300, 100));
        let mut stopped = vec![];
        conf.remove(1, |id| stopped.push(id));
        assert_eq!(stopped, [2]);
        assert!(conf.announcements.is_empty());
    }

    #[test]
    fn announcements_are_bounded_and_stopped_for_one_member_or_all() {
        let mut conf = Conference {
            members: [1, 2].map(Member::new).to_vec(),
            ..Default::default()
        };
        assert!(!conf.announce(playing(98, 0, 1, None)), "an empty clip");
        for id in 0..MAX_ANNOUNCEMENTS as u64 {
            assert!(conf.announce(playing(id, FRAME, 0, Some(1 + id as usize % 2))));
        }
        assert!(!conf.announce(playing(99, FRAME, 1, None)), "one too many");
        let mut stopped = vec![];
        conf.stop_announcements(Some(2), |id| stopped.push(id));
        assert_eq!(stopped.len(), MAX_ANNOUNCEMENTS / 2);
        assert!(stopped.iter().all(|id| id % 2 == 1));
        conf.stop_announcements(None, |id| stopped.push(id));
        assert_eq!(stopped.len(), MAX_ANNOUNCEMENTS);
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
                |_| {},
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
        conf.remove(1, |_| {});
        let h = tick(&mut conf, &said[1..]);
        assert_eq!((h[&2], h[&3]), (0, 20));
        assert!(!conf.coach(1, None), "1 is gone");
        assert!(conf.coach(3, None));
        let h = tick(&mut conf, &said[1..]);
        assert_eq!((h[&2], h[&3]), (3, 20), "an ordinary member again");
    }
}
