//! RTP/RTCP port pairs from the configured range: RTP on an even port, RTCP on the next one.
//! Released pairs go to the back of the queue so a port is reused as late as possible and stray
//! packets of an ended call do not reach the next one.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let first = range.start() + range.start() % 2;
        let free = (first..*range.end()).step_by(2).collect();
        Self { free }
    }

    /// The even RTP port of a free pair.
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    pub fn put(&mut self, port: u16) {
        self.free.push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_reused_last() {
        let mut p = PortPool::new(20001..=20007);
        assert_eq!(p.available(), 3);
        let a = p.take().unwrap();
        assert_eq!(a, 20002);
        p.put(a);
        assert_eq!(p.take(), Some(20004));
        assert_eq!(p.take(), Some(20006));
        assert_eq!(p.take(), Some(20002));
        assert_eq!(p.take(), None);
    }
}
