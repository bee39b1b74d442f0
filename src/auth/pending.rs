//! Sign-ins under way: each keyed by its OAuth `state`, holding the PKCE verifier and the nonce
//! it was started with and the decision it is for. Pure: time comes in as unix seconds.
//!
//! A login is redeemed once (a replayed `state` finds nothing), only within [`LOGIN_TTL`], and only
//! by the browser that started it (its `airlock_signin` cookie names the same state). It must
//! never hand a login to a callback whose state and browser disagree: both are dropped.

use std::collections::HashMap;

/// How long a started sign-in may take, in seconds.
pub const LOGIN_TTL: i64 = 10 * 60;
/// Most sign-ins kept at once; the oldest is dropped to make room.
pub const MAX_LOGINS: usize = 1000;

/// One sign-in under way. `M` is what the provider said at its start (its metadata), kept so
/// the callback verifies against the same keys and endpoints.
#[derive(Debug, Clone)]
pub struct Login<M> {
    pub state: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// The decision it is for (an approval id), and the address the link was made for.
    pub decision: String,
    pub email: String,
    /// Where the browser goes once signed in (a path on this server, built by the server).
    pub return_to: String,
    /// The path the session cookie is limited to.
    pub cookie_path: String,
    pub started: i64,
    pub meta: M,
}

/// Why a callback found no login to finish.
#[derive(Debug)]
pub enum NoLogin<M> {
    /// No login under that state (never started, already finished, or dropped).
    Unknown,
    /// The state is not the one this browser started with: tampered, or another browser's.
    /// The login the browser did start (else the one the state names) is dropped too, and
    /// returned for the record.
    Mismatch(Box<Login<M>>),
    /// Too late: the login is dropped.
    Expired(Box<Login<M>>),
}

/// The sign-ins under way.
#[derive(Debug)]
pub struct Logins<M> {
    by_state: HashMap<String, Login<M>>,
}

impl<M> Default for Logins<M> {
    fn default() -> Self {
        Logins {
            by_state: HashMap::new(),
        }
    }
}

impl<M> Logins<M> {
    /// Keep a started login (dropping expired ones, and the oldest when full).
    pub fn start(&mut self, login: Login<M>, now: i64) {
        self.by_state.retain(|_, l| now - l.started <= LOGIN_TTL);
        while self.by_state.len() >= MAX_LOGINS {
            let oldest = self
                .by_state
                .values()
                .min_by_key(|l| l.started)
                .map(|l| l.state.clone());
            match oldest {
                Some(s) => self.by_state.remove(&s),
                None => break,
            };
        }
        self.by_state.insert(login.state.clone(), login);
    }

    /// Redeem the login a callback finishes: `state` from the query, `browser` from the
    /// browser's own cookie. Whatever the answer, neither state can be used again.
    pub fn redeem(
        &mut self,
        state: &str,
        browser: Option<&str>,
        now: i64,
    ) -> Result<Login<M>, NoLogin<M>> {
        let found = self.by_state.remove(state);
        if browser != Some(state) {
            let theirs = browser.and_then(|b| self.by_state.remove(b));
            return Err(match theirs.or(found) {
                Some(l) => NoLogin::Mismatch(Box::new(l)),
                None => NoLogin::Unknown,
            });
        }
        match found {
            None => Err(NoLogin::Unknown),
            Some(l) if now - l.started > LOGIN_TTL || now < l.started - 60 => {
                Err(NoLogin::Expired(Box::new(l)))
            }
            Some(l) => Ok(l),
        }
    }

    pub fn len(&self) -> usize {
        self.by_state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_state.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{LOGIN_TTL, Login, Logins, MAX_LOGINS, NoLogin};

    fn login(state: &str, started: i64) -> Login<()> {
        Login {
            state: state.into(),
            pkce_verifier: format!("v-{state}"),
            nonce: format!("n-{state}"),
            decision: "a1".into(),
            email: "ann@example.com".into(),
            return_to: "/a/a1/0/t".into(),
            cookie_path: "/a/a1/".into(),
            started,
            meta: (),
        }
    }

    #[test]
    fn a_login_is_finished_once_by_the_browser_that_started_it() {
        let mut l = Logins::default();
        l.start(login("s1", 100), 100);
        let got = l.redeem("s1", Some("s1"), 130).expect("the login");
        assert_eq!(
            (got.pkce_verifier.as_str(), got.nonce.as_str()),
            ("v-s1", "n-s1")
        );
        assert!(
            matches!(l.redeem("s1", Some("s1"), 131), Err(NoLogin::Unknown)),
            "a replayed state finds nothing"
        );
    }

    #[test]
    fn a_tampered_state_drops_the_browsers_own_login_too() {
        let mut l = Logins::default();
        l.start(login("mine", 100), 100);
        l.start(login("other", 100), 100);
        match l.redeem("other", Some("mine"), 110) {
            Err(NoLogin::Mismatch(dropped)) => assert_eq!(dropped.state, "mine"),
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(l.is_empty(), "neither state can be used again");
    }

    #[test]
    fn a_callback_without_the_browser_cookie_is_refused_and_burns_the_state() {
        let mut l = Logins::default();
        l.start(login("s1", 100), 100);
        assert!(matches!(
            l.redeem("s1", None, 110),
            Err(NoLogin::Mismatch(_))
        ));
        assert!(matches!(
            l.redeem("s1", Some("s1"), 111),
            Err(NoLogin::Unknown)
        ));
        assert!(
            matches!(l.redeem("s1", None, 112), Err(NoLogin::Unknown)),
            "nothing left to drop"
        );
    }

    #[test]
    fn a_late_callback_is_refused() {
        let mut l = Logins::default();
        l.start(login("s1", 100), 100);
        assert!(matches!(
            l.redeem("s1", Some("s1"), 101 + LOGIN_TTL),
            Err(NoLogin::Expired(_))
        ));
        assert!(l.is_empty());
    }

    #[test]
    fn starting_drops_expired_logins_and_stays_bounded() {
        let mut l = Logins::default();
        l.start(login("old", 0), 0);
        l.start(login("new", LOGIN_TTL + 1), LOGIN_TTL + 1);
        assert_eq!(l.len(), 1, "the expired one went");
        let mut l = Logins::default();
        for i in 0..MAX_LOGINS + 5 {
            // two a second, all within the time a login may take
            let t = 1000 + i as i64 / 2;
            l.start(login(&format!("s{i}"), t), t);
        }
        assert_eq!(l.len(), MAX_LOGINS);
        assert!(
            matches!(l.redeem("s0", Some("s0"), 1000), Err(NoLogin::Unknown)),
            "the oldest made room"
        );
    }
}
