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
    pub(crate) members: Vec<usize>,
    pub(crate) recorder: Option<RecordFeed>,
    /// The clip and how far it has played.
    pub(crate) announcement: Option<(Clip, usize)>,
}

impl Conference {
    /// One tick of the mix. `said` holds each member's frame for this tick, in member order
    /// (`None` if it sent none); `give` hands a member its mix; the recording gets the sum.
    pub(crate) fn mix(
        &mut self,
        said: &[Option<Frame>],
        mut give: impl FnMut(usize, Frame),
        now: std::time::Instant,
    ) {
        let mut total = [0i32; FRAME];
        for f in said.iter().flatten() {
            for (t, &s) in total.iter_mut().zip(f.iter()) {
                *t += s as i32;
            }
        }
        // The announcement is nobody's own voice: everyone hears it.
        let mut announced = [0i32; FRAME];
        if let Some((clip, pos)) = &mut self.announcement {
            let n = FRAME.min(clip.len() - *pos);
            for (a, &s) in announced.iter_mut().zip(&clip[*pos..*pos + n]) {
                *a = s as i32;
            }
            *pos += n;
            if *pos >= clip.len() {
                self.announcement = None;
            }
        }
        for (t, a) in total.iter_mut().zip(announced) {
            *t += a;
        }
        for (&member, said) in self.members.iter().zip(said) {
            let mut heard = [0i16; FRAME];
            for (i, h) in heard.iter_mut().enumerate() {
                let own = said.as_ref().map_or(0, |f| f[i] as i32);
                *h = clamp(total[i] - own);
            }
            give(member, heard);
        }
        if let Some(r) = &mut self.recorder {
            let mut all = [0i16; FRAME];
            for (a, &t) in all.iter_mut().zip(total.iter()) {
                *a = clamp(t);
            }
            r.feed(Track::Inbound, &all, now);
        }
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
            members: vec![10, 11, 12],
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
            members: vec![1, 2],
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
        conf.members = vec![1];
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
            members: vec![1, 2],
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
}
