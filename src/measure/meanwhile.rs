//! What the probe's other connects met while a step failed unanswered.
//!
//! A network check reaches the canary once, after the failure; a network that drops
//! most new connections (a full NAT table, a firewall limiting new flows, a saturated
//! link) lets that one through now and then, and a target's every try goes unanswered
//! just as often. The connects the run made meanwhile, to every address that answered,
//! tell the two apart: on a sound network they are answered at their first try, on
//! such a one they need several. Their count goes into the check (`facts::Meanwhile`),
//! for the analysis to judge.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::facts::Meanwhile;

/// How long an answered connect is remembered: longer than a step's failure lasts at
/// the usual deadlines (two rounds of connects or of handshakes, and their check); a
/// longer one is judged on its last two minutes.
const KEPT: Duration = Duration::from_secs(120);

/// The run's answered connects of the last `KEPT`, in the order they were answered.
#[derive(Debug, Default)]
pub struct Connects {
    answered: Mutex<VecDeque<Answered>>,
}

#[derive(Debug)]
struct Answered {
    at: Instant,
    tries: u32,
}

impl Connects {
    /// A connect answered now, after `tries` tries.
    pub fn answered(&self, tries: u32) {
        let mut answered = self.answered.lock().expect("connects lock poisoned");
        // Taken under the lock, so that the list stays in the order of the times.
        let now = Instant::now();
        while answered
            .front()
            .is_some_and(|a| now.duration_since(a.at) > KEPT)
        {
            answered.pop_front();
        }
        answered.push_back(Answered { at: now, tries });
    }

    /// The connects answered since `since`, and the tries they took.
    pub fn since(&self, since: Instant) -> Meanwhile {
        let answered = self.answered.lock().expect("connects lock poisoned");
        let mut meanwhile = Meanwhile {
            connects: 0,
            tries: 0,
        };
        for a in answered.iter().rev().take_while(|a| a.at >= since) {
            meanwhile.connects += 1;
            meanwhile.tries += a.tries;
        }
        meanwhile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_connects_answered_since_and_their_tries() {
        let connects = Connects::default();
        connects.answered(1);
        std::thread::sleep(Duration::from_millis(2));
        let since = Instant::now();
        connects.answered(3);
        connects.answered(1);
        assert_eq!(
            connects.since(since),
            Meanwhile {
                connects: 2,
                tries: 4
            }
        );
    }
}
